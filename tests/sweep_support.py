"""What the sweep tests share: a fresh current directory (sweeps/<name>/ goes there) with no
model or event log chosen by the environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path
