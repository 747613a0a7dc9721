"""Model-call limits shared by every worker of a sweep, whatever process or Ray task it is.

`SharedLimiter` is a flowkit.llm.limits.Limiter whose state lives in files under the sweep's
folder instead of one process's memory: the concurrency cap is `concurrency` slot files, a call
holding an exclusive flock on one of them; the requests-per-minute pace is the same virtual-time
schedule (GCRA) as Limiter's, its next free time kept in a file per model and updated under a
flock. A worker that dies releases its locks with its file descriptors. flock needs a local
file system or one that honours it across nodes (a Ray cluster's shared sweep folder)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
import time
from pathlib import Path

from flowkit.llm.limits import Limiter


class SharedLimiter(Limiter):
    def __init__(self, folder: str | os.PathLike[str], concurrency: int = 8, burst: int = 1):
        super().__init__(concurrency, burst)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.concurrency = concurrency

    def acquire(self, model: str, rpm: int | None = None) -> _SharedSlot:  # type: ignore[override]
        return _SharedSlot(self, model, rpm)

    async def _pace(self, model: str, interval: float) -> None:
        name = hashlib.sha256(model.encode()).hexdigest()[:16]
        fd = os.open(self.folder / f"pace-{name}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for a read and a write: microseconds
            stored = os.pread(fd, 64, 0).decode().strip()
            now = time.time()  # wall time: the processes share no monotonic clock
            due = max(float(stored) if stored else now, now)
            os.ftruncate(fd, 0)
            os.pwrite(fd, repr(due + interval).encode(), 0)
        finally:
            os.close(fd)  # releases the lock
        wait = due - (self._burst - 1) * interval - now
        if wait > 0:
            await asyncio.sleep(wait)

    async def _take_slot(self) -> int:
        """A locked slot file's descriptor, polling (with backoff) while all are taken."""
        delay = 0.002
        while True:
            first = random.randrange(self.concurrency)  # spread workers over the slots
            for i in range(self.concurrency):
                fd = os.open(self.folder / f"slot-{(first + i) % self.concurrency}",
                             os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 0.05)


class _SharedSlot:
    __slots__ = ("fd", "limiter", "model", "rpm")

    def __init__(self, limiter: SharedLimiter, model: str, rpm: int | None):
        self.limiter, self.model, self.rpm = limiter, model, rpm
        self.fd = -1

    async def __aenter__(self) -> None:
        if self.rpm:
            await self.limiter._pace(self.model, 60.0 / self.rpm)
        self.fd = await self.limiter._take_slot()

    async def __aexit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the only descriptor of the open file releases its flock
