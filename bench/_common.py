"""Shared pieces for the benchmark scripts (not a test module, not part of the package).

- `FakeServerProcess`: flowkit's FakeOpenAIServer in its own process, so the server's Python
  work never competes with the measured process for the GIL (a remote provider would not).
- `call_plan` / `critical_path` / `scheduled_length`: the model calls a compiled firm makes per
  decision, derived from its node tree (flowkit.graph.nodes), with the critical path and a
  unit-latency schedule under the run's concurrency limit.
- small statistics and machine-load helpers.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

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


@dataclass
class Call:
    """One model call in a decision: which agent, and which calls must finish before it."""

    id: int
    agent: str
    deps: tuple[int, ...]


@dataclass
class Plan:
    calls: list[Call] = field(default_factory=list)
    critical: int = 0          # longest chain of calls (unbounded concurrency)
    width: int = 0             # most calls that can be in flight at once in one decision
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.calls)


def call_plan(root: Any) -> Plan:
    """The calls one decision makes, as a DAG, from the compiled node tree.

    One model call per agent step (the fake server always answers valid JSON, no tool calls,
    so no re-asks or tool rounds). Rules, mirroring flowkit.graph.nodes (keep them in step;
    decision_latency.py checks the total against the calls the server actually received):
      agent                  one call after everything before it
      sequential             children in order
      parallel join:all      children side by side; the join waits for all (any / quorum:N wait
                             for the first N: the critical path takes the N-th shortest branch)
      debate                 participants in turn for each round, then the judge: all in series
      hierarchical           max_rounds x (the manager, then its workers side by side: assumed
                             to assign every worker every round), then the manager decides
      broadcast              per round: every member side by side
      when:                  assumed to hold
    """
    from flowkit.graph import nodes as n

    plan = Plan()

    def add(agent: str, deps: frozenset[int]) -> frozenset[int]:
        call = Call(len(plan.calls), agent, tuple(sorted(deps)))
        plan.calls.append(call)
        return frozenset({call.id})

    def build(node: Any, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        """Returns (the calls that must finish before whatever comes next, critical length)."""
        if node.when is not None:
            plan.notes.append(f"'{node.name}' has when: {node.when!r}; counted as if it holds")
        if isinstance(node, n.AgentNode):
            return add(node.agent, deps), 1
        if isinstance(node, n.SequentialNode):
            length = 0
            for step in node.steps:
                deps, k = build(step, deps)
                length += k
            return deps, length
        if isinstance(node, n.ParallelNode):
            exits: frozenset[int] = frozenset()
            lengths = []
            for step in node.steps:
                e, k = build(step, deps)
                exits |= e
                lengths.append(k)
            if node.needed < len(node.steps):
                plan.notes.append(f"'{node.name}' joins {node.join}: the schedule waits for all "
                                  f"branches (an upper bound), the critical path for the first "
                                  f"{node.needed}")
            return exits, sorted(lengths)[node.needed - 1]
        if isinstance(node, n.DebateNode):
            for _ in range(node.rounds):
                for agent in node.participants:
                    deps = add(agent, deps)
            return add(node.judge, deps), node.rounds * len(node.participants) + 1
        if isinstance(node, n.HierarchicalNode):
            length = 0
            for _ in range(node.max_rounds):  # assign, work, report
                deps = add(node.manager, deps)
                length += 1
                if node.workers:
                    deps = frozenset().union(*(add(w, deps) for w in node.workers))
                    length += 1
            return add(node.manager, deps), length + 1  # the decision on the last reports
        if isinstance(node, n.BroadcastNode):
            for _ in range(node.rounds):
                deps = frozenset().union(*(add(a, deps) for a in node.members))
            return deps, node.rounds
        raise TypeError(f"unknown node type {type(node).__name__}")

    _, plan.critical = build(root, frozenset())
    plan.width = _width(plan.calls)
    return plan


def _levels(calls: list[Call]) -> list[int]:
    level: list[int] = []
    for c in calls:  # calls are created after their dependencies
        level.append(1 + max((level[d] for d in c.deps), default=0))
    return level


def _width(calls: list[Call]) -> int:
    levels = _levels(calls)
    return max((levels.count(v) for v in set(levels)), default=0)


def scheduled_length(plan: Plan, copies: int, concurrency: int) -> int:
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

    def reset(self) -> None:
        self._ask("reset")
