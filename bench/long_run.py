"""Long runs: does the cost of a decision stay constant over the length of a backtest?

The TradingAgents firm (workflows/tradingagents.yaml) with the offline model, on 5 symbols over
--years years ending --end, run twice in this process: with the DuckDB event log, and with a
NullSink (no logging). Prints, per run: wall time; RSS and the size of the checkpoint state at each
year boundary (the first checkpoint in each new year); peak RSS; and for the logged run, the
DuckDB file's bytes per decision after CHECKPOINT, split by table. Targets (issue 12): RSS at
the last year <= 1.2x the first, checkpoint size flat, <= 8 KB per decision, logging <= +25%.

    python bench/long_run.py [--years 10] [--end 2024-12-31] [--symbols AAPL,MSFT,GOOGL,AMZN,NVDA]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from dataclasses import asdict
from typing import Any

from _common import WORKFLOW, machine_line

import flowkit
from flowkit.app import Invocation, RunOptions, Session, run_session
from flowkit.backtest import loop as loop_mod
from flowkit.store import NullSink

SAMPLES: list[tuple[str, float, int]] = []  # (as_of, RSS MB, checkpoint state bytes)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _instrument_checkpoints() -> None:
    real = loop_mod.checkpoint_row

    def measured(run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> dict[str, Any]:
        SAMPLES.append((str(as_of)[:10], rss_mb(), len(json.dumps(state, default=str))))
        return real(run_id, seq, as_of, state)

    loop_mod.checkpoint_row = measured  # type: ignore[assignment]


def one(loaded: Any, symbols: list[str], start: str, end: str, db: str | None) -> dict[str, Any]:
    SAMPLES.clear()
    t0 = time.perf_counter()
    session = Session(loaded, RunOptions(db=db or ":memory:", symbols=symbols, mode="backtest"),
                      log=NullSink() if db is None else None)
    inv = Invocation(symbols=symbols, start=start, end=end)
    session.invocation = asdict(inv)
    outcome = asyncio.run(run_session(session, inv, None))
    session.close()
    wall = time.perf_counter() - t0
    if outcome.status != "completed":
        raise SystemExit(f"run {outcome.run_id} {outcome.status}: {outcome.error}")
    years: dict[str, tuple[str, float, int]] = {}
    for sample in SAMPLES:
        years.setdefault(sample[0][:4], sample)
    return {"wall_s": wall, "decisions": len(outcome.decisions), "years": years,
            "run_id": outcome.run_id}


def file_report(db: str, decisions: int) -> str:
    import duckdb

    con = duckdb.connect(db)
    con.execute("CHECKPOINT")
    tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_type = 'BASE TABLE'").fetchall()]
    raw = {t: con.execute(f'SELECT sum(length(CAST(COLUMNS(*) AS VARCHAR))) FROM "{t}"').fetchall()[0]
           for t in tables}
    con.close()
    size = os.path.getsize(db)
    top = sorted(((sum(v or 0 for v in vals), t) for t, vals in raw.items()), reverse=True)[:5]
    parts = ", ".join(f"{t} {n / decisions / 1e3:.1f}" for n, t in top)
    return (f"{size / 1e6:.1f} MB file, {size / decisions / 1e3:.1f} KB per decision "
            f"(uncompressed text per decision, KB: {parts})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--end", default="2024-12-31")
    args = ap.parse_args()
    symbols = args.symbols.split(",")
    start = f"{int(args.end[:4]) - args.years + 1}-01-01"
    loaded = flowkit.load(WORKFLOW)
    _instrument_checkpoints()
    print(f"long run: {loaded.spec.name} firm, offline model, {len(symbols)} symbols, "
          f"{start}..{args.end}")
    print(f"  {machine_line()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "long.duckdb")
        for name, where in [("DuckDB log", db), ("NullSink", None)]:
            r = results[name] = one(loaded, symbols, start, args.end, where)
            print(f"  {name}: {r['decisions']} decisions in {r['wall_s']:.1f} s")
            for year, (as_of, rss, state) in sorted(r["years"].items()):
                print(f"    {as_of}: RSS {rss:7.0f} MB · checkpoint {state / 1e3:9.1f} KB")
            if where:
                print(f"    {file_report(db, r['decisions'])}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    d, n = results["DuckDB log"], results["NullSink"]
    rss = [s[1] for _, s in sorted(n["years"].items())]
    cps = [s[2] for _, s in sorted(n["years"].items())]
    print(f"  peak RSS {peak:.0f} MB; RSS last/first year {rss[-1] / rss[0]:.2f}x; checkpoint "
          f"last/first year {cps[-1] / max(cps[0], 1):.2f}x; logging {100 * (d['wall_s'] / n['wall_s'] - 1):+.0f}% "
          f"wall time")


if __name__ == "__main__":
    main()
