"""`flowkit train`: run the training window episode after episode, distil and reinforce
beliefs between episodes, then freeze them for test runs."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any, TextIO

from flowkit.errors import ConfigError, FlowkitError
from flowkit.memory.beliefs import distil, reinforce
from flowkit.runtime.session import RunOptions, Session


def train(loaded: Any, options: RunOptions, *, episodes: int | None, symbols: list[str] | None,
          out: TextIO | None) -> int:
    from flowkit.backtest.loop import Invocation, run_session

    learning = loaded.spec.learning
    if learning is None or learning.train is None:
        raise ConfigError("the workflow has no learning.train window; add learning: {train: "
                          "{start: ..., end: ..., episodes: N}}")
    window = learning.train
    n = episodes or window.episodes
    if n < 1:
        raise ConfigError("--episodes must be at least 1")
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
            outcome = asyncio.run(run_session(session, inv, None))
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
        if out:
            trend = ("" if previous is None else " (same as the last)" if improved is None
                     else " (better than the last)" if improved else " (worse than the last)")
            out.write(f"episode {episode}/{n}: run {outcome.run_id} · return "
                      f"{100 * ret:+.2f}%{trend} · {len(beliefs)} beliefs\n")
        previous = ret
    if out:
        out.write(f"\nfrozen beliefs of training {training_id} (used by `flowkit run` on later "
                  f"windows while learning.beliefs.enabled):\n")
        for b in beliefs:
            out.write(f"  - {b['text']}  → {', '.join(b['agents'])} {b['effect']}\n")
    return 0


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
