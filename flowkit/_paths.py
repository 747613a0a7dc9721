"""Where the assets live: inside an installed wheel (flowkit/_assets) or the source tree."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def asset_dir(name: str) -> Path:
    """`schemas`, `prompts` or `workflows`: packaged copy first, then the repository root."""
    packaged = _PKG / "_assets" / name
    return packaged if packaged.is_dir() else _PKG.parent / name
