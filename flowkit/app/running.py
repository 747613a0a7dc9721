"""Run a firm: one decision (the latest data, or --date), or a backtest (--start/--end),
optionally repeated over seeds. Everything that must stop a run (RunAborted) is caught here,
once, and becomes the run's status."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

import numpy as np

from flowkit.app import live, signals
from flowkit.app.events import Reporter, RunStarted
from flowkit.backtest.loop import Loop, Outcome
from flowkit.errors import ConfigError, DataError, FlowkitError, Interrupted, RunAborted
from flowkit.memory import beliefs_used, describe_beliefs
from flowkit.runtime.session import RunOptions, Session

EVERY = ("1d", "1w", "1h")


@dataclass
class Invocation:
    """What the user asked for; stored with the run so replay and resume can repeat it."""

    symbols: list[str] | None = None
    date: str | None = None
    start: str | None = None
    end: str | None = None
    every: str | None = None
    seeds: int = 1
    live: bool = False

    def check(self) -> None:
        """A user's mistake in the options, found before anything is opened or logged."""
        if bool(self.start) != bool(self.end):
            raise ConfigError("--start and --end go together")
        if self.date and self.start:
            raise ConfigError("--date is for one decision; --start/--end for a backtest")
        for flag, value in (("--date", self.date), ("--start", self.start), ("--end", self.end)):
            if value is not None:
                _day(flag, value)
        if self.start and self.end and _day("--start", self.start) > _day("--end", self.end):
            raise ConfigError(f"--start {self.start} is after --end {self.end}")
        if self.every is not None and not self.start:
            raise ConfigError("--every is the decision frequency of a backtest: use it with "
                              "--start/--end")
        if self.every is not None and self.every not in EVERY:
            raise ConfigError(f"--every {self.every!r}: expected one of {', '.join(EVERY)}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds {self.seeds}: expected at least 1")

    @classmethod
    def stored(cls, data: dict[str, Any] | None) -> "Invocation":
        """The invocation a run recorded (keys this version does not know are left out)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def _day(flag: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:  # says which part is wrong ("month must be in 1..12")
        raise ConfigError(f"bad {flag}: {exc} (expected YYYY-MM-DD)") from None


def decision_every(session: Session, inv: Invocation) -> str:
    """A backtest's decision frequency: --every, else backtest.every, else daily."""
    return inv.every or (session.spec.backtest.every if session.spec.backtest else "1d")


def decision_times(session: Session, symbols: list[str], inv: Invocation) -> list[np.datetime64]:
    market = session.market
    if inv.start:
        start, end = _day("--start", inv.start), _day("--end", inv.end or inv.start)
        if start > end:
            raise ConfigError(f"--start {start} is after --end {end}")
        every = decision_every(session, inv)
        times = sorted({t for s in symbols for t in market.decision_times(s, start, end, every)})
        if not times:
            raise DataError(f"no bars for {', '.join(symbols)} between {start} and {end}")
        return times
    if inv.date:
        day = _day("--date", inv.date)
        times = sorted({t for s in symbols for t in market.decision_times(s, day, day, "1d")})
        if not times:
            raise DataError(f"no bar closes on {day} for {', '.join(symbols)} (a holiday or "
                            f"outside the data)")
        return [times[-1]]
    # The latest decision time every symbol has data for.
    return [min(market.latest_time(s) for s in symbols)]


def _symbols(session: Session, inv: Invocation) -> list[str]:
    symbols = list(dict.fromkeys(inv.symbols or session.spec.market.symbols))
    missing = [s for s in symbols if s not in session.market.symbols]
    if missing:
        raise DataError(f"no market data for {', '.join(missing)}; available: "
                        f"{', '.join(session.market.symbols)}")
    return symbols


def honesty_warnings(session: Session, times: list[np.datetime64]) -> list[str]:
    """Models whose declared knowledge cutoff is after the window may have memorised it."""
    out = []
    first = np.datetime64(times[0], "D").astype(object)
    for name, profile in session.spec.models.items():
        if profile.model == "offline" or profile.knowledge_cutoff is None:
            if profile.model != "offline" and len(times) > 1:
                out.append(f"model profile '{name}' ({profile.model}) declares no knowledge_cutoff; "
                           f"it may have seen this period in training")
            continue
        if profile.knowledge_cutoff >= first:
            out.append(f"model profile '{name}' ({profile.model}) has knowledge cutoff "
                       f"{profile.knowledge_cutoff}, after the window starts ({first}): it may have "
                       f"memorised what happened")
    return out


