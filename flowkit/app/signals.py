"""SIGTERM and SIGINT during a run: cancel the run's task instead of killing the process (the
default for SIGTERM) or raising wherever the interpreter happens to be (SIGINT), so the run
marks itself `interrupted`, flushes its log and can be resumed from its last checkpoint."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def cancelling() -> Iterator[list[int]]:
    """Within a running task: the signals caught (in order) while inside. Installed only where
    asyncio can: the main thread, on an event loop with signal support (not Windows')."""
    caught: list[int] = []
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None  # called from run_session's coroutine

    def on_signal(signum: int) -> None:
        caught.append(signum)
        task.cancel()

    before = {s: signal.getsignal(s) for s in SIGNALS}
    installed = threading.current_thread() is threading.main_thread()
    if installed:
        try:
            for s in SIGNALS:
                loop.add_signal_handler(s, on_signal, s)
        except NotImplementedError:  # Windows' event loops
            installed = False
    try:
        yield caught
    finally:
        for s, handler in before.items() if installed else ():
            loop.remove_signal_handler(s)
            signal.signal(s, handler)  # asyncio.run's own SIGINT handler, or the default
