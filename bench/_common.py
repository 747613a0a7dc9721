"""Shared pieces for the benchmark scripts (not a test module, not part of the package).

- `FakeServerProcess`: flowkit's FakeOpenAIServer in its own process, so the server's Python
  work never competes with the measured process for the GIL (a remote provider would not).
- `call_plan` (flowkit.patterns.plan: the model calls a compiled firm makes per decision, from its
  node tree, with the critical path) and `scheduled_length`, a unit-latency schedule of that
  plan under the run's concurrency limit.
- small statistics and machine-load helpers.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

from flowkit.patterns.plan import Planner, call_plan  # noqa: F401  (call_plan: for the scripts)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "workflows" / "tradingagents.yaml"

# The reference peer (TradingAgents): 15 model calls per decision, one after another, and
# ~2.7 ms of framework time per call.
PEER_CALLS = 15
PEER_OVERHEAD_MS = 2.7
TARGET_OVERHEAD_MS = 0.5


# ---------------------------------------------------------------- machine


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def machine_line() -> str:
    return (f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
            f"load average {loadavg()} (1/5/15 min)")


# ---------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float:
    """q-th percentile (0..100), linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------- the firm's call plan


def scheduled_length(plan: Planner, copies: int, concurrency: int) -> int:
    """Unit-latency schedule of `copies` independent decisions (concurrent symbols) with at most
    `concurrency` calls in flight, first-come first-served (asyncio.Semaphore is FIFO): how many
    latency periods the calls take. With unbounded concurrency this equals the critical path."""
    n = len(plan.calls)
    finish: dict[tuple[int, int], int] = {}
    waiting = [(s, c) for s in range(copies) for c in plan.calls]
    t = 0
    while waiting:
        ready = [(s, c) for s, c in waiting if all((s, d) in finish and finish[(s, d)] <= t
                                                    for d in c.deps)]
        # FIFO: the earliest ready first; ties in symbol order then call order
        ready.sort(key=lambda sc: (max((finish[(sc[0], d)] for d in sc[1].deps), default=0),
                                   sc[0], sc[1].id))
        started = ready[:concurrency]
        for s, c in started:
            finish[(s, c.id)] = t + 1
        started_ids = {(s, c.id) for s, c in started}
        waiting = [(s, c) for s, c in waiting if (s, c.id) not in started_ids]
        t += 1
        if t > 10 * n * copies + 10:
            raise RuntimeError("schedule did not converge")
    return max(finish.values(), default=0)


# ---------------------------------------------------------------- the fake provider


_SERVER_CHILD = r"""
import json, sys
from flowkit.testing.fakeserver import FakeOpenAIServer
with FakeOpenAIServer(latency_ms=float(sys.argv[1])) as srv:
    print(json.dumps({"port": srv.port}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            reqs = list(srv.requests)
            print(json.dumps({"requests": len(reqs), "handled_ms": [r.handled_ms for r in reqs],
                              "max_in_flight": srv.max_in_flight}), flush=True)
        elif line.strip() == "bodies":
            print(json.dumps([r.body for r in srv.requests]), flush=True)
        elif line.strip() == "reset":
            srv.requests.clear(); srv.max_in_flight = 0
            print("{}", flush=True)
"""


class FakeServerProcess:
    """FakeOpenAIServer (flowkit.testing.fakeserver, fixed latency) in a child process on
    127.0.0.1."""

    def __init__(self, latency_ms: float):
        self.latency_ms = latency_ms
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER_CHILD, str(self.latency_ms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stats(self) -> dict[str, Any]:
        """requests served, each request's handling time (ms, latency included), max in flight."""
        return self._ask("stats")

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the requests served since the last reset."""
        return self._ask("bodies")  # type: ignore[return-value]

    def reset(self) -> None:
        self._ask("reset")
