"""Framework overhead per model call: what flowkit itself costs, apart from the model and litellm.

(a) Over HTTP, the fake server at 0 ms latency (own process, 127.0.0.1), litellm's real path.
    The TradingAgents firm decides one symbol per date over --start..--end (run_session,
    DuckDB log on, cache off), --reps times. Method: the analyst stage runs in sequence instead
    of in parallel (the compiled tree is rewritten in memory: same agents, prompts and calls),
    so no two steps overlap and every interval of wall time belongs to exactly one call.
    Wrappers record wall time and main-thread CPU time around Session.deliberate (one
    decision), each agent step (agent.run_agent: prompt render, model call, validation, step
    and model_call rows appended to the log), LiteLLMModel.complete and litellm.acompletion.
    Per call:
        http      time inside litellm.acompletion: litellm + OpenAI SDK + socket + server
        flowkit   (decision - http) / calls: all the rest, split into
          step      agent step - http: render, ModelRequest, validation, log rows, and
            wrapper LiteLLMModel.complete - http: tenacity, limiter, kwargs, response parsing
          between   decision - agent steps: pattern nodes, state, snapshot, decision row
    `flowkit per call` (the headline) is the median over decisions of (decision - http) / calls;
    the per-row mean is over all calls, median and p90 over calls (or over decisions for the
    two totals). Wall time is what a user waits; main-thread CPU time is what flowkit's code
    costs, and is much less sensitive to other load on a shared machine (time the core is
    taken away does not count; cache contention still does). Expect flowkit's code to cost
    more here than in (b): it runs between litellm calls, with cold caches and litellm's
    pool thread beside it. The wrappers cost ~1-2 us each.
    litellm's own cost per call = http - a raw HTTP round trip (the same request body POSTed on
    one keep-alive connection by a minimal asyncio client); `server` is the fake server's own
    handling time. For scale, the same request body also goes through the OpenAI SDK alone
    and through httpx alone. litellm also runs part of every call on its thread pool: `other
    threads` is process CPU not spent on the main thread (that, plus the DuckDB writer).
    The last line runs the real (parallel) tree and reports the framework time *exposed* on the
    wall clock: decision wall - union of the acompletion intervals in flight.

(b) No HTTP: the built-in offline model, same firm, --symbols decided concurrently per date over
    --offline-start..--end, DuckDB log on. Per agent step: agent.run_agent (render, the offline
    model's own rules, validation, log rows), and the same minus OfflineModel.complete: flowkit
    alone. Offline steps never await anything, so steps do not interleave even under the
    parallel node (checked: `overlapping steps`).

    python bench/call_overhead.py [--start 2024-03-07] [--end 2024-03-28] [--reps 2]
                                  [--symbols AAPL,MSFT,GOOGL,AMZN,NVDA] [--offline-start 2024-02-01]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from _common import (
    PEER_OVERHEAD_MS,
    TARGET_OVERHEAD_MS,
    WORKFLOW,
    FakeServerProcess,
    machine_line,
    med,
    pct,
)

import flowkit
from flowkit.app import Invocation, RunOptions, Session, run_session
from flowkit.graph import agent as agent_step
from flowkit.patterns.parallel import ParallelNode
from flowkit.patterns.sequential import SequentialNode
from flowkit.spec import templates

# ---------------------------------------------------------------- instrumentation


@dataclass
class Span:
    start: float      # perf_counter
    end: float
    cpu: float        # main-thread CPU seconds inside the span (time.thread_time)
    tag: Any = None

    @property
    def wall(self) -> float:
        return self.end - self.start


class Spans:
    def __init__(self) -> None:
        self.by: dict[str, list[Span]] = {}

    def clear(self) -> None:
        self.by = {}

    def __getitem__(self, name: str) -> list[Span]:
        return sorted(self.by.get(name, []), key=lambda s: s.start)

    def wrap_async(self, name: str, fn: Callable, tag: Callable | None = None) -> Callable:
        async def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return await fn(*a, **k)
            finally:
                self.by.setdefault(name, []).append(Span(t0, time.perf_counter(),
                                                         time.thread_time() - c0,
                                                         tag(*a, **k) if tag else None))
        return timed

    def wrap_sync(self, name: str, fn: Callable) -> Callable:
        def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                self.by.setdefault(name, []).append(Span(t0, time.perf_counter(),
                                                         time.thread_time() - c0))
        return timed


SPANS = Spans()
_DONE: set[str] = set()


def instrument_globals(litellm_too: bool) -> None:
    """Module-level functions flowkit calls through attributes (so patching them is seen)."""
    if "common" not in _DONE:
        _DONE.add("common")
        agent_step.run_agent = SPANS.wrap_async("step", agent_step.run_agent, tag=lambda ctx, agent, *_: agent.id)
        templates.render = SPANS.wrap_sync("render", templates.render)
    if litellm_too:
        from flowkit.llm.litellm_model import LiteLLMModel, _litellm

        litellm = _litellm()
        litellm.acompletion = SPANS.wrap_async("http", litellm.acompletion)
        LiteLLMModel.complete = SPANS.wrap_async("complete", LiteLLMModel.complete)
    else:
        from flowkit.llm.offline import OfflineModel

        OfflineModel.complete = SPANS.wrap_async("model", OfflineModel.complete)


def instrument_session(session: Session) -> None:
    session.deliberate = SPANS.wrap_async("decide", session.deliberate)  # type: ignore[method-assign]
    for agent in session.firm.agents.values():
        agent.validate = SPANS.wrap_sync("validate", agent.validate)
    session.log.append = SPANS.wrap_sync("append", session.log.append)


def serialize(node: Any) -> Any:
    """The same tree with every parallel node run in sequence (same children, same names)."""
    if isinstance(node, (ParallelNode, SequentialNode)):
        return SequentialNode(name=node.name, when=node.when,
                              steps=tuple(serialize(s) for s in node.steps))
    return node


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0.0)


def run(loaded, options: RunOptions, inv: Invocation, sequential: bool) -> tuple[Session, float]:
    """One run_session with instrumentation; returns the session and the process CPU used."""
    session = Session(loaded, options)
    if sequential:
        session.firm.root = serialize(session.firm.root)
    session.invocation = asdict(inv)
    instrument_session(session)
    SPANS.clear()
    c0 = time.process_time()
    outcome = asyncio.run(run_session(session, inv, None))
    cpu = time.process_time() - c0
    session.close()
    if outcome.status != "completed":
        raise SystemExit(f"run {outcome.run_id} {outcome.status}: {outcome.error}")
    return session, cpu


# ---------------------------------------------------------------- raw HTTP floor


async def raw_round_trips(port: int, body: bytes, n: int) -> list[float]:
    """POST `body` n times on one keep-alive connection with a minimal client (ms each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        headers = await reader.readuntil(b"\r\n\r\n")
        length = next(int(h.split(b":")[1]) for h in headers.split(b"\r\n")
                      if h.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        out.append((time.perf_counter() - t0) * 1000)
    writer.close()
    return out


async def client_stacks(base_url: str, body: dict[str, Any], n: int) -> dict[str, tuple[list, list]]:
    """The same request through lighter clients: the OpenAI SDK alone, and httpx alone."""
    import httpx
    import openai

    sdk = openai.AsyncOpenAI(base_url=base_url, api_key="sk-local", max_retries=0)
    hx = httpx.AsyncClient()
    calls = {
        "OpenAI SDK": lambda: sdk.chat.completions.create(**body),
        "httpx alone": lambda: _httpx_post(hx, base_url, body),
    }
    out = {}
    for label, call in calls.items():
        wall, cpu = [], []
        for i in range(n + 10):
            t0, c0 = time.perf_counter(), time.thread_time()
            await call()
            if i >= 10:
                wall.append((time.perf_counter() - t0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
        out[label] = (wall, cpu)
    await sdk.close()
    await hx.aclose()
    return out


async def _httpx_post(client: Any, base_url: str, body: dict[str, Any]) -> Any:
    response = await client.post(f"{base_url}/chat/completions", json=body)
    return response.json()


# ---------------------------------------------------------------- (a)


def part_a(loaded, args) -> dict[str, Any]:
    from flowkit.llm.litellm_model import _litellm

    litellm = _litellm()
    real = litellm.acompletion
    captured: dict[str, Any] = {}

    async def capture(**kwargs):  # keep one real request body for the raw floor
        captured.setdefault("body", {k: v for k, v in kwargs.items() if k in (
            "model", "messages", "temperature", "max_tokens", "seed", "response_format")})
        return await real(**kwargs)

    litellm.acompletion = capture
    instrument_globals(litellm_too=True)
    reps: list[dict[str, Any]] = []
    with FakeServerProcess(0.0) as srv, tempfile.TemporaryDirectory() as tmp:
        opts = RunOptions(db=os.path.join(tmp, "bench.duckdb"), model="openai/fake",
                          api_base=srv.base_url, cache="off", symbols=[args.symbol],
                          mode="backtest")
        run(loaded, opts, Invocation(symbols=[args.symbol], date=args.end), sequential=True)  # warm
        inv = Invocation(symbols=[args.symbol], start=args.start, end=args.end)
        for _ in range(args.reps):
            srv.reset()
            session, cpu = run(loaded, opts, inv, sequential=True)
            reps.append({"spans": {k: SPANS[k] for k in list(SPANS.by)}, "cpu": cpu,
                         "calls": session.ctx.calls, "handled": srv.stats()["handled_ms"]})
        srv.reset()
        session, _ = run(loaded, opts, inv, sequential=False)
        par = {"spans": {k: SPANS[k] for k in list(SPANS.by)}, "calls": session.ctx.calls}
        body = dict(captured["body"], model="fake")
        raw = asyncio.run(raw_round_trips(srv.port, json.dumps(body).encode(), 220))[20:]
        stacks = asyncio.run(client_stacks(srv.base_url, body, 100))
    return {"reps": reps, "par": par, "raw": raw, "stacks": stacks}


def _row(name: str, wall: list[float], cpu: list[float] | None = None, *, mean_w: float | None = None,
         mean_c: float | None = None, note: str = "") -> None:
    def trio(xs: list[float] | None, mean: float | None) -> str:
        if not xs and mean is None:
            return f"{'':>23}"
        m = mean if mean is not None else sum(xs) / len(xs)
        if not xs:
            return f"{m:7.3f}{'':>16}"
        return f"{m:7.3f} {med(xs):7.3f} {pct(xs, 90):7.3f}"
    print(f"    {name:34s} {trio(wall, mean_w)}   {trio(cpu, mean_c)}{note}")


def report_a(res: dict[str, Any]) -> None:
    ms = 1000.0
    calls = sum(r["calls"] for r in res["reps"])
    get = lambda k: [s for r in res["reps"] for s in r["spans"].get(k, [])]
    decide, step, http, complete = get("decide"), get("step"), get("http"), get("complete")
    assert len(http) == len(step) == len(complete) == calls, (len(http), len(step), calls)
    per_call_decision_w, per_call_decision_c = [], []
    for r in res["reps"]:  # per decision: (decision - http inside it) / its calls
        sp = r["spans"]
        for d in sp["decide"]:
            inner = [h for h in sp["http"] if d.start <= h.start and h.end <= d.end]
            per_call_decision_w.append((d.wall - sum(h.wall for h in inner)) * ms / len(inner))
            per_call_decision_c.append((d.cpu - sum(h.cpu for h in inner)) * ms / len(inner))
    # steps and calls pair one to one in time order (nothing overlaps in the serialised tree)
    pairs = [(s, c, h) for r in res["reps"]
             for s, c, h in zip(r["spans"]["step"], r["spans"]["complete"], r["spans"]["http"])]
    step_w = [(s.wall - h.wall) * ms for s, _, h in pairs]
    step_c = [(s.cpu - h.cpu) * ms for s, _, h in pairs]
    wrap_w = [(c.wall - h.wall) * ms for _, c, h in pairs]
    wrap_c = [(c.cpu - h.cpu) * ms for _, c, h in pairs]
    tot = lambda spans, attr: sum(getattr(s, attr) for s in spans) * ms / calls
    part = {k: (tot(get(k), "wall"), tot(get(k), "cpu")) for k in ("render", "validate", "append")}
    raw = res["raw"]
    handled = [h for r in res["reps"] for h in r["handled"]]
    http_w, http_c = [h.wall * ms for h in http], [h.cpu * ms for h in http]
    flowkit_w = (tot(decide, "wall") - tot(http, "wall"))
    flowkit_c = (tot(decide, "cpu") - tot(http, "cpu"))
    in_step_w, in_step_c = tot(step, "wall") - tot(http, "wall"), tot(step, "cpu") - tot(http, "cpu")
    rest_w = in_step_w - sum(p[0] for p in part.values()) - sum(wrap_w) / calls
    rest_c = in_step_c - sum(p[1] for p in part.values()) - sum(wrap_c) / calls
    proc_cpu = sum(r["cpu"] for r in res["reps"]) * ms / calls
    headline = med(per_call_decision_w)

    print(f"(a) over HTTP, fake server at 0 ms: {len(decide)} decisions x {calls // len(decide)} "
          f"calls ({len(res['reps'])} runs), analyst stage serialised so steps never overlap")
    print(f"    {'per call, ms':34s} {'wall: mean':>10} {'median':>7} {'p90':>7}   "
          f"{'CPU: mean':>9} {'median':>7} {'p90':>7}")
    _row("flowkit total (decision - http)", per_call_decision_w, per_call_decision_c,
         mean_w=flowkit_w, mean_c=flowkit_c, note="   <- median over decisions")
    _row("  in agent steps (step - http)", step_w, step_c, mean_w=in_step_w, mean_c=in_step_c)
    _row("    prompt render", [], None, mean_w=part["render"][0], mean_c=part["render"][1])
    _row("    output validation", [], None, mean_w=part["validate"][0], mean_c=part["validate"][1])
    _row("    log rows appended", [], None, mean_w=part["append"][0], mean_c=part["append"][1],
         note="   (buffered; the writer thread commits)")
    _row("    LiteLLMModel wrapper", wrap_w, wrap_c, note="   (tenacity, limiter, kwargs, parse)")
    _row("    rest of run_agent", [], None, mean_w=rest_w, mean_c=rest_c)
    _row("  between steps (nodes, state)", [], None, mean_w=flowkit_w - in_step_w,
         mean_c=flowkit_c - in_step_c)
    _row("http: litellm.acompletion", http_w, http_c, note="   (CPU: main thread only)")
    _row("  raw HTTP round trip (floor)", raw, None, note="   (minimal asyncio client)")
    _row("  fake server handling", handled)
    _row("  litellm + OpenAI SDK (http - raw)", [x - med(raw) for x in http_w])
    for label, (w, c) in res["stacks"].items():
        _row(f"  same request via {label}", w, c)
    _row("process CPU, all threads", [], None, mean_c=proc_cpu,
         note=f"   (other threads: {proc_cpu - flowkit_c - tot(http, 'cpu'):.3f}: litellm's "
              f"pool, DuckDB writer)")
    verdict = "met" if headline <= TARGET_OVERHEAD_MS else "NOT met"
    print(f"    => flowkit {headline:.3f} ms per call wall ({med(per_call_decision_c):.3f} ms CPU): "
          f"target <= {TARGET_OVERHEAD_MS} ms {verdict}; the peer spends {PEER_OVERHEAD_MS} ms. "
          f"litellm itself: {med(http_w) - med(raw):.2f} ms per call (median)")
    par = res["par"]["spans"]
    exposed, walls = [], []
    for d in par["decide"]:
        inside = [(max(h.start, d.start), min(h.end, d.end)) for h in par["http"]
                  if h.end > d.start and h.start < d.end]
        exposed.append((d.wall - union_length(inside)) * ms)
        walls.append(d.wall * ms)
    per = res["par"]["calls"] / len(par["decide"])
    print(f"    real tree (parallel analysts): decision wall median {med(walls):.1f} ms "
          f"(serialised: {med([d.wall * ms for d in decide]):.1f} ms); no model call in flight "
          f"for {med(exposed):.2f} ms of it = {med(exposed) / per:.3f} ms per call exposed")


# ---------------------------------------------------------------- (b)


def part_b(loaded, args) -> dict[str, Any]:
    instrument_globals(litellm_too=False)
    symbols = args.symbols.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        opts = RunOptions(db=os.path.join(tmp, "bench.duckdb"), symbols=symbols, mode="backtest")
        run(loaded, opts, Invocation(symbols=symbols[:1], date=args.end), sequential=False)  # warm
        inv = Invocation(symbols=symbols, start=args.offline_start, end=args.end)
        session, cpu = run(loaded, opts, inv, sequential=False)
    spans = {k: SPANS[k] for k in list(SPANS.by)}
    steps = spans["step"]
    overlaps = sum(1 for a, b in itertools.pairwise(steps) if b.start < a.end)
    return {"spans": spans, "calls": session.ctx.calls, "overlaps": overlaps, "cpu": cpu,
            "symbols": len(symbols)}


def report_b(res: dict[str, Any]) -> None:
    ms = 1000.0
    spans, calls = res["spans"], res["calls"]
    steps, models = spans["step"], spans["model"]
    assert len(steps) == len(models) == calls
    pairs = list(zip(steps, models))
    tot = lambda k, attr: sum(getattr(s, attr) for s in spans.get(k, [])) * ms / calls
    print(f"(b) offline model, no HTTP: {len(spans['decide'])} decisions ({res['symbols']} symbols "
          f"at a time), {calls} agent steps, DuckDB log on; overlapping steps: {res['overlaps']}")
    print(f"    {'per agent step, ms':34s} {'wall: mean':>10} {'median':>7} {'p90':>7}   "
          f"{'CPU: mean':>9} {'median':>7} {'p90':>7}")
    _row("run_agent (the whole step)", [s.wall * ms for s in steps], [s.cpu * ms for s in steps])
    _row("  offline model's own rules", [m.wall * ms for m in models], [m.cpu * ms for m in models])
    _row("  flowkit (step - model)", [(s.wall - m.wall) * ms for s, m in pairs],
         [(s.cpu - m.cpu) * ms for s, m in pairs])
    for k, name in (("render", "prompt render"), ("validate", "output validation"),
                    ("append", "log rows appended")):
        _row(f"    {name}", [], None, mean_w=tot(k, "wall"), mean_c=tot(k, "cpu"))
    decide = union_length([(d.start, d.end) for d in spans["decide"]]) * ms
    _row("decision phase / step", [], None, mean_w=decide / calls,
         note="   (wall; + nodes, state, market snapshot)")
    _row("process CPU / step, all threads", [], None, mean_c=res["cpu"] * ms / calls,
         note="   (+ DuckDB writer, risk, broker, metrics)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--start", default="2024-03-07", help="(a) first decision date")
    ap.add_argument("--end", default="2024-03-28", help="(a) and (b) last decision date")
    ap.add_argument("--symbol", default="AAPL", help="(a) the symbol")
    ap.add_argument("--reps", type=int, default=2, help="(a) runs of the date range")
    ap.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,NVDA", help="(b) symbols")
    ap.add_argument("--offline-start", default="2024-02-01", help="(b) first decision date")
    ap.add_argument("--skip-http", action="store_true", help="only (b)")
    args = ap.parse_args()
    loaded = flowkit.load(WORKFLOW)
    print(f"framework overhead per call: {loaded.spec.name} firm")
    print(f"  {machine_line()}")
    if not args.skip_http:
        report_a(part_a(loaded, args))
    report_b(part_b(loaded, args))
    print(f"  load average after: {machine_line().split('load average ')[1]}")


if __name__ == "__main__":
    main()
