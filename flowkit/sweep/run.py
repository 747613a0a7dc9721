"""`flowkit sweep FILE`: plan the cells, run those not done yet with an executor, report
progress and ETA after each, and write the summary (every planned cell's record)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flowkit.sweep.cells import Cell, done, plan
from flowkit.sweep.executors import executor
from flowkit.sweep.spec import LoadedSweep, load_sweep


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
              on_cell: Callable[[CellDone], None] | None = None) -> SweepResult:
    sweep = load_sweep(path)
    out = Path(folder or Path("sweeps") / sweep.spec.sweep)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    for stale in (out / "cells").glob(".*"):  # cells a killed sweep left half-built
        shutil.rmtree(stale, ignore_errors=True)
    cells = plan(sweep)
    records = {c.id: r for c in cells if (r := done(out, c)) is not None}
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
    return SweepResult(sweep, out, cells, ordered, len(todo), len(cells) - len(todo))
