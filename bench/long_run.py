"""Long runs: does the cost of a decision stay constant over the length of a backtest?

The TradingAgents firm (workflows/tradingagents.yaml) with the offline model, on --symbols over
--years years ending --end, run twice, each in its own process so neither inherits the other's
heap: with the DuckDB event log, and with a NullSink (no logging). Prints, per run: wall time;
per year, the RSS at its first decision time, the highest RSS seen at any of its decision times,
and the size of the state a checkpoint would hold at its start; peak RSS; and for the logged run, the DuckDB file's bytes per
decision after CHECKPOINT and after compaction (the tables copied into a fresh file, which drops
the free space many small commits leave), split by table. Targets (issue 12): RSS at the last
year (its highest) <= 1.2x the first's, checkpoint size flat, <= 8 KB per decision, logging <= +25%.

    python bench/long_run.py [--years 10] [--end 2024-12-31] [--symbols AAPL,MSFT,GOOGL,AMZN,NVDA]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

from _common import WORKFLOW, machine_line

# Per year: [RSS MB at its first decision time, highest RSS MB at any of them, checkpoint state
# bytes at its first decision time]
YEARS: dict[str, list[float]] = {}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _instrument() -> None:
    """Sample RSS at every decision time (reading /proc costs ~10 us) and, at each year's first,
    the size of the state a checkpoint would hold then (checkpoints themselves come every 10 s,
    so not every year has one)."""
    from flowkit.backtest import loop as loop_mod

    replay = loop_mod.Loop.replay_bars

    def sampled(self: Any, t: Any) -> None:
        rss, year = rss_mb(), str(t)[:4]
        if year not in YEARS:
            YEARS[year] = [rss, rss, len(json.dumps(self.checkpoint_state(), default=str))]
        YEARS[year][1] = max(YEARS[year][1], rss)
        replay(self, t)

    loop_mod.Loop.replay_bars = sampled  # type: ignore[method-assign]


def child(symbols: list[str], start: str, end: str, db: str | None) -> dict[str, Any]:
    """One run in this process; what main() prints about it."""
    import flowkit
    from flowkit.app import Invocation, RunOptions, Session, run_session
    from flowkit.store import NullSink

    loaded = flowkit.load(WORKFLOW)
    _instrument()
    t0 = time.perf_counter()
    session = Session(loaded, RunOptions(db=db or ":memory:", symbols=symbols, mode="backtest"),
                      log=NullSink() if db is None else None)
    inv = Invocation(symbols=symbols, start=start, end=end)
    session.invocation = asdict(inv)
    outcome = asyncio.run(run_session(session, inv, None))
    session.close()  # returns at once: the writer commits the last rows
    closed = time.perf_counter() - t0
    session.log.flush()  # ... which the process waits for before it exits: counted in the wall
    wall = time.perf_counter() - t0
    if outcome.status != "completed":
        raise SystemExit(f"run {outcome.run_id} {outcome.status}: {outcome.error}")
    decisions = session.decided
    return {"wall_s": wall, "closed_s": closed, "decisions": decisions, "years": YEARS, "peak_mb": peak_mb(),
            "file": file_report(db, decisions) if db else None}


def file_report(db: str, decisions: int) -> str:
    import duckdb

    con = duckdb.connect(db)
    con.execute("CHECKPOINT")
    tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_type = 'BASE TABLE'").fetchall()]
    raw = {t: con.execute(f'SELECT sum(length(CAST(COLUMNS(*) AS VARCHAR))) FROM "{t}"').fetchall()[0]
           for t in tables}
    compact = db + ".compact"
    con.execute(f"ATTACH '{compact}' AS compact")
    (name,) = con.execute("SELECT current_database()").fetchone()
    con.execute(f'COPY FROM DATABASE "{name}" TO compact')
    con.close()
    size, small = os.path.getsize(db), os.path.getsize(compact)
    top = sorted(((sum(v or 0 for v in vals), t) for t, vals in raw.items()), reverse=True)[:5]
    parts = ", ".join(f"{t} {n / decisions / 1e3:.1f}" for n, t in top)
    return (f"{size / 1e6:.1f} MB file, {size / decisions / 1e3:.1f} KB per decision after "
            f"CHECKPOINT, {small / decisions / 1e3:.1f} KB compacted (uncompressed text per "
            f"decision, KB: {parts})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA")
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--end", default="2024-12-31")
    ap.add_argument("--child", choices=["log", "null"], help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    symbols = args.symbols.split(",")
    start = f"{int(args.end[:4]) - args.years + 1}-01-01"
    if args.child:
        print(json.dumps(child(symbols, start, args.end, args.db if args.child == "log" else None)))
        return
    print(f"long run: tradingagents firm, offline model, {len(symbols)} symbols, {start}..{args.end}")
    print(f"  {machine_line()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, mode in [("DuckDB log", "log"), ("NullSink", "null")]:
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--db",
                                  os.path.join(tmp, "long.duckdb"), "--symbols", args.symbols,
                                  "--years", str(args.years), "--end", args.end],
                                 check=True, capture_output=True, text=True).stdout
            r = results[name] = json.loads(out.splitlines()[-1])
            print(f"  {name}: {r['decisions']} decisions in {r['wall_s']:.1f} s (close returned at "
                  f"{r['closed_s']:.1f} s), peak RSS {r['peak_mb']:.0f} MB")
            for year, (first, high, state) in sorted(r["years"].items()):
                print(f"    {year}: RSS {first:5.0f} MB at its start, {high:5.0f} MB at most · "
                      f"checkpoint state at its start {state / 1e3:5.1f} KB")
            if r["file"]:
                print(f"    {r['file']}")
    d, n = results["DuckDB log"], results["NullSink"]
    for name, r in results.items():
        ys = [y for _, y in sorted(r["years"].items())]
        first, last = ys[0], ys[-1]
        states = [y[2] for y in ys[1:]]  # the first year starts empty
        print(f"  {name}: last year / first year: highest RSS {last[1] / first[1]:.2f}x; "
              f"checkpoint, last / first {states[-1] / states[0]:.2f}x, largest / smallest "
              f"{max(states) / min(states):.2f}x")
    print(f"  logging {100 * (d['wall_s'] / n['wall_s'] - 1):+.0f}% wall time")
    print(f"  {machine_line()}")


if __name__ == "__main__":
    main()
