"""`flowkit sweep FILE`: plan the cells, run those not done yet with an executor, report
progress and ETA after each, write the summary (every planned cell's record) and the sweep
database: sweep.duckdb, views over every cell's Parquet tables, which `flowkit runs/show/report
--db` read like any event log (`compact` writes them into one DuckDB file instead)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flowkit.errors import ConfigError
from flowkit.store.parquet import compact, write_views
from flowkit.sweep.cells import Cell, cell_glob, done, plan
from flowkit.sweep.executors import executor
from flowkit.sweep.spec import LoadedSweep, load_sweep


DATABASE = "sweep.duckdb"    # views over the cells' tables
COMPACTED = "compact.duckdb"  # the same rows in one file


@dataclass(frozen=True)
class CellDone:
    """Reported after each cell: what finished, how far along, and the time left."""

    record: dict[str, Any]
    done: int
    total: int
    eta_s: float


@dataclass
class SweepResult:
    sweep: LoadedSweep
    folder: Path
    cells: list[Cell]
    records: list[dict[str, Any]]   # one per planned cell, in plan order (failed ones included)
    ran: int
    reused: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != "completed"]


def run_sweep(path: str | Path, *, executor_name: str = "local", workers: int | None = None,
              address: str | None = None, folder: str | Path | None = None,
              on_cell: Callable[[CellDone], None] | None = None,
              force: bool = False) -> SweepResult:
    """`force`: run every cell again (re-scoring: the model answers come from the cells' cache)."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected at least 1")
    sweep = load_sweep(path)
    out = sweep_folder(sweep, folder)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "tmp", ignore_errors=True)  # what a killed sweep left half-built
    cells = plan(sweep)
    records = {} if force else {c.id: r for c in cells if (r := done(out, c)) is not None}
    todo = [c for c in cells if c.id not in records]
    run = executor(executor_name)
    started = time.perf_counter()
    for n, record in enumerate(run(todo, str(out), workers, address), 1):
        records[record["cell"]["id"]] = record
        if on_cell:
            elapsed = time.perf_counter() - started
            on_cell(CellDone(record, len(cells) - len(todo) + n, len(cells),
                             elapsed / n * (len(todo) - n)))
    ordered = [records[c.id] for c in cells]
    summary = out / "summary.json"
    part = summary.with_suffix(".json.part")
    part.write_text(json.dumps({"sweep": sweep.spec.sweep, "file": str(path),
                                "cells": [{k: v for k, v in r.items() if k != "returns"}
                                          for r in ordered]}, indent=1, default=str))
    part.replace(summary)
    write_views(out / DATABASE, cell_glob(out))
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return SweepResult(sweep, out, cells, ordered, len(todo), len(cells) - len(todo))


def sweep_folder(sweep: LoadedSweep, folder: str | Path | None = None) -> Path:
    return Path(folder or Path("sweeps") / sweep.spec.sweep)


def compact_sweep(path: str | Path, folder: str | Path | None = None) -> tuple[Path, int]:
    """Write every finished cell's tables into one DuckDB file; its path and run count."""
    out = sweep_folder(load_sweep(path), folder)
    if not (out / "cells").is_dir():
        raise ConfigError(f"no cells in {out} yet: run `flowkit sweep {path}` first")
    return out / COMPACTED, compact(cell_glob(out), out / COMPACTED)
