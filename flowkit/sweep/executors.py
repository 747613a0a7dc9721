"""Executors run cells and yield their records as they finish, in any order.

Registered by name in `EXECUTORS`. Contract: `executor(cells, folder, workers, address)` returns
an iterator over one record per cell (`flowkit.sweep.cells.run_cell`'s result); a cell that
cannot run yields a record with status "failed", never an exception. Cells write only their
own files, so any executor gives the same records."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from typing import Any, Callable, Iterator

from flowkit.errors import ConfigError
from flowkit.sweep.cells import Cell, run_cell

Records = Iterator[dict[str, Any]]


def _lost(cell: Cell, why: str) -> dict[str, Any]:
    return {"cell": asdict(cell), "status": "failed", "error": why, "seconds": 0.0}


def serial(cells: list[Cell], folder: str, workers: int | None = None,
           address: str | None = None) -> Records:
    """One cell after another in this process (the reference the pool is measured against)."""
    for cell in cells:
        yield run_cell(cell, folder)


def local(cells: list[Cell], folder: str, workers: int | None = None,
          address: str | None = None) -> Records:
    """A process pool over the machine's cores (or `workers`)."""
    if address:
        raise ConfigError("--address is for --executor ray")
    n = max(1, min(workers or os.cpu_count() or 1, len(cells)))
    # Never plain fork: the parent may hold DuckDB's or the event log's threads, and a child
    # forked while one holds a lock deadlocks. forkserver forks from a clean process.
    context = multiprocessing.get_context("forkserver" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(n, mp_context=context)
    try:
        pending = {pool.submit(run_cell, cell, folder): cell for cell in cells}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                cell = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:  # a worker died (killed, out of memory)
                    yield _lost(cell, "the worker process died")
    finally:
        # Ctrl-C or an error: drop the queued cells instead of running them all first; a
        # cell cut short leaves only its temporary folder, and the next run redoes it.
        pool.shutdown(wait=False, cancel_futures=True)


def ray(cells: list[Cell], folder: str, workers: int | None = None,
        address: str | None = None) -> Records:
    """Ray tasks, one per cell, on a local instance or the cluster at `address`; the sweep
    folder must be on storage every node sees."""
    try:
        import ray as ray_
    except ImportError:
        raise ConfigError('--executor ray needs Ray: pip install -e ".[ray]"') from None
    if not ray_.is_initialized():
        ray_.init(address=address, num_cpus=workers if not address else None,
                  include_dashboard=False, log_to_driver=False)
    task = ray_.remote(num_cpus=1)(run_cell)
    pending = {task.remote(cell, folder): cell for cell in cells}
    while pending:
        ready, _ = ray_.wait(list(pending), num_returns=1)
        cell = pending.pop(ready[0])
        try:
            yield ray_.get(ready[0])
        except ray_.exceptions.RayError as exc:
            yield _lost(cell, f"ray: {exc}")


EXECUTORS: dict[str, Callable[..., Records]] = {"local": local, "serial": serial, "ray": ray}


def executor(name: str) -> Callable[..., Records]:
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor '{name}': expected one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name]
