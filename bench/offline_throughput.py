"""Offline-model throughput: agent steps per second for the whole TradingAgents firm, with the
event log on DuckDB and with a NullSink (logging off), for comparison.

What runs: workflows/tradingagents.yaml with the built-in offline model (no network), through
run_session as `flowkit run --start --end` would, --symbols decided concurrently per date over
--start..--end (5 symbols x ~60 trading days by default; reflection learning on, as the YAML
says). Each configuration runs --reps times in this process after one warm-up; the best run is
reported (the least disturbed by other load on a shared machine) with the median beside it.

Columns:
  steps       agent steps (one offline model call each) = ctx.calls
  loop s      Loop.run: replay bars, decide every symbol, risk review, broker, snapshot and
              checkpoints, for every date (the trading loop proper)
  steps/s     steps / loop s, the headline (median in brackets)
  us/step     loop s / steps (everything in the loop, per step)
  eval s      metrics, baselines and report rows after the loop
  close s     close() (returns at once) and the wait for the last commit, which a process's
              exit waits for: rows still buffered committed to DuckDB (0 with NullSink)
  total s     Session() + run_session + close
  steps/s all steps / total s

    python bench/offline_throughput.py [--symbols AAPL,MSFT,GOOGL,AMZN,NVDA]
                                       [--start 2024-01-02] [--end 2024-03-28] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import asdict
from typing import Any

from _common import WORKFLOW, machine_line, med

import flowkit
from flowkit.app import Invocation, RunOptions, Session, run_session
from flowkit.backtest import loop as loop_mod
from flowkit.store import NullSink

LOOP_S: list[float] = []


def _instrument_loop() -> None:
    real = loop_mod.Loop.run

    async def timed(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await real(self, *a, **k)
        finally:
            LOOP_S.append(time.perf_counter() - t0)

    loop_mod.Loop.run = timed  # type: ignore[method-assign]


def one(loaded, symbols: list[str], start: str, end: str, db: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    session = Session(loaded, RunOptions(db=db or ":memory:", symbols=symbols, mode="backtest"),
                      log=NullSink() if db is None else None)
    inv = Invocation(symbols=symbols, start=start, end=end)
    session.invocation = asdict(inv)
    t1 = time.perf_counter()
    LOOP_S.clear()
    outcome = asyncio.run(run_session(session, inv, None))
    t2 = time.perf_counter()
    session.close()
    session.log.flush()  # close returns at once; the exit waits for the last commit
    t3 = time.perf_counter()
    if outcome.status != "completed":
        raise SystemExit(f"run {outcome.run_id} {outcome.status}: {outcome.error}")
    loop_s = LOOP_S[-1]
    return {"steps": session.ctx.calls, "decisions": session.decided, "loop_s": loop_s,
            "eval_s": (t2 - t1) - loop_s, "close_s": t3 - t2, "total_s": t3 - t0,
            "setup_s": t1 - t0,
            "equity": outcome.equity[-1][1] if outcome.equity else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA")
    ap.add_argument("--start", default="2024-01-02")
    ap.add_argument("--end", default="2024-03-28")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    symbols = args.symbols.split(",")
    loaded = flowkit.load(WORKFLOW)
    _instrument_loop()
    print(f"offline throughput: {loaded.spec.name} firm, offline model, {len(symbols)} symbols, "
          f"{args.start}..{args.end}")
    print(f"  {machine_line()}")
    results: dict[str, list[dict[str, Any]]] = {"DuckDB log": [], "NullSink": []}
    with tempfile.TemporaryDirectory() as tmp:
        one(loaded, symbols[:1], args.end, args.end, None)  # warm-up: imports, first compile
        for i in range(args.reps):  # interleaved, so both see the same machine load
            db = os.path.join(tmp, f"bench{i}.duckdb")
            results["DuckDB log"].append(one(loaded, symbols, args.start, args.end, db))
            results["DuckDB log"][-1]["mb"] = os.path.getsize(db) / 1e6
            results["NullSink"].append(one(loaded, symbols, args.start, args.end, None))

    r0 = results["DuckDB log"][0]
    print(f"  {r0['decisions']} decisions, {r0['steps']} agent steps "
          f"({r0['steps'] / r0['decisions']:.0f} per decision) per run; best of {args.reps} "
          f"(median in brackets)")
    print(f"  {'':10} {'loop s':>6} {'steps/s':>16} {'us/step':>7} {'eval s':>6} {'close s':>7} "
          f"{'setup s':>7} {'total s':>7} {'steps/s all':>11}")
    best = {}
    for name, runs in results.items():
        b = min(runs, key=lambda r: r["loop_s"])
        best[name] = b
        rate = [r["steps"] / r["loop_s"] for r in runs]
        print(f"  {name:10} {b['loop_s']:6.2f} {b['steps'] / b['loop_s']:7.0f} "
              f"{f'({med(rate):.0f})':>8} {1e6 * b['loop_s'] / b['steps']:7.0f} {b['eval_s']:6.2f} "
              f"{b['close_s']:7.2f} {b['setup_s']:7.2f} {b['total_s']:7.2f} "
              f"{b['steps'] / b['total_s']:11.0f}")
    d, n = best["DuckDB log"], best["NullSink"]
    same = all(abs(r["equity"] - n["equity"]) < 1e-6 for rs in results.values() for r in rs)
    print(f"  logging costs {1e6 * (d['loop_s'] / d['steps'] - n['loop_s'] / n['steps']):+.0f} us "
          f"per step in the loop ({100 * (d['loop_s'] / n['loop_s'] - 1):+.0f}%), "
          f"{d['total_s'] - n['total_s']:+.2f} s end to end; DuckDB file {d['mb']:.1f} MB; "
          f"same final equity in every run: {same}")
    print(f"  load average after: {machine_line().split('load average ')[1]}")


if __name__ == "__main__":
    main()
