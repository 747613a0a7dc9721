"""Replay and resume: repeat a logged run from the event log alone."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime


from flowkit.app import live
from flowkit.app.events import Reporter
from flowkit.app.read import existing_db
from flowkit.app.running import Invocation, run_session, run_to_end
from flowkit.app.stored import load_run
from flowkit.backtest.loop import Outcome
from flowkit.errors import ConfigError
from flowkit.runtime.session import RunOptions, Session


@dataclass
class Resumed:
    outcome: Outcome
    invocation: Invocation        # what the run was asked to do, as it recorded it
    note: str | None = None       # why it trades otherwise than the run began (a live run)


@dataclass
class Replay:
    original: str
    outcome: Outcome              # the replay run's own outcome (a new run id)
    invocation: Invocation
    identical: bool               # same decisions (symbol, time, action, size) as the original
    decisions: int
    provider_calls: int
    note: str | None = None       # why it trades otherwise than the original (a live run)

    @property
    def ok(self) -> bool:
        return self.identical and self.outcome.status == "completed"


def replay(run_id: str, db: str | None = None, reporter: Reporter | None = None) -> Replay:
    """Re-run a run's decisions from the response cache: zero provider calls, same decisions.
    A response missing from the cache stops the replay (status failed, CacheMiss's message)."""
    db = existing_db(db)
    stored = load_run(db, run_id)
    stored.refuse_training("replayed")
    plan = live.execution("replay", stored.loaded(), stored.invocation, mode=stored.mode,
                          run_id=run_id)
    options = RunOptions(db=db, cache="replay", mode="replay", parent_run_id=run_id)
    session = Session(plan.loaded, options)
    try:
        stored.check_data(session.market, "replayed")
    except ConfigError:
        session.close()
        raise
    outcome = run_to_end(session, plan.inv, reporter)
    before = sorted((s, str(t), a, round(z, 6)) for s, t, a, z in stored.decisions)
    after = sorted((s, str(t), a, round(z, 6)) for s, t, a, z in load_run(db, outcome.run_id).decisions)
    return Replay(run_id, outcome, stored.invocation, before == after, len(after),
                  session.ctx.provider_calls, plan.note)


def resume(run_id: str, db: str | None = None, reporter: Reporter | None = None, *,
           model: str | None = None, api_base: str | None = None,
           cache: str | None = None) -> Resumed:
    """Continue a killed run from its last checkpoint, under its own id; it ends with the same
    orders, fills and equity as a run never interrupted. `api_base` and `cache` apply to the
    rest of the run (a server that moved, a cache turned on); `model` may only repeat the model
    the run used: switching models mid-run would make a run no model made."""
    db = existing_db(db)
    stored = load_run(db, run_id)
    stored.refuse_training("resumed")
    stored.refuse_running("resumed")
    if stored.status == "completed":
        raise ConfigError(f"run {run_id} already completed")
    plan = live.execution("resume", stored.loaded(), stored.invocation, mode=stored.mode,
                          run_id=run_id)
    loaded = plan.loaded
    used = sorted({p.model for p in loaded.spec.models.values()})
    if model is not None and used != [model]:
        raise ConfigError(f"run {run_id} ran with {', '.join(used)}; resume cannot switch it to "
                          f"--model {model}")
    inv = plan.inv
    session = Session(loaded, RunOptions(db=db, mode=plan.mode, run_id=run_id,
                                         api_base=api_base, cache=cache))
    session.invocation = asdict(inv)
    cp = stored.checkpoint
    try:
        stored.check_data(session.market, "resumed")
        # Killed before the first checkpoint: start over under the same id.
        session.log.discard_after(run_id, cp["as_of"] if cp else datetime(1, 1, 1))
        stopped = stored.status if stored.status != "running" else "killed (status still running)"
        session.record_history("resumed", as_of=cp["as_of"] if cp else None,
                               reason=f"{stopped}: {stored.error}" if stored.error else stopped)
        session.log.update_run(run_id, status="running", error=None)
        outcome = asyncio.run(run_session(session, inv, reporter,
                                          resume=cp or {"seq": -1, "state": None}))
    finally:
        session.close()
    return Resumed(outcome, inv, plan.note)
