"""The on-disk cache of what start-up derives from files: compiled prompt templates
(spec/templates.py) and parsed market data (market/sources.py).

It lives in `$FLOWKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/flowkit`, else `~/.cache/flowkit`;
`FLOWKIT_CACHE_DIR=off` turns it off. It only ever saves time: every entry carries a digest of
its contents, and anything unexpected (no folder, a read-only or shared one, a missing,
truncated, corrupt or foreign entry) reads as a miss, so the caller derives the value again
and the run is the same. Writes go to a temporary file renamed into place, so a concurrent
reader sees a whole entry or none. A folder other users may write is never used: an entry
(compiled template code) is trusted like the package's own files.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

ENV = "FLOWKIT_CACHE_DIR"
_MAGIC = b"flowkit-cache-1\n"
_DIGEST = 32  # sha256 of the payload, stored after the magic


def cache_dir() -> Path | None:
    """The cache folder (which may not exist yet), or None when FLOWKIT_CACHE_DIR=off."""
    given = os.environ.get(ENV, "").strip()
    if given.lower() == "off":
        return None
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base:
        return Path(base).expanduser() / "flowkit"
    try:
        return Path.home() / ".cache" / "flowkit"
    except RuntimeError:  # no home directory (a bare service account): no cache
        return None


def key(*parts: str | bytes) -> str:
    """A cache key from everything the cached value depends on."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _folder(kind: str, create: bool) -> Path | None:
    root = cache_dir()
    if root is None:
        return None
    folder = root / kind
    try:
        if create:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except (OSError, ValueError):
        return None
    private = stat.S_ISDIR(st.st_mode) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    owned = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return folder if private and owned else None


def read(kind: str, name: str) -> bytes | None:
    """The payload stored under `name`, or None (a miss, whatever the reason)."""
    folder = _folder(kind, create=False)
    if folder is None:
        return None
    try:
        data = (folder / name).read_bytes()
    except (OSError, ValueError):
        return None
    head = len(_MAGIC) + _DIGEST
    if data[:len(_MAGIC)] != _MAGIC or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC):head]:
        return None
    return data[head:]


def write(kind: str, name: str, payload: bytes) -> None:
    """Store `payload` under `name`, atomically; failing to (read-only disk, full disk) is
    silent: the next run derives the value again."""
    folder = _folder(kind, create=True)
    if folder is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, folder / name)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
