"""Offline backtest throughput: the TradingAgents firm on 5 symbols x 252 days.

Prints wall time for the whole run (logging in), the decision loop alone, per-decision and
per-agent-step cost, and what logging costs (the same run with the event log in memory only
vs a DuckDB file). Target: <= 10 s on a 2-core machine, logging included.

    python bench/backtest_throughput.py [--days 252] [--symbols AAPL,MSFT,GOOGL,AMZN,NVDA]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import flowkit
from flowkit.app import Invocation, RunOptions, Session, run_session
from flowkit.store import NullSink

ROOT = Path(__file__).resolve().parents[1]


def one(symbols: list[str], start: str, end: str, db: str | None) -> dict[str, float]:
    t0 = time.perf_counter()
    loaded = flowkit.load(ROOT / "workflows" / "tradingagents.yaml")
    session = Session(loaded, RunOptions(db=db or ":memory:", symbols=symbols, mode="backtest"),
                      log=NullSink() if db is None else None)
    inv = Invocation(symbols=symbols, start=start, end=end)
    session.invocation = asdict(inv)
    t1 = time.perf_counter()
    outcome = asyncio.run(run_session(session, inv, None))
    t2 = time.perf_counter()
    session.close()
    t3 = time.perf_counter()
    steps = session.ctx.calls
    return {"setup_s": t1 - t0, "run_s": t2 - t1, "close_s": t3 - t2, "total_s": t3 - t0,
            "decisions": session.decided, "agent_steps": steps,
            "final_equity": outcome.equity[-1][1] if outcome.equity else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA")
    ap.add_argument("--start", default="2024-01-02")
    ap.add_argument("--end", default="2024-12-31")
    args = ap.parse_args()
    symbols = args.symbols.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        logged = one(symbols, args.start, args.end, os.path.join(tmp, "bench.duckdb"))
        size = os.path.getsize(os.path.join(tmp, "bench.duckdb")) / 1e6
    bare = one(symbols, args.start, args.end, None)
    print(f"TradingAgents firm, offline model, {len(symbols)} symbols, {args.start}..{args.end}, "
          f"{os.cpu_count()} cores")
    for name, r in (("logging to DuckDB", logged), ("no logging", bare)):
        per_dec = 1000 * r["run_s"] / max(r["decisions"], 1)
        per_step = 1e6 * r["run_s"] / max(r["agent_steps"], 1)
        print(f"  {name:18s} total {r['total_s']:6.2f} s  (setup {r['setup_s']:.2f}, loop+metrics "
              f"{r['run_s']:.2f}, final flush {r['close_s']:.2f})  {r['decisions']} decisions, "
              f"{r['agent_steps']} agent steps: {per_dec:.2f} ms/decision, {per_step:.0f} us/step")
    print(f"  logging costs {logged['total_s'] - bare['total_s']:+.2f} s "
          f"({100 * (logged['total_s'] / bare['total_s'] - 1):+.0f}%); DuckDB file {size:.1f} MB; "
          f"same result: {abs(logged['final_equity'] - bare['final_equity']) < 1e-6}")


if __name__ == "__main__":
    main()