async def run_session(session: Session, inv: Invocation, reporter: Reporter | None = None,
                      resume: dict[str, Any] | None = None) -> Outcome:
    """Run `session` over the invocation's decision times (from a checkpoint on resume) and
    finish the run row, whatever happens. The outcome carries the status; only errors that
    are not the run's own (Ctrl-C, a bug) propagate, after the run is marked."""
    symbols = _symbols(session, inv)
    times = decision_times(session, symbols, inv)
    state = resume["state"] if resume else None
    loop = Loop(session, symbols, times, live.guard(session, inv, times), state,
                on_progress=reporter.progress if reporter else None)
    session.last_memory = loop.memory
    session.beliefs_used = beliefs_used(session, loop.memory)
    loop.outcome.warnings = honesty_warnings(session, times)
    if inv.start:
        loop.outcome.warnings += session.market.data_warnings(
            symbols, _day("--start", inv.start), _day("--end", inv.end or inv.start))
    start_seq, resumed_after = 0, None
    if resume is None:
        session.start()
        if reporter and len(times) == 1:
            session.ctx.progress = lambda st, step, status: reporter.step(
                st.symbol, st.as_of, step, status)
    else:
        with session.log.reader() as store:  # what the attempts before logged, to count on from
            session.ctx.tally = store.tally(session.run_id)
        if state is not None:
            loop.preload(resume["seq"])
        start_seq = resume["seq"] + 1
        resumed_after = str(resume["as_of"])[:19] if state is not None else ""
    # for `flowkit runs`: progress, and whether the process that runs it is still alive
    session.log.update_run(session.run_id, decision_times=len(times), pid=os.getpid(),
                           host=socket.gethostname())
    if reporter:
        reporter.started(RunStarted(
            run_id=session.run_id, workflow=session.spec.name,
            kind="backtest" if inv.start else "decision", symbols=symbols,
            decision_times=len(times), models=sorted({p.model for p in session.spec.models.values()}),
            warnings=list(loop.outcome.warnings), resumed_after=resumed_after,
            beliefs=describe_beliefs(session.beliefs_used)
            if session.beliefs_used and session.beliefs_used["enabled"] else None))
    status, error = "completed", None
    with signals.cancelling() as caught:
        try:
            await loop.run(start_seq)
        except RunAborted as exc:
            status, error = exc.status, str(exc)
        except FlowkitError as exc:
            status, error = "failed", str(exc)
        except BaseException as exc:
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            status = "interrupted" if interrupted else "failed"
            error = f"{type(exc).__name__}: {exc}" if not caught else \
                f"stopped by {signal.Signals(caught[0]).name}"
            loop.log_orders()
            session.finish(status, error)
            if caught:
                raise Interrupted(caught[0], session.run_id) from None
            raise
        finally:
            await session.aclose()
    if status != "completed":  # the settled orders behind every fill logged so far
        loop.log_orders()
    outcome = loop.outcome
    outcome.status, outcome.error = status, error
    if status == "completed" and resume is None and _priced(session):
        from flowkit.app.estimating import actual, estimate

        try:
            outcome.estimate = await estimate(session, symbols, times)
            outcome.spent = actual(session)
        except FlowkitError:  # the dry decision could not run (a prompt that cannot fit its
            pass              # window with the offline answers): the run itself completed
    if inv.start and outcome.equity:
        from flowkit.backtest.evaluate import evaluate

        evaluate(session, loop, outcome, decision_every(session, inv))
    session.finish(status, error)
    return outcome


def run_to_end(session: Session, inv: Invocation, reporter: Reporter | None = None) -> Outcome:
    """Run a fresh session to the end and close its event log."""
    session.invocation = asdict(inv)
    try:
        return asyncio.run(run_session(session, inv, reporter))
    finally:
        session.close()


def _priced(session: Session) -> bool:
    """Does the run call a real model (one whose spend is worth comparing to the estimate)?"""
    return any(p.model != "offline" for p in session.spec.models.values())


def estimate(loaded: Any, options: RunOptions, inv: Invocation) -> Any:
    """What `run` would call and spend, from the topology and one dry decision; no model is
    called and nothing is logged (`flowkit run --estimate`)."""
    from flowkit.app.estimating import dry_session, measure

    inv.check()
    session, recorder = dry_session(loaded, options)
    try:
        symbols = _symbols(session, inv)
        times = decision_times(session, symbols, inv)
        result = asyncio.run(measure(session, recorder, symbols, times))
    finally:
        session.close()
    result.decisions *= inv.seeds
    return result


def run(loaded: Any, options: RunOptions, inv: Invocation,
        reporter: Reporter | None = None) -> list[Outcome]:
    """One run, or `inv.seeds` runs with seeds 0..N-1 (the later ones children of the first)."""
    inv.check()
    plan = live.execution("run", loaded, inv)
    outcomes: list[Outcome] = []
    parent = None
    for seed in range(inv.seeds):
        opts = RunOptions(**{**asdict(options), "mode": plan.mode, "parent_run_id": parent,
                             "seed": seed if inv.seeds > 1 else options.seed})
        outcome = run_to_end(Session(loaded, opts), inv, reporter)
        parent = parent or outcome.run_id
        outcomes.append(outcome)
    return outcomes
