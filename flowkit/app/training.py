"""Train: run the training window episode after episode, distil and reinforce beliefs between
episodes, then freeze them for test runs (FinCon)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any

from flowkit.app.events import Episode, Reporter
from flowkit.app.running import Invocation, run_session
from flowkit.errors import ConfigError, FlowkitError
from flowkit.memory.beliefs import distil, reinforce
from flowkit.runtime.session import RunOptions, Session


@dataclass
class Training:
    training_id: str
    beliefs: list[dict[str, Any]]  # the frozen beliefs, as test runs will load them


def train(loaded: Any, options: RunOptions | None = None, *, episodes: int | None = None,
          symbols: list[str] | None = None, reporter: Reporter | None = None) -> Training:
    learning = loaded.spec.learning
    if learning is None or learning.train is None:
        raise ConfigError("the workflow has no learning.train window; add learning: {train: "
                          "{start: ..., end: ..., episodes: N}}")
    window = learning.train
    n = window.episodes if episodes is None else episodes
    if n < 1:
        raise ConfigError("--episodes must be at least 1")
    options = options or RunOptions()
    inv = Invocation(symbols=symbols, start=window.start.isoformat(), end=window.end.isoformat())
    beliefs: list[dict[str, Any]] = []
    previous: float | None = None
    training_id = None
    for episode in range(1, n + 1):
        session = Session(loaded, replace(options, mode="train", parent_run_id=training_id))
        session.invocation = {**asdict(inv), "episode": episode}
        session.preset_beliefs = [dict(b) for b in beliefs]
        training_id = training_id or session.run_id
        try:
            outcome = asyncio.run(run_session(session, inv))
            if outcome.status != "completed":  # no metrics, no trajectory worth learning from
                raise FlowkitError(f"training episode {episode} (run {outcome.run_id}) "
                                   f"{outcome.status}: {outcome.error}")
            memory = session.last_memory
            if memory is None:
                raise ConfigError("training needs a learning: block (beliefs or reflection)")
            ret = outcome.metrics.get("cumulative_return", 0.0)
            # An episode that did exactly as well as the last one neither vindicates nor weakens
            # the beliefs it used (with a deterministic model that is the converged case).
            improved = None if previous is None or ret == previous else ret > previous
            analysts = {a: ag.role for a, ag in session.firm.agents.items() if ag.kind == "analyst"}
            fresh = distil(memory.trajectory, analysts, session.firm.decision_agent,
                           memory.horizon, episode)
            beliefs = reinforce(beliefs, fresh, improved)
            _log(session, training_id, episode, beliefs, frozen=episode == n,
                 train_end=window.end.isoformat())
        finally:
            session.close()
        if reporter:
            reporter.episode(Episode(episode, n, outcome.run_id, ret, improved, len(beliefs)))
        previous = ret
    return Training(str(training_id), beliefs)  # n >= 1: set by the first episode


def _log(session: Session, training_id: str, episode: int, beliefs: list[dict[str, Any]], *,
         frozen: bool, train_end: str) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for b in beliefs:
        digest = hashlib.sha256(f"{training_id}|{episode}|{b['key']}".encode()).hexdigest()[:16]
        session.log.append("beliefs", {
            "belief_id": f"{episode:03d}-{b['key']}-{digest[:6]}", "run_id": training_id,
            "episode": episode, "created_at": now, "workflow": session.spec.name, "text": b["text"],
            "agents": b["agents"], "condition": b["condition"], "effect": b["effect"],
            "evidence": {**b["evidence"], "weight": b["weight"], "train_end": train_end},
            "frozen": frozen})
    session.log.flush()
