"""The run over time. One decision is a run over one decision time; a backtest is a run over
many. At each decision time t, in this order:

1. every bar that closed since the previous decision is replayed: pending orders fill at its
   open (or at the decision close with `fill: close`), stops and take-profits trigger on its
   range, then the book is marked at its close;
2. the risk engine sees the day's equity (drawdown halt, CVaR trigger);
3. the firm decides for every symbol concurrently (agents see data up to t only);
4. the rule engine reviews each decision in symbol order (deterministic: they share cash);
   approved orders go to the broker;
5. the portfolio is snapshotted and a checkpoint committed with everything logged so far,
   so a killed run resumes exactly here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import Any, TextIO

import numpy as np

from flowkit.errors import BudgetExceeded, ConfigError, DataError, FlowkitError
from flowkit.runtime.session import Decision, RunOptions, Session, existing_db


@dataclass
class Invocation:
    """What the command line asked for; stored with the run so replay/resume can repeat it."""

    symbols: list[str] | None = None
    date: str | None = None
    start: str | None = None
    end: str | None = None
    every: str | None = None
    seeds: int = 1
    live: bool = False


@dataclass
class Outcome:
    run_id: str
    status: str
    decisions: list[Decision] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: list[tuple[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


CHECKPOINT_SECONDS = 1.0


def _iso(t: Any) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _ts(t: Any) -> datetime:
    return np.datetime64(t, "us").astype(datetime)


class Trading:
    """Portfolio, risk engine and broker for one run, rebuilt from a checkpoint on resume.

    Each order is logged once, when it reaches a final status (filled, rejected, cancelled),
    or at the end of the run while still working: the `orders` table has one row per order."""

    def __init__(self, session: Session, symbols: list[str], live: bool = False,
                 state: dict[str, Any] | None = None):
        from flowkit.broker import BROKERS
        from flowkit.portfolio import Portfolio
        from flowkit.risk import RiskEngine

        spec = session.spec
        p = spec.portfolio
        self.portfolio = Portfolio.from_state(state["portfolio"]) if state else \
            Portfolio(p.initial_cash, p.fractional)
        self.engine = RiskEngine(spec.risk, session.market.sectors(symbols), set(symbols),
                                 fee_bps=p.fee_bps, slippage_bps=p.slippage_bps,
                                 run_id=session.run_id)
        self.broker = BROKERS[p.broker].from_spec(p, self.portfolio, self.engine, live=live)
        self.logged: set[str] = set()
        if state:
            self.engine.load_state(state["engine"])
            self.broker.load_state(state["broker"])
            self.logged = set(state["logged"])

    def state(self) -> dict[str, Any]:
        return {"portfolio": self.portfolio.to_state(), "engine": self.engine.to_state(),
                "broker": self.broker.to_state(), "logged": sorted(self.logged)}

    def prices(self) -> dict[str, float]:
        return dict(self.broker.marks)

    def settled_orders(self, final: bool = False) -> list[dict[str, Any]]:
        """Order rows not logged yet whose status is final (all of them when the run ends)."""
        out = []
        for order_id, record in self.broker.orders.items():
            if order_id not in self.logged and (final or record.status != "submitted"):
                self.logged.add(order_id)
                out.append(record.model_dump())
        return out


class Loop:
    def __init__(self, session: Session, symbols: list[str], times: list[np.datetime64],
                 out: TextIO | None, live: bool = False, state: dict[str, Any] | None = None):
        self.session, self.symbols, self.times, self.out = session, symbols, times, out
        self.log = session.log
        self.trading = Trading(session, symbols, live, state["trading"] if state else None)
        self.bars = {s: session.market.bars(s) for s in symbols}
        self.daily = session.spec.market.timeframe == "1d"
        # Bars before the first decision bar cannot touch an order: replay starts at it.
        self.cursor = {s: int(state["cursor"][s]) for s in symbols} if state else \
            {s: max(0, self.bars[s].index_asof(times[0])) for s in symbols}
        self.outcome = Outcome(session.run_id, "running")
        self.snapshots: list[dict[str, Any]] = []
        self.memory = _memory(session)
        if self.memory is not None and state and state.get("memory"):
            self.memory.from_state(state["memory"])
        if self.memory is not None and self.memory.beliefs:
            from flowkit.memory import check_window

            check_window(self.memory.beliefs, _iso(times[0]))
        self.started = self.last_checkpoint = time.perf_counter()

    # ---------------------------------------------------------------- state

    def checkpoint(self, seq: int, t: np.datetime64) -> None:
        """Queue the checkpoint row behind everything logged so far. The writer commits rows in
        order, a batch per transaction, so once this row is on disk so is all that came before
        it; if the process dies first, resume starts from the previous checkpoint. The loop
        does not wait for the disk."""
        state = {"trading": self.trading.state(), "cursor": self.cursor,
                 "memory": self.memory.to_state() if self.memory else None}
        self.log.append("checkpoints", {"run_id": self.session.run_id, "seq": seq,
                                        "as_of": _ts(t), "state": state,
                                        "created_at": datetime.now(timezone.utc).replace(tzinfo=None)})

    def preload(self) -> None:
        """On resume: the equity curve and fills already done, for the final metrics, and what
        the log already holds, so nothing is written twice.

        - Fills come from the checkpointed broker, in execution order (the `fills` table has
          no order within one bar time, and round trips depend on it).
        - An order is logged once it settles, under its decision time, which may be at or
          before the checkpoint even when it settled after it: such rows survive the discard.
          The redone dates settle them identically, so they count as logged already.
        - Step numbers continue after the last one kept."""
        run_id = self.session.run_id
        for t, equity, gross in self.log.query(
                "SELECT time, equity, gross_exposure FROM portfolio WHERE run_id = ? ORDER BY time",
                [run_id]):
            self.outcome.equity.append((_iso(np.datetime64(t, "s")), equity))
            self.snapshots.append({"gross_exposure": gross})
        for fill in self.trading.broker.fills:
            self.outcome.fills.append({"run_id": run_id, **fill.model_dump()})
        self.trading.logged |= {order_id for (order_id,) in self.log.query(
            "SELECT order_id FROM orders WHERE run_id = ?", [run_id])}
        (last_seq,), = self.log.query("SELECT coalesce(max(seq), -1) FROM steps WHERE run_id = ?",
                                      [run_id])
        self.session.ctx.seq = itertools.count(int(last_seq) + 1)

    # ---------------------------------------------------------------- the loop

    async def run(self, start_seq: int = 0) -> Outcome:
        engine, portfolio = self.trading.engine, self.trading.portfolio
        for seq in range(start_seq, len(self.times)):
            t = self.times[seq]
            self.replay_bars(t)
            prices = self.trading.prices()
            engine.update_daily(portfolio.equity(prices))
            self.submit(engine.halt_orders(portfolio, prices, _ts(t)))
            active = [s for s in self.symbols if self._has_bar_closing_at(s, t)]
            decisions = await _all_or_none([self.decide(s, t, prices) for s in active])
            for d in sorted(decisions, key=lambda d: d.symbol):
                self.review(d, t, prices)
            self.log_orders()
            self.snapshot(t)
            if self.memory:
                self.memory.observe(seq, t, decisions, self.bars)
            # A checkpoint commits everything so far (one DuckDB transaction, ~0.1 s): taken at
            # most every CHECKPOINT_SECONDS and at the end. Resume redoes the dates after the last
            # one, which are deterministic, so results do not depend on where the run was killed.
            if seq == len(self.times) - 1 or time.perf_counter() - self.last_checkpoint >= CHECKPOINT_SECONDS:
                self.checkpoint(seq, t)
                self.last_checkpoint = time.perf_counter()
            self.progress(seq + 1)
        self.log_orders(final=True)
        return self.outcome

    def _has_bar_closing_at(self, symbol: str, t: np.datetime64) -> bool:
        bars = self.bars[symbol]
        i = bars.index_asof(t)
        return i >= 0 and bars.close_time[i] == t

    def replay_bars(self, t: np.datetime64) -> None:
        """Every bar closed by t, in order: fills at its open, stops on its range."""
        for s in self.symbols:
            bars, i = self.bars[s], self.cursor[s]
            last = bars.index_asof(t)
            while i <= last:
                self.record_fills(self.trading.broker.on_bar(
                    s, _ts(bars.time[i]), float(bars.open[i]), float(bars.high[i]),
                    float(bars.low[i]), float(bars.close[i])))
                i += 1
            self.cursor[s] = i

    async def decide(self, symbol: str, t: np.datetime64, prices: dict[str, float]) -> Decision:
        p = self.trading.portfolio
        equity = p.equity(prices)
        pos = p.positions.get(symbol)
        qty = pos.qty if pos else 0.0
        value = qty * prices.get(symbol, 0.0)
        view = {"cash": round(p.cash, 2), "equity": round(equity, 2), "position_qty": qty,
                "position_value": round(value, 2),
                "position_pct": round(100 * value / equity, 3) if equity else 0.0,
                "gross_exposure_pct": round(100 * p.gross_exposure(prices), 3)}
        if len(self.symbols) > 1:
            view["correlations"] = self.correlations(symbol, t)
        beliefs, lessons = (self.memory.for_decision(symbol, t) if self.memory else ({}, {}))
        engine = self.trading.engine
        risk_state = {"risk_averse": engine.risk_averse, "halted": engine.halted,
                      "drawdown_pct": round(100 * p.drawdown(prices), 3)}
        return await self.session.decide(symbol, t, portfolio=view, risk_state=risk_state,
                                         beliefs=beliefs, lessons=lessons)

    def correlations(self, symbol: str, t: np.datetime64, window: int = 60) -> dict[str, float]:
        """Log-return correlation with every position held over the last `window` periods both
        symbols have a close for, from data up to t. Closes are paired by period (the bar's
        date for daily bars, its close time otherwise) before taking returns, so a stock and a
        coin that trades at weekends are compared over the same spans (Friday to Monday)."""
        out = {}
        keys, mine = self._closes(symbol, t, window)
        for other, pos in self.trading.portfolio.positions.items():
            if other == symbol or not pos.qty:
                continue
            their_keys, theirs = self._closes(other, t, window)
            _, a, b = np.intersect1d(keys, their_keys, assume_unique=True, return_indices=True)
            a, b = a[-(window + 1):], b[-(window + 1):]
            if len(a) > 20:
                c = float(np.corrcoef(np.diff(np.log(mine[a])), np.diff(np.log(theirs[b])))[0, 1])
                if math.isfinite(c):
                    out[other] = round(c, 3)
        return out

    def _closes(self, symbol: str, t: np.datetime64, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(period keys, closes) of the last 2 x `window` + 1 bars closed by t: twice the window,
        so that a symbol trading 7 days a week still overlaps `window` stock sessions."""
        bars = self.bars[symbol]
        i = bars.index_asof(t)
        lo = max(0, i - 2 * window)
        stamp = bars.time[lo: i + 1]
        keys = stamp.astype("datetime64[D]") if self.daily else stamp.astype("datetime64[s]")
        return keys, bars.close[lo: i + 1]

    def review(self, d: Decision, t: np.datetime64, prices: dict[str, float]) -> None:
        proposal = {"symbol": d.symbol, "action": d.action, "size_pct": d.size_pct,
                    "stop_loss": d.stop_loss, "take_profit": d.take_profit,
                    "confidence": d.confidence}
        review = self.trading.engine.review(proposal, self.trading.portfolio, prices, _ts(t))
        row = review.model_dump(exclude={"order"})
        self.log.append("risk_reviews", {"run_id": self.session.run_id, **row})
        self.outcome.decisions.append(d)
        self.outcome.reviews.append(row)
        if review.order is not None:
            self.submit([review.order])

    def submit(self, orders: list[Any]) -> None:
        for order in orders:
            submission = self.trading.broker.submit(order)
            if submission.fill is not None:  # fill: close executes at once
                self.record_fills([submission.fill])

    def log_orders(self, final: bool = False) -> None:
        for row in self.trading.settled_orders(final):
            row = {"run_id": self.session.run_id, **row}
            self.log.append("orders", row)
            self.outcome.orders.append(row)

    def record_fills(self, fills: list[Any]) -> None:
        for fill in fills:
            row = {"run_id": self.session.run_id, **fill.model_dump()}
            self.log.append("fills", row)
            self.outcome.fills.append(row)

    def snapshot(self, t: np.datetime64) -> None:
        snap = self.trading.portfolio.snapshot(_ts(t), self.trading.prices())
        self.log.append("portfolio", {"run_id": self.session.run_id, **snap})
        self.snapshots.append(snap)
        self.outcome.equity.append((_iso(t), snap["equity"]))

    def progress(self, done: int) -> None:
        if self.out is None or len(self.times) == 1:
            return
        tty = self.out.isatty()
        step = max(1, len(self.times) // 10)
        if not tty and done % step and done != len(self.times):
            return
        eq = self.outcome.equity[-1][1]
        ctx = self.session.ctx
        cost = ctx.budget.cost_usd if ctx.budget is not None else 0.0
        width = 28
        filled = int(width * done / len(self.times))
        line = (f"\r[{'█' * filled}{'·' * (width - filled)}] {done}/{len(self.times)} dates · "
                f"{len(self.outcome.decisions)} decisions · equity {eq:,.0f} · "
                f"{ctx.calls} model calls · ${cost:.4f} · {time.perf_counter() - self.started:.1f}s")
        end = "\n" if done == len(self.times) or not tty else ""
        self.out.write((line if tty else line[1:]) + end)
        self.out.flush()


async def _all_or_none(coros: list[Any]) -> list[Any]:
    """Run concurrently; if one fails, cancel the rest before raising (no rows logged after
    the run has been marked failed)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _memory(session: Session) -> Any:
    learning = session.spec.learning
    if learning is None or (learning.beliefs is None and learning.reflection is None):
        return None
    from flowkit.memory import Memory

    return Memory.for_session(session, session.preset_beliefs)


# ---------------------------------------------------------------- entry points


def decision_times(session: Session, symbols: list[str], inv: Invocation) -> list[np.datetime64]:
    market = session.market
    if inv.start:
        try:
            start, end = date.fromisoformat(inv.start), date.fromisoformat(inv.end or inv.start)
        except ValueError as exc:
            raise ConfigError(f"bad date: {exc}") from None
        if start > end:
            raise ConfigError(f"--start {start} is after --end {end}")
        every = inv.every or (session.spec.backtest.every if session.spec.backtest else "1d")
        times = sorted({t for s in symbols for t in market.decision_times(s, start, end, every)})
        if not times:
            raise DataError(f"no bars for {', '.join(symbols)} between {start} and {end}")
        return times
    if inv.date:
        try:
            day = date.fromisoformat(inv.date)
        except ValueError as exc:
            raise ConfigError(f"bad --date: {exc}") from None
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


async def run_session(session: Session, inv: Invocation, out: TextIO | None,
                      resume: dict[str, Any] | None = None) -> Outcome:
    symbols = _symbols(session, inv)
    times = decision_times(session, symbols, inv)
    state = resume["state"] if resume else None
    loop = Loop(session, symbols, times, out, inv.live, state)
    session.last_memory = loop.memory
    loop.outcome.warnings = honesty_warnings(session, times)
    start_seq = 0
    if resume is None:
        session.start()
        if out:
            kind = "backtest" if inv.start else "decision"
            model_note = ", ".join(sorted({p.model for p in session.spec.models.values()}))
            out.write(f"run {session.run_id} · {session.spec.name} · {kind} · "
                      f"{', '.join(symbols)} · {len(times)} decision time"
                      f"{'s' if len(times) != 1 else ''} · models: {model_note}"
                      f"{' (rules-based stand-in, not an LLM)' if model_note == 'offline' else ''}\n")
            for w in loop.outcome.warnings:
                out.write(f"warning: {w}\n")
        if out and len(times) == 1:
            session.ctx.progress = lambda st, step, status: out.write(
                f"  [{st.symbol} {st.as_of[:10]}] {step}: {status}\n")
    else:
        if state is not None:
            loop.preload()
        start_seq = resume["seq"] + 1
    status, error = "completed", None
    try:
        await loop.run(start_seq)
    except BudgetExceeded as exc:
        status, error = "budget_exceeded", str(exc)
    except FlowkitError as exc:
        status, error = "failed", str(exc)
    except BaseException as exc:
        status, error = "interrupted" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) \
            else "failed", f"{type(exc).__name__}: {exc}"
        session.finish(status, error)
        raise
    finally:
        await session.aclose()
    outcome = loop.outcome
    outcome.status, outcome.error = status, error
    if inv.start and outcome.equity:
        from flowkit.backtest.evaluate import evaluate

        evaluate(session, loop, outcome)
    session.finish(status, error)
    return outcome


def run_and_show(session: Session, inv: Invocation, out: TextIO | None) -> Outcome:
    """Run a fresh session to the end, close its log, and print the outcome."""
    from flowkit.backtest import present

    session.invocation = asdict(inv)
    try:
        outcome = asyncio.run(run_session(session, inv, out))
    finally:
        session.close()
    if out:
        present.outcome(outcome, inv, out)
    return outcome


def execute(loaded: Any, options: RunOptions, inv: Invocation, out: TextIO | None) -> int:
    """`flowkit run`: one run, or --seeds N runs summarised as mean ± standard error."""
    from flowkit.backtest import present

    outcomes = []
    parent = None
    for seed in range(max(1, inv.seeds)):
        opts = RunOptions(**{**asdict(options), "mode": "backtest" if inv.start else "decide",
                             "parent_run_id": parent,
                             "seed": seed if inv.seeds > 1 else options.seed})
        outcome = run_and_show(Session(loaded, opts), inv, out)
        parent = parent or outcome.run_id
        outcomes.append(outcome)
    if out and len(outcomes) > 1:
        present.seeds(outcomes, out)
    failed = [o for o in outcomes if o.status != "completed"]
    if failed:
        print(f"error: run {failed[0].run_id} {failed[0].status}: {failed[0].error}", file=sys.stderr)
        return 1
    return 0


def _stored(db: str, run_id: str) -> dict[str, Any]:
    """The run's row, resolved workflow and invocation, and its last checkpoint."""
    from flowkit.store import open_reader

    with open_reader(db) as con:
        row = con.execute("SELECT workflow_path, workflow_hash, status, config, mode FROM runs "
                          "WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise ConfigError(f"no run {run_id} in {db} (see `flowkit runs`)")
        cp = con.execute("SELECT seq, as_of, state FROM checkpoints WHERE run_id = ? "
                         "ORDER BY seq DESC LIMIT 1", [run_id]).fetchone()
        decided = con.execute("SELECT symbol, as_of, action, size_pct FROM decisions WHERE run_id = ? "
                              "ORDER BY as_of, symbol", [run_id]).fetchall()
    config = json.loads(row[3]) if isinstance(row[3], str) else row[3]
    return {"path": row[0], "hash": row[1], "status": row[2], "config": config, "mode": row[4],
            "checkpoint": None if cp is None else {"seq": int(cp[0]), "as_of": cp[1],
                                                   "state": json.loads(cp[2]) if isinstance(cp[2], str) else cp[2]},
            "decisions": decided}


def _loaded_from(stored: dict[str, Any]) -> Any:
    from pathlib import Path

    from flowkit.spec.loader import LoadedWorkflow
    from flowkit.spec.models import Workflow

    data = stored["config"]["workflow"]
    return LoadedWorkflow(Workflow.model_validate(data), Path(stored["path"]), "", stored["hash"], data)


def replay_run(run_id: str, db: str | None, out: TextIO | None) -> int:
    """Re-run a run's decisions from the response cache: zero provider calls, same decisions."""

    db = existing_db(db)
    stored = _stored(db, run_id)
    inv = Invocation(**(stored["config"].get("invocation") or {}))
    options = RunOptions(db=db, cache="replay", mode="replay", parent_run_id=run_id)
    session = Session(_loaded_from(stored), options)
    outcome = run_and_show(session, inv, out)
    before = [(s, str(t), a, round(z, 6)) for s, t, a, z in stored["decisions"]]
    after = sorted((d.symbol, str(_ts(np.datetime64(d.as_of.rstrip("Z")))), d.action, round(d.size_pct, 6))
                   for d in outcome.decisions)
    same = sorted(before) == after
    if out:
        out.write(f"replay of {run_id}: {len(after)} decisions, "
                  f"{'identical to the original' if same else 'DIFFERENT from the original'}; "
                  f"{session.ctx.provider_calls} provider calls\n")
    return 0 if same and outcome.status == "completed" else 1


def resume_run(run_id: str, db: str | None, out: TextIO | None) -> int:
    """Continue a killed run from its last checkpoint; ends as if never interrupted."""
    from flowkit.backtest import present

    db = existing_db(db)
    stored = _stored(db, run_id)
    if stored["status"] == "completed":
        raise ConfigError(f"run {run_id} already completed")
    inv = Invocation(**(stored["config"].get("invocation") or {}))
    options = RunOptions(db=db, mode=stored["mode"], run_id=run_id)
    session = Session(_loaded_from(stored), options)
    session.invocation = asdict(inv)
    cp = stored["checkpoint"]
    try:
        if cp is None:  # killed before the first checkpoint: start over under the same id
            session.log.discard_after(run_id, datetime(1, 1, 1))
            session.log.update_run(run_id, status="running", error=None)
            outcome = asyncio.run(_resume(session, inv, out, None))
        else:
            session.log.discard_after(run_id, cp["as_of"])
            session.log.update_run(run_id, status="running", error=None)
            outcome = asyncio.run(_resume(session, inv, out, cp))
    finally:
        session.close()
    if out:
        present.outcome(outcome, inv, out)
    return 0 if outcome.status == "completed" else 1


async def _resume(session: Session, inv: Invocation, out: TextIO | None,
                  cp: dict[str, Any] | None) -> Outcome:
    if out:
        where = f"after {str(cp['as_of'])[:19]}" if cp else "from the start"
        out.write(f"resuming run {session.run_id} {where}\n")
    return await run_session(session, inv, out, resume=cp or {"seq": -1, "state": None})


def run_many(files: list[str], overrides: list[str], options: RunOptions, inv: Invocation,
             out: TextIO | None) -> tuple[list[str], str, int]:
    """`flowkit compare`: each firm over the same window, into one event log."""
    from flowkit.spec.loader import load_workflow

    run_ids, status, db = [], 0, ""
    for file in files:
        loaded = load_workflow(file, overrides)
        session = Session(loaded, RunOptions(**{**asdict(options), "mode": "backtest"}))
        db = session.db_path
        outcome = run_and_show(session, inv, out)
        run_ids.append(outcome.run_id)
        status = status or (0 if outcome.status == "completed" else 1)
    return run_ids, db, status
