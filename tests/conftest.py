"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest

from flowkit import _cache
from flowkit.llm import transport


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """flowkit's on-disk cache (flowkit/_cache.py) in a folder of this test session: tests
    never read or fill the user's, and still run with a cache (as users do)."""
    patch = pytest.MonkeyPatch()
    patch.setenv(_cache.ENV, str(tmp_path_factory.mktemp("flowkit-cache")))
    yield
    patch.undo()


@pytest.fixture(params=["lean", "litellm"])
def http_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both transports of `openai/<model>` at an api_base: the lean one (httpx) and litellm's.
    A module with `pytestmark = pytest.mark.usefixtures("http_path")` runs every test on both:
    the retry, fallback, fault, key and accounting policy must not depend on the transport."""
    if request.param == "litellm":
        monkeypatch.setattr(transport, "LEAN_PREFIXES", ())
    return str(request.param)
