"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest

from flowkit.llm import transport


@pytest.fixture(params=["lean", "litellm"])
def http_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both transports of `openai/<model>` at an api_base: the lean one (httpx) and litellm's.
    A module with `pytestmark = pytest.mark.usefixtures("http_path")` runs every test on both:
    the retry, fallback, fault, key and accounting policy must not depend on the transport."""
    if request.param == "litellm":
        monkeypatch.setattr(transport, "LEAN_PREFIXES", ())
    return str(request.param)
