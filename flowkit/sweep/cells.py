"""Cells: one (variant, symbol set, window, seed) backtest each, identified by a hash of the
resolved firm, the market data's content and flowkit's version, so a re-run skips what is done
and a changed firm or data file re-runs only the cells it touches.

A cell runs in a worker process on a private DuckDB event log under the sweep's tmp/ folder,
seeded with the model responses every finished cell cached (so a re-scored sweep asks no model
again) and capped by the sweep's shared limiter. Once the run is over its tables go to
cells/<id>/<table>.parquet (one rename puts the folder in place; workers never share a DuckDB
file), then a small JSON record (its metrics, buy-and-hold's, the per-period returns) marks
the cell done. The sweep database reads every cell's folder (flowkit.store.parquet)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flowkit._version import __version__
from flowkit.errors import FlowkitError
from flowkit.sweep.spec import METRICS, LoadedSweep, Variant, Window

RECORD_FIELDS = (*METRICS, "model_calls", "cost_usd", "decisions")


@dataclass(frozen=True)
class Cell:
    id: str                       # content hash: the cell's file names under cells/
    variant: str
    firm: str                     # workflow path
    overrides: tuple[str, ...]
    symbols: tuple[str, ...]
    start: str
    end: str
    train: tuple[str, str] | None  # the training window, for firms that learn
    every: str | None
    seed: int
    model: str | None

    @property
    def window(self) -> str:
        return f"{self.start}..{self.end}"


def plan(sweep: LoadedSweep) -> list[Cell]:
    """Every cell of the sweep, in a stable order (variant, symbols, window, seed)."""
    from flowkit.spec.loader import load_workflow

    spec = sweep.spec
    cells = []
    for variant in sweep.variants:
        loaded = load_workflow(variant.firm, list(variant.overrides))
        learns = spec.train and loaded.spec.learning is not None and loaded.spec.learning.train
        for symbols in sweep.symbol_sets:
            data = data_hash(loaded, symbols)
            for window in sweep.windows:
                train = (str(window.train[0]), str(window.train[1])) if learns and window.train \
                    else None
                for seed in range(spec.seeds):
                    cells.append(_cell(variant, loaded.data, data, symbols, window, train,
                                       spec.every, seed, spec.model))
    return cells


def _cell(variant: Variant, firm: dict[str, Any], data: str, symbols: tuple[str, ...],
          window: Window, train: tuple[str, str] | None, every: str | None, seed: int,
          model: str | None) -> Cell:
    # Where the log goes is not what the firm is: leave `log` out of the identity.
    identity = {"firm": {k: v for k, v in firm.items() if k != "log"}, "data": data,
                "flowkit": __version__, "symbols": symbols, "start": str(window.start),
                "end": str(window.end), "train": train, "every": every, "seed": seed,
                "model": model}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return Cell(digest[:20], variant.name, str(variant.firm), variant.overrides, symbols,
                str(window.start), str(window.end), train, every, seed, model)


def data_hash(loaded: Any, symbols: tuple[str, ...]) -> str:
    """The content hash of the files a folder source (sample, csv) reads for these symbols and
    the benchmark; other sources are identified by their settings."""
    from flowkit.market.sources import SAMPLE_DIR

    market = loaded.spec.market
    h = hashlib.sha256(json.dumps(market.model_dump(exclude={"symbols"}), sort_keys=True,
                                  default=str).encode())
    folder = SAMPLE_DIR if market.source == "sample" else \
        (loaded.base_dir / market.path) if market.source == "csv" and market.path else None
    if folder is not None:
        for sym in sorted({*symbols, *([market.benchmark] if market.benchmark else [])}):
            for rel in (f"ohlcv/{sym}.csv", f"ohlcv/{sym}_1h.csv", f"news/{sym}.csv",
                        f"fundamentals/{sym}_earnings.csv"):
                file = Path(folder) / rel
                if file.is_file():
                    h.update(rel.encode() + hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def paths(folder: Path, cell: Cell) -> tuple[Path, Path]:
    """The cell's Parquet tables folder and its record."""
    return folder / "cells" / cell.id, folder / "cells" / f"{cell.id}.json"


def cell_glob(folder: Path) -> str:
    """The glob of every cell's tables folder (flowkit.store.parquet's `folders`)."""
    return str(Path(folder).resolve() / "cells" / "*")


def done(folder: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's record if it completed (its tables in place), else None."""
    tables, rec = paths(folder, cell)
    if not (tables.is_dir() and rec.is_file()):
        return None
    record = json.loads(rec.read_text())
    return record if record.get("status") == "completed" else None


def run_cell(cell: Cell, folder: str) -> dict[str, Any]:
    """Run one cell to its record; never raises (a failure is the record's status)."""
    from flowkit.store.parquet import export_tables, seed_cache

    started = time.perf_counter()
    out = Path(folder)
    tables, rec = paths(out, cell)
    tmp = out / "tmp" / f"{cell.id}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    db = str(tmp / "cell.duckdb")
    record: dict[str, Any] = {"cell": asdict(cell), "status": "failed", "error": None}
    try:
        record["cache_seeded"] = seed_cache(db, cell_glob(out))
        record.update(_backtest(cell, db, out / "limits"))
        if record["status"] == "completed":
            record["log_bytes"] = export_tables(db, tables, tmp)
    except Exception as exc:  # isolate the cell: the sweep goes on and says what failed
        if isinstance(exc, FlowkitError):  # a user's mistake says what, not where in flowkit
            record["error"] = str(exc)
        else:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["traceback"] = traceback.format_exc(limit=8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record["seconds"] = time.perf_counter() - started
    text = json.dumps(_plain(record), default=str, allow_nan=False)
    part = rec.with_suffix(f".json.{os.getpid()}")
    part.write_text(text)
    os.replace(part, rec)
    return json.loads(text)  # what a later run reads back: the same values, NaN as None


def _backtest(cell: Cell, db: str, limits: Path) -> dict[str, Any]:
    from flowkit.app import Invocation, RunOptions, run_to_end, train
    from flowkit.runtime.session import Session
    from flowkit.spec.loader import load_workflow
    from flowkit.sweep.limits import SharedLimiter

    options = RunOptions(db=db, model=cell.model, mode="backtest", seed=cell.seed,
                         symbols=list(cell.symbols))
    if cell.train:
        trained = load_workflow(cell.firm, [*cell.overrides, f"learning.train.start={cell.train[0]}",
                                            f"learning.train.end={cell.train[1]}"])
        train(trained, RunOptions(db=db, model=cell.model, seed=cell.seed),
              symbols=list(cell.symbols))
    loaded = load_workflow(cell.firm, list(cell.overrides))
    inv = Invocation(symbols=list(cell.symbols), start=cell.start, end=cell.end, every=cell.every)
    inv.check()
    limiter = SharedLimiter(limits, loaded.spec.runtime.concurrency)
    outcome = run_to_end(Session(loaded, options, limiter=limiter), inv)
    curve = list(outcome.equity)  # (time, equity) at each decision time
    returns = [[str(t), b / a - 1.0] for (_, a), (t, b) in zip(curve, curve[1:]) if a]
    return {"status": outcome.status, "error": outcome.error, "run_id": outcome.run_id,
            "metrics": _pick(outcome.metrics),
            "buy_and_hold": _pick(outcome.baselines.get("buy_and_hold", {})),
            "returns": returns, "warnings": outcome.warnings}


def _pick(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in RECORD_FIELDS if k in metrics}


def _plain(value: Any) -> Any:
    """JSON has no NaN: a metric that cannot be computed is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
