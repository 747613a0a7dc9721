"""Decision latency: the TradingAgents firm over its real HTTP path, fixed model latency.

What runs: workflows/tradingagents.yaml, every profile pointed at `openai/fake` on flowkit's
FakeOpenAIServer (own process, 127.0.0.1, every answer delayed by exactly --latency-ms), through
`run_session` (the same entry point as `flowkit run --date`), DuckDB event log on, cache off. So
each call goes flowkit -> RemoteModel (tenacity, limiter) -> the lean OpenAI-compatible transport
(flowkit.llm.openai_compat) -> HTTP -> server, and back through output validation and logging. Every measured run is a
fresh Session and event loop, as `flowkit run` would be; a warm-up decision runs first and is
reported on its own (litellm's import and first-call setup).

Columns, per row (N symbols decided concurrently on one date):
  calls       model calls the server received per decision / what the node tree predicts
  crit        the critical path in calls, derived from the compiled node tree (flowkit.patterns.plan
              call_plan): parallel analysts count once, a debate of P participants x R rounds
              plus judge counts P*R+1, ...; for N symbols it is still one decision's path
  sched       unit-latency schedule length for N concurrent decisions under the firm's
              `runtime.concurrency` limit (FIFO); equals crit when the limit does not bind
  ideal ms    sched x latency
  wall, best  decision-phase wall time: first Session.decide start to last decide end, median
              and best of --reps runs (the best is the least disturbed by other load on a
              shared machine)
  wall/crit   wall / (crit x latency): 1.00 would be a framework and HTTP stack that cost nothing
  wall/sched  the same against the concurrency-limited optimum
  http+       mean per call of (time inside litellm.acompletion - the server's handling time,
              latency included): what litellm, the OpenAI SDK and the socket add per call; it
              grows with calls in flight because their CPU work shares one core and one GIL
  run ms      all of run_session (run row, risk, broker, checkpoint, final flush), median
  peer ms     the sequential peer model: every call one after another, N symbols one after
              another: N x calls x latency; `peer+ovh` adds its 2.7 ms of framework per call
              (the peer makes 15 calls per decision; we charge it our call count)
  speedup     peer+ovh / wall
  inflight    most requests the server had in flight at once

    python bench/decision_latency.py [--latency-ms 200] [--counts 1,3,5] [--reps 3]
                                     [--concurrency N] [--date 2024-03-28] [--workflow PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import asdict
from typing import Any

from _common import (
    PEER_OVERHEAD_MS,
    WORKFLOW,
    FakeServerProcess,
    call_plan,
    machine_line,
    med,
    scheduled_length,
)

import flowkit
from flowkit.app import Invocation, RunOptions, Session, run_session

HTTP_SPANS: list[float] = []  # seconds inside a transport's send (client + HTTP), per call


def instrument_transports() -> float:
    """Record the wall time of each model call's transport (the lean one and litellm's); the
    seconds `import litellm` takes, for scale (the lean path never pays it)."""
    from flowkit.llm.openai_compat import OpenAICompatTransport
    from flowkit.llm.transport import LiteLLMTransport, _litellm

    for cls in (OpenAICompatTransport, LiteLLMTransport):
        real = cls.send

        async def timed(self: Any, args: Any, real: Any = real) -> Any:
            t = time.perf_counter()
            try:
                return await real(self, args)
            finally:
                HTTP_SPANS.append(time.perf_counter() - t)

        cls.send = timed  # type: ignore[method-assign]
    t0 = time.perf_counter()
    _litellm()
    return time.perf_counter() - t0


def decide_once(loaded, symbols: list[str], date: str, srv: FakeServerProcess, db: str) -> dict:
    t0 = time.perf_counter()
    session = Session(loaded, RunOptions(db=db, model="openai/fake", api_base=srv.base_url,
                                         cache="off", symbols=symbols, mode="decide"))
    inv = Invocation(symbols=symbols, date=date)
    session.invocation = asdict(inv)
    spans: list[tuple[float, float]] = []
    inner = session.deliberate

    async def timed_decide(*a, **k):
        t = time.perf_counter()
        try:
            return await inner(*a, **k)
        finally:
            spans.append((t, time.perf_counter()))

    session.deliberate = timed_decide  # type: ignore[method-assign]
    srv.reset()
    HTTP_SPANS.clear()
    t1 = time.perf_counter()
    outcome = asyncio.run(run_session(session, inv, None))
    run_s = time.perf_counter() - t1
    session.close()
    if outcome.status != "completed":
        raise SystemExit(f"run {outcome.run_id} {outcome.status}: {outcome.error}")
    stats = srv.stats()
    http_excess = (sum(HTTP_SPANS) * 1000 - sum(stats["handled_ms"])) / max(len(HTTP_SPANS), 1)
    return {"wall_s": max(e for _, e in spans) - min(s for s, _ in spans), "run_s": run_s,
            "setup_s": t1 - t0, "requests": stats["requests"], "calls": session.ctx.calls,
            "in_flight": stats["max_in_flight"], "http_excess_ms": http_excess,
            "session": session}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--latency-ms", type=float, default=200.0, help="fixed server latency per call")
    ap.add_argument("--counts", default="1,3,5", help="numbers of symbols decided concurrently")
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA")
    ap.add_argument("--date", default="2024-03-28")
    ap.add_argument("--reps", type=int, default=3, help="runs per row (median and best reported)")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="override runtime.concurrency (default: the workflow's value)")
    ap.add_argument("--workflow", default=str(WORKFLOW))
    args = ap.parse_args()
    universe = args.symbols.split(",")
    counts = [int(c) for c in args.counts.split(",")]
    if max(counts) > len(universe):
        ap.error(f"--counts asks for {max(counts)} symbols but --symbols names {len(universe)}")
    overrides = [f"runtime.concurrency={args.concurrency}"] if args.concurrency else None
    loaded = flowkit.load(args.workflow, overrides)
    concurrency = loaded.spec.runtime.concurrency
    lat = args.latency_ms / 1000

    print(f"decision latency: {loaded.spec.name} firm, lean transport -> FakeOpenAIServer (own process), "
          f"{args.latency_ms:g} ms per call, cache off, DuckDB log on, runtime.concurrency "
          f"{concurrency}, {args.date}")
    print(f"  {machine_line()}")

    rows = []
    with FakeServerProcess(args.latency_ms) as srv, tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.duckdb")
        import_s = instrument_transports()  # before the clock of any decision
        warm = decide_once(loaded, universe[:1], args.date, srv, db)  # first-call setup
        plan = call_plan(warm["session"].firm.root)
        for n in counts:
            runs = [decide_once(loaded, universe[:n], args.date, srv, db) for _ in range(args.reps)]
            rows.append((n, runs))

    crit = plan.critical
    print(f"  per decision (from the node tree): {plan.total} calls, critical path {crit} calls, "
          f"widest stage {plan.width} calls" + "".join(f"\n  note: {x}" for x in plan.notes))
    print(f"  {'sym':>3} {'calls':>7} {'crit':>4} {'sched':>5} {'ideal ms':>8} {'wall ms':>7} "
          f"{'best':>5} {'wall/crit':>9} {'wall/sched':>10} {'http+':>6} {'run ms':>6} "
          f"{'peer ms':>7} {'peer+ovh':>8} {'speedup':>7} {'inflight':>8}")
    mismatch: list[str] = []
    for n, runs in rows:
        sched = scheduled_length(plan, n, concurrency)
        wall = med([r["wall_s"] for r in runs])
        best = min(r["wall_s"] for r in runs)
        req = runs[0]["requests"]
        per_dec = req / n
        peer = n * per_dec * lat
        peer_ovh = n * per_dec * (lat + PEER_OVERHEAD_MS / 1000)
        if per_dec != plan.total:
            mismatch.append(f"{n} symbols: the server got {per_dec:g} calls per decision, the "
                            f"node tree predicts {plan.total} (a `when:` that did not hold, a "
                            f"manager that assigned fewer workers, re-asks...)")
        print(f"  {n:>3} {f'{per_dec:g}/{plan.total}':>7} {crit:>4} {sched:>5} "
              f"{sched * lat * 1000:>8.0f} {wall * 1000:>7.0f} {best * 1000:>5.0f} "
              f"{wall / (crit * lat):>9.3f} {wall / (sched * lat):>10.3f} "
              f"{med([r['http_excess_ms'] for r in runs]):>6.1f} "
              f"{med([r['run_s'] for r in runs]) * 1000:>6.0f} {peer * 1000:>7.0f} "
              f"{peer_ovh * 1000:>8.0f} {peer_ovh / wall:>6.1f}x {runs[0]['in_flight']:>8}")
    for m in mismatch:
        print(f"  note: {m}")
    one = med([r["wall_s"] for r in rows[0][1]])
    print(f"  time above the critical path ({counts[0]} symbol{'s' if counts[0] > 1 else ''}): "
          f"{(one - crit * lat) * 1000:.1f} ms per decision, "
          f"{(one - crit * lat) * 1000 / crit:.2f} ms per critical-path call (flowkit + client "
          f"+ HTTP; bench/call_overhead.py splits it)")
    print(f"  first decision in a fresh process: Session() {warm['setup_s'] * 1000:.0f} ms, "
          f"decision {warm['wall_s'] * 1000:.0f} ms ({(warm['wall_s'] - crit * lat) * 1000:.0f} "
          f"ms above the critical path); `import litellm`, which the lean path never pays: "
          f"{import_s * 1000:.0f} ms")
    print(f"  load average after: {machine_line().split('load average ')[1]}")


if __name__ == "__main__":
    main()
