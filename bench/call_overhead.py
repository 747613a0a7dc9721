"""What a model call costs besides the model: flowkit against a bare OpenAI SDK loop, one run.

Everything talks to one fake OpenAI-compatible server (flowkit.testing.fakeserver in its own
process, 127.0.0.1, 0 ms latency). Each contender runs in a fresh child process, so start-up
and peak RSS are its own:

- flowkit (lean): the TradingAgents firm, `openai/fake` at the server's api_base (the lean
  transport: HTTP/1.1 on asyncio streams), DuckDB log on, cache off, `runtime.concurrency=1` so every call runs one
  after another like the SDK loop; `--decisions` decisions of one symbol through
  `Session.deliberate`;
- flowkit (litellm): the same with the litellm transport (what every call paid before);
- bare OpenAI SDK: `openai.AsyncOpenAI(...).chat.completions.create` on the request bodies
  flowkit sent (captured by the server), sequentially;
- raw HTTP: the same bodies POSTed on one keep-alive connection by a minimal asyncio client
  (the floor: server + socket).

Per contender:
  per call       wall per model call (flowkit: decision wall / its calls; median of decisions,
                 and the best, least disturbed by other load; the SDK: windows of as many calls)
  client+fw      per call - raw HTTP round trip of the same bodies: the framework and client
  CPU per call   process CPU (all threads: DuckDB writer, litellm's pool) / calls
  start-up       process spawn -> first decision (or first answer): interpreter and imports,
                 `Session()`, the first decision itself
  peak RSS       after the last call (flowkit: also right after the first decision)
and, last, one real `flowkit run` of one decision (CLI, estimate-vs-actual summary included):
wall from spawn to exit and peak RSS.

    python bench/call_overhead.py [--decisions 12] [--symbol AAPL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, WORKFLOW, FakeServerProcess, machine_line, med

TARGET_MS, TARGET_STARTUP_S, TARGET_RSS_MB = 1.0, 1.0, 200.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- children


def child_flowkit(url: str, spawn: float, decisions: int, symbol: str, litellm: bool) -> dict:
    t_imports = time.time()
    from flowkit.runtime.session import RunOptions, Session
    from flowkit.spec.loader import load_workflow

    if litellm:
        from flowkit.llm import transport

        transport.LEAN_PREFIXES = ()
    imported = time.time()
    tmp = tempfile.mkdtemp()
    loaded = load_workflow(WORKFLOW, overrides=["runtime.concurrency=1"])
    session = Session(loaded, RunOptions(db=os.path.join(tmp, "bench.duckdb"),
                                         model="openai/fake", api_base=url, cache="off",
                                         symbols=[symbol], mode="backtest"))
    built = time.time()
    times = list(session.market.bars(symbol).close_time[-decisions - 1:])
    out: dict[str, Any] = {"spawn_to_main_s": t_imports - spawn, "imports_s": imported - t_imports,
                           "session_s": built - imported}

    async def run() -> None:
        session.start()
        t0 = time.time()
        await session.deliberate(symbol, times[0])
        out["first_decision_s"] = time.time() - t0
        out["startup_s"] = time.time() - spawn
        out["rss_first_mb"] = _rss_mb()
        walls, calls = [], []
        c0, n0 = time.process_time(), session.ctx.calls
        for t in times[1:]:
            before, w0 = session.ctx.calls, time.perf_counter()
            await session.deliberate(symbol, t)
            walls.append((time.perf_counter() - w0) * 1000)
            calls.append(session.ctx.calls - before)
        out["cpu_per_call_ms"] = (time.process_time() - c0) * 1000 / (session.ctx.calls - n0)
        out["per_call_ms"] = [w / c for w, c in zip(walls, calls)]  # per decision
        out["calls_per_decision"] = med(calls)
        await session.aclose()

    asyncio.run(run())
    session.finish("completed", None)
    session.close()
    out["rss_mb"] = _rss_mb()
    return out


def child_sdk(url: str, spawn: float, bodies_file: str) -> dict:
    t_imports = time.time()
    import openai

    imported = time.time()
    bodies = json.loads(Path(bodies_file).read_text())
    out: dict[str, Any] = {"spawn_to_main_s": t_imports - spawn, "imports_s": imported - t_imports}

    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="sk-local", max_retries=0)
        t0 = time.time()
        await client.chat.completions.create(**bodies[0])
        out["first_decision_s"] = time.time() - t0
        out["startup_s"] = time.time() - spawn
        walls = []
        c0 = time.process_time()
        for body in bodies[1:]:
            w0 = time.perf_counter()
            await client.chat.completions.create(**body)
            walls.append((time.perf_counter() - w0) * 1000)
        out["cpu_per_call_ms"] = (time.process_time() - c0) * 1000 / len(walls)
        out["per_call_ms"] = walls
        await client.close()

    asyncio.run(run())
    out["rss_mb"] = _rss_mb()
    return out


def child_cli(url: str, spawn: float, symbol: str) -> dict:
    from flowkit.cli import main
    from flowkit.store import open_reader

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "log.duckdb")
        code = main(["run", str(WORKFLOW), "--model", "openai/fake", "--api-base", url,
                     "--db", db, "--cache", "off", "--quiet", "--symbol", symbol])
        with open_reader(db):  # waits for the log's last commit (as the CLI's exit does),
            pass               # which would otherwise race the folder's removal
    return {"code": code, "wall_s": time.time() - spawn, "rss_mb": _rss_mb()}


def spawn_child(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args, "--spawn", repr(time.time())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the raw floor


async def raw_round_trips(port: int, bodies: list[bytes]) -> list[float]:
    """POST each body on one keep-alive connection with a minimal client (ms each)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for body in bodies:
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
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


