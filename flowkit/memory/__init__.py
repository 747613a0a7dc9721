"""What a firm learns from its own results.

- Reflection (TradingAgents): once a decision's outcome is known (`reflection.horizon` bars
  later, never earlier), a lesson is written and fed to the chosen agents on later decisions.
- Beliefs (FinCon conceptual verbal reinforcement): `flowkit train` distils investment beliefs
  from training episodes (flowkit.memory.beliefs); a test run loads the frozen beliefs of the
  latest training run and gives each one only to the agents it concerns.

A belief is {"text", "condition", "effect", "agents"}: the sentence an LLM reads, plus the
structured condition/effect the offline model acts on; the condition language is
flowkit.memory.conditions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flowkit.errors import FlowkitError


LESSONS_SHOWN = 5  # the latest lessons of a symbol its agents read


@dataclass
class Memory:
    run_id: str
    log: Any
    beliefs: list[dict[str, Any]] = field(default_factory=list)
    top_k: int = 5
    reflect: bool = False
    reflect_agents: list[str] = field(default_factory=list)
    horizon: int = 5
    pending: list[dict[str, Any]] = field(default_factory=list)   # decisions awaiting an outcome
    # symbol -> its latest LESSONS_SHOWN lessons, oldest first (all of them are in the log)
    lessons: dict[str, list[str]] = field(default_factory=dict)
    # matured decisions, kept only by a training episode (which distils them at its end)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    keep_trajectory: bool = False

    @classmethod
    def for_session(cls, session: Any, beliefs: list[dict[str, Any]] | None = None) -> "Memory":
        learning = session.spec.learning
        b, r = learning.beliefs, learning.reflection
        memory = cls(session.run_id, session.log, keep_trajectory=session.options.mode == "train")
        if b is not None and b.enabled:
            memory.top_k = b.top_k
            memory.beliefs = beliefs if beliefs is not None else load_beliefs(session)
            if b.agents:
                for belief in memory.beliefs:
                    belief["agents"] = [a for a in belief["agents"] if a in b.agents]
        if r is not None:  # training episodes judge decisions at this horizon too
            memory.horizon = r.horizon
            memory.reflect = r.enabled
            memory.reflect_agents = list(r.agents) or [session.firm.decision_agent]
        return memory

    # ---------------------------------------------------------------- feeding agents

    def for_decision(self, symbol: str, t: Any) -> tuple[dict[str, list[dict[str, Any]]],
                                                         dict[str, list[str]]]:
        per_agent: dict[str, list[dict[str, Any]]] = {}
        for belief in self.beliefs:
            for agent in belief["agents"]:
                got = per_agent.setdefault(agent, [])
                if len(got) < self.top_k:
                    got.append({"text": belief["text"], "condition": belief["condition"],
                                "effect": belief["effect"]})
        recent = self.lessons.get(symbol, []) if self.reflect else []
        lessons = {a: recent for a in self.reflect_agents} if recent else {}
        return per_agent, lessons

    # ---------------------------------------------------------------- outcomes

    def observe(self, seq: int, t: Any, decided: list[tuple[Any, Any]],
                bars: dict[str, Any]) -> None:
        """Queue today's (decision, DecisionState) pairs; turn those whose horizon has passed
        into lessons."""
        for d, state in decided:
            i = bars[d.symbol].index_asof(t)
            self.pending.append({"symbol": d.symbol, "as_of": d.as_of, "index": int(i),
                                 "action": d.action, "confidence": d.confidence,
                                 "features": _features(state)})
        still = []
        for p in self.pending:
            b = bars[p["symbol"]]
            j = p["index"] + self.horizon
            if j <= b.index_asof(t):  # the outcome bar has closed: knowable now, not before
                self._mature(p, float(b.close[j] / b.close[p["index"]] - 1.0), t)
            else:
                still.append(p)
        self.pending = still

    def _mature(self, p: dict[str, Any], ret: float, t: Any) -> None:
        sign = {"BUY": 1, "SELL": -1}.get(p["action"], 0)
        signed = sign * ret
        if self.keep_trajectory:
            self.trajectory.append({**p, "ret": ret, "signed": signed})
        if not self.reflect:
            return
        if sign:
            verdict = "right" if signed > 0 else "wrong"
            text = (f"{p['as_of'][:10]} {p['symbol']}: {p['action']} (confidence "
                    f"{p['confidence']:.2f}) was {verdict}: the price moved {100 * ret:+.1f}% over "
                    f"the next {self.horizon} bars.")
        elif abs(ret) >= 0.03:
            text = (f"{p['as_of'][:10]} {p['symbol']}: HOLD missed a {100 * ret:+.1f}% move over "
                    f"the next {self.horizon} bars.")
        else:
            return
        drivers = ", ".join(f"{a} {s}" for a, s in p["features"]["signals"].items())
        if drivers:
            text += f" Signals then: {drivers}."
        kept = self.lessons.setdefault(p["symbol"], [])
        kept.append(text)
        del kept[:-LESSONS_SHOWN]
        self.log.append("lessons", {"run_id": self.run_id, "symbol": p["symbol"],
                                    "as_of": np.datetime64(t, "us").astype(object),
                                    "decided_at": p["as_of"].rstrip("Z"),
                                    "agents": self.reflect_agents, "text": text,
                                    "outcome_pct": 100 * (signed if sign else ret)})

    # ---------------------------------------------------------------- checkpoints

    def to_state(self) -> dict[str, Any]:
        return {"pending": self.pending, "lessons": self.lessons, "trajectory": self.trajectory}

    def from_state(self, state: dict[str, Any]) -> None:
        self.pending = list(state["pending"])
        self.lessons = {k: list(v)[-LESSONS_SHOWN:] for k, v in state["lessons"].items()}
        self.trajectory = list(state["trajectory"])


def _features(state: Any) -> dict[str, Any]:
    """What the decision saw, compactly: enough to evaluate belief conditions later."""
    signals = {a: o.get("signal") for a, o in state.outputs.items()
               if isinstance(o, dict) and o.get("signal")}
    market = {"indicators": state.market.get("indicators", {}), "price": state.market.get("price", {}),
              "fundamentals": state.market.get("fundamentals"),
              "news_count_7d": state.market.get("news_count_7d")}
    outputs = {a: {"signal": o.get("signal"), "score": o.get("score")}
               for a, o in state.outputs.items() if isinstance(o, dict) and "signal" in o}
    return {"market": market, "outputs": outputs, "signals": signals}


def load_beliefs(session: Any) -> list[dict[str, Any]]:
    """Frozen beliefs of the latest training run of this workflow, if its window ended before
    the first decision (`flowkit train` records the window with each belief)."""
    return [{"text": b["text"], "agents": b["agents"], "condition": b["condition"],
             "effect": b["effect"], "train_end": (b["evidence"] or {}).get("train_end"),
             "training_run": b["run_id"]}
            for b in session.log.reader().beliefs(session.spec.name)]


def beliefs_used(session: Any, memory: Memory | None) -> dict[str, Any]:
    """Which beliefs a run's agents get, for `runs.config` (key `beliefs`), the run header and
    the report: {"enabled", "training_run" (None: none loaded, or a training's own episodes),
    "count"}."""
    b = session.spec.learning.beliefs if session.spec.learning else None
    beliefs = memory.beliefs if memory is not None and b is not None and b.enabled else []
    runs = sorted({x["training_run"] for x in beliefs if x.get("training_run")})
    return {"enabled": bool(b is not None and b.enabled), "count": len(beliefs),
            "training_run": runs[0] if runs else None}


def describe_beliefs(used: dict[str, Any] | None) -> str:
    """`beliefs_used` in words; runs logged before it was recorded say so."""
    if used is None:
        return "not recorded (a run logged by an older flowkit)"
    if not used["enabled"]:
        return "off (learning.beliefs is not enabled)"
    if used["training_run"]:
        return f"{used['count']} frozen beliefs of training run {used['training_run']}"
    if used["count"]:
        return f"{used['count']} beliefs of the previous episodes of this training"
    return "none: no frozen beliefs of this workflow in the event log (run `flowkit train` first)"


def check_window(beliefs: list[dict[str, Any]], first_decision: str) -> None:
    """Beliefs learned on data that overlaps the test window would leak its future."""
    late = [b for b in beliefs if b.get("train_end") and b["train_end"] >= first_decision[:10]]
    if late:
        raise FlowkitError(f"beliefs were trained on a window ending {late[0]['train_end']}, not "
                           f"before this run starts ({first_decision[:10]}); retrain on an earlier "
                           f"window or turn learning.beliefs off")