# ---------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decisions", type=int, default=12)
    ap.add_argument("--symbol", default="AAPL")
    ap.add_argument("--child", nargs="*")
    ap.add_argument("--spawn", type=float)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        result = {"flowkit": lambda: child_flowkit(rest[0], args.spawn, args.decisions,
                                                   args.symbol, litellm=False),
                  "litellm": lambda: child_flowkit(rest[0], args.spawn, args.decisions,
                                                   args.symbol, litellm=True),
                  "sdk": lambda: child_sdk(rest[0], args.spawn, rest[1]),
                  "cli": lambda: child_cli(rest[0], args.spawn, args.symbol)}[kind]()
        print(json.dumps(result))
        return

    print(f"call_overhead: {machine_line()}")
    n = str(args.decisions)
    with FakeServerProcess(0.0) as srv, tempfile.TemporaryDirectory() as tmp:
        lean = spawn_child("flowkit", srv.base_url, "--decisions", n, "--symbol", args.symbol)
        bodies = [dict(b, model="fake") for b in srv.bodies()]
        srv.reset()
        via_litellm = spawn_child("litellm", srv.base_url, "--decisions", n, "--symbol", args.symbol)
        srv.reset()
        path = os.path.join(tmp, "bodies.json")
        Path(path).write_text(json.dumps(bodies))
        sdk = spawn_child("sdk", srv.base_url, path)
        srv.reset()
        raw = asyncio.run(raw_round_trips(srv.port, [json.dumps(b).encode() for b in bodies]))
        cli = spawn_child("cli", srv.base_url, "--symbol", args.symbol)
    rtt = med(raw)
    per = lean["calls_per_decision"]
    # the SDK's calls in windows of one decision's count, like flowkit's per-decision figure
    sdk["per_call_ms"] = [sum(w) / len(w) for w in (sdk["per_call_ms"][i:i + int(per)] for i in
                                                     range(0, len(sdk["per_call_ms"]), int(per)))]
    for r in (lean, via_litellm, sdk):
        r["best_ms"], r["per_call_ms"] = min(r["per_call_ms"]), med(r["per_call_ms"])
    print(f"  {len(bodies)} request bodies (TradingAgents, {args.decisions} decisions of "
          f"{args.symbol}, {lean['calls_per_decision']:.0f} calls each); raw HTTP round trip "
          f"{rtt:.3f} ms (mean; median {med(raw):.3f})\n")
    cols = [("flowkit (lean)", lean), ("flowkit (litellm)", via_litellm), ("bare OpenAI SDK", sdk)]
    print(f"  {'':32s}" + "".join(f"{name:>20s}" for name, _ in cols))

    def row(label: str, values: list[str]) -> None:
        print(f"  {label:32s}" + "".join(f"{v:>20s}" for v in values))

    row("per call, ms (median)", [f"{r['per_call_ms']:.3f}" for _, r in cols])
    row("client + framework per call, ms", [f"{r['per_call_ms'] - rtt:.3f}" for _, r in cols])
    row("  best decision", [f"{r['best_ms'] - rtt:.3f}" for _, r in cols])
    row("process CPU per call, ms", [f"{r['cpu_per_call_ms']:.3f}" for _, r in cols])
    row("start-up to first decision, s", [f"{r['startup_s']:.2f}" for _, r in cols])
    row("  interpreter", [f"{r['spawn_to_main_s']:.2f}" for _, r in cols])
    row("  imports", [f"{r['imports_s']:.2f}" for _, r in cols])
    row("  Session()", [f"{r.get('session_s', 0):.2f}" for _, r in cols])
    row("  first decision (SDK: answer)", [f"{r['first_decision_s']:.2f}" for _, r in cols])
    row("peak RSS after first decision, MB", [f"{r.get('rss_first_mb', float('nan')):.0f}"
                                              for _, r in cols])
    row("peak RSS at the end, MB", [f"{r['rss_mb']:.0f}" for _, r in cols])
    fw, bare = lean["per_call_ms"] - rtt, sdk["per_call_ms"] - rtt
    print(f"\n  flowkit (lean) / bare SDK: client+framework {fw / bare:.2f}x, process CPU "
          f"{lean['cpu_per_call_ms'] / sdk['cpu_per_call_ms']:.2f}x, start-up "
          f"{lean['startup_s'] / sdk['startup_s']:.2f}x, peak RSS "
          f"{lean['rss_mb'] / sdk['rss_mb']:.2f}x")
    print(f"  one `flowkit run` decision (CLI, spawn to exit, estimate-vs-actual included): "
          f"{cli['wall_s']:.2f} s, peak RSS {cli['rss_mb']:.0f} MB (exit {cli['code']})")
    ok = lambda good: "met" if good else "MISSED"
    print(f"  targets: client+framework <= {TARGET_MS} ms {ok(fw <= TARGET_MS)}; start-up <= "
          f"{TARGET_STARTUP_S} s {ok(lean['startup_s'] <= TARGET_STARTUP_S)}; one-decision run "
          f"peak RSS <= {TARGET_RSS_MB:.0f} MB {ok(cli['rss_mb'] <= TARGET_RSS_MB)}")


if __name__ == "__main__":
    main()
