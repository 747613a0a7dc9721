"""The run over time. One decision is a run over one decision time; a backtest is a run over
many. At each decision time t, in this order:

1. every bar event since the previous decision is replayed, all symbols merged in time order:
   pending orders fill at a bar's open (or at the decision close with `fill: close`), stops and
   take-profits trigger on its range at its close, then the book is marked at its close (the
   rule is in docs/architecture.md: nothing depends on the order symbols are listed in);
2. the risk engine sees the day's equity (drawdown halt, CVaR trigger);
3. the firm decides for every symbol concurrently (agents see data up to t only);
4. the rule engine reviews each decision in symbol-name order (they share cash);
   approved orders go to the broker;
5. the portfolio is snapshotted and a checkpoint committed with everything logged so far,
   so a killed run resumes exactly here.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from flowkit.backtest.metrics import RoundTrips
from flowkit.domain.decision import Decision
from flowkit.market.clock import seconds
from flowkit.patterns.state import DecisionState
from flowkit.runtime.session import Session
from flowkit.store.sink import checkpoint_row

if TYPE_CHECKING:
    from flowkit.broker.base import Broker


class EquityCurve(Sequence[tuple[str, float]]):
    """(ISO time, equity) at each decision time, kept as two compact arrays (16 bytes a point)
    so a long run's memory does not grow by Python objects per date."""

    def __init__(self) -> None:
        self._t = array("q")   # seconds since the epoch
        self._v = array("d")

    def append(self, point: tuple[str, float]) -> None:
        self._t.append(int(np.datetime64(point[0].rstrip("Z"), "s").astype(np.int64)))
        self._v.append(float(point[1]))

    def __len__(self) -> int:
        return len(self._v)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return _iso(np.datetime64(self._t[i], "s")), self._v[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"EquityCurve({list(self)!r})"

    @property
    def values(self) -> np.ndarray:
        return np.frombuffer(self._v, dtype=float) if len(self._v) else np.empty(0)


@dataclass
class Outcome:
    """What a run produced: the loop fills it date by date; the application layer adds the
    status, the metrics and the warnings.

    `decisions`, `reviews`, `orders` and `fills` hold those of the latest decision time (all of
    them for a one-decision run): a run's whole record is in the event log (`flowkit.read_run`,
    `RunStore`), so a long run does not keep it in memory. `equity` is the whole curve."""

    run_id: str
    status: str
    decisions: list[Decision] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    equity: EquityCurve = field(default_factory=EquityCurve)
    metrics: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    estimate: Any = None  # app.estimating.Estimate: what a run with real models was expected
    spent: Any = None     # app.estimating.Spend: and what it spent


@dataclass(frozen=True)
class Progress:
    """Reported after each decision time, for whoever shows progress (the loop prints nothing)."""

    done: int
    total: int
    decisions: int
    equity: float
    model_calls: int
    cost_usd: float
    elapsed_s: float


# A checkpoint commits a transaction, and every commit leaves DuckDB free space behind: at most
# one every 10 s (a decision slower than that is checkpointed each time; a faster one redoes at
# most 10 s on resume). Measured on 3 symbols x 2024: 36.1 KB per decision at 1 s, 23.2 at 10 s.
CHECKPOINT_SECONDS = 10.0
# FLOWKIT_CHECKPOINT_EVERY=N: a checkpoint every N decision times instead of every 10 s, so
# the kill/resume tests' kill points do not depend on the machine's speed.
CHECKPOINT_EVERY = int(os.environ.get("FLOWKIT_CHECKPOINT_EVERY") or 0)


def _iso(t: Any) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _ts(t: Any) -> datetime:
    return np.datetime64(t, "us").astype(datetime)


class Trading:
    """Portfolio, risk engine and broker for one run, rebuilt from a checkpoint on resume.

    Each order is logged once, when it reaches a final status (filled, rejected, cancelled),
    or at the end of the run while still working: the `orders` table has one row per order.
    Once logged, a settled order leaves the broker, so the state a checkpoint saves is the live
    state (positions, working orders, risk state), whatever the length of the run; `logged`
    holds only orders logged while still with the broker (on resume, or at the end)."""

    def __init__(self, session: Session, symbols: list[str], live: bool = False,
                 state: dict[str, Any] | None = None):
        from flowkit.plugins import BROKERS
        from flowkit.portfolio import Portfolio
        from flowkit.risk import RiskEngine

        spec = session.spec
        p = spec.portfolio
        self.portfolio = Portfolio.from_state(state["portfolio"]) if state else \
            Portfolio(p.initial_cash, p.fractional)
        self.engine = RiskEngine(spec.risk, session.market.sectors(symbols), set(symbols),
                                 fee_bps=p.fee_bps, slippage_bps=p.slippage_bps,
                                 run_id=session.run_id)
        self.broker: Broker = BROKERS[p.broker].from_spec(p, self.portfolio, self.engine,
                                                          live=live)
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
        """Order rows not logged yet whose status is final (all of them when the run ends);
        the broker forgets the settled ones, which the caller logs now."""
        out, settled = [], []
        for order_id, record in self.broker.orders.items():
            if record.status != "submitted":
                settled.append(order_id)
            if order_id not in self.logged and (final or record.status != "submitted"):
                self.logged.add(order_id)
                out.append(record.model_dump())
        self.broker.forget(settled)
        self.logged.difference_update(settled)
        return out


class Loop:
    def __init__(self, session: Session, symbols: list[str], times: list[np.datetime64],
                 live: bool = False, state: dict[str, Any] | None = None,
                 on_progress: Callable[[Progress], None] | None = None):
        self.session, self.symbols, self.times = session, symbols, times
        session.planned_decisions = len(symbols) * len(times)  # bounds the invalid share
        self.on_progress = on_progress
        self.log = session.log
        self.trading = Trading(session, symbols, live, state["trading"] if state else None)
        self.bars = {s: session.market.bars(s) for s in symbols}
        self.daily = session.spec.market.timeframe == "1d"
        # Bars before the first decision bar cannot touch an order: replay starts at it.
        # `cursor`: the next bar to close per symbol; `opened`: the next bar to open.
        self.cursor = {s: int(state["cursor"][s]) for s in symbols} if state else \
            {s: max(0, self.bars[s].index_asof(times[0])) for s in symbols}
        self.opened = {s: int(state["opened"][s]) for s in symbols} if state else dict(self.cursor)
        self.outcome = Outcome(session.run_id, "running")
        self.exposure = array("d")  # gross exposure at each decision time, for the metrics
        self.logged_fills: set[str] = set()  # on resume: fills the log kept (see preload)
        # What the trade metrics need of every fill so far, bounded: checkpointed with the rest.
        self.trips = RoundTrips(state.get("trips") if state else None)
        self.notional = float(state.get("notional", 0.0)) if state else 0.0
        if state and "trips" not in state:  # an older checkpoint: its broker kept every fill
            for fill in self.trading.broker.fills:
                self._count(fill.model_dump())
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
        self.log.append("checkpoints", checkpoint_row(self.session.run_id, seq, _ts(t),
                                                      self.checkpoint_state()))

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint holds: the live state only (history is in the log tables)."""
        return {"trading": self.trading.state(), "cursor": self.cursor, "opened": self.opened,
                "memory": self.memory.to_state() if self.memory else None,
                "trips": self.trips.to_state(), "notional": self.notional}

    def preload(self, seq: int) -> None:
        """On resume from the checkpoint at decision time `seq`: the equity curve, for the
        final metrics, and what the log already holds, so nothing is written twice (the trade
        metrics' inputs come with the checkpoint: the `fills` table has no order within one bar
        time, and round trips depend on it).

        - An order is logged once it settles, under its decision time, which may be at or
          before the checkpoint even when it settled after it: such rows survive the discard.
          The redone dates settle them identically, so they count as logged already (such an
          order was still working at the checkpoint: the broker holds it).
        - Likewise a fill is logged under the time its bar opened, which may be at the checkpoint
          though it executed after it: redone, it is not logged again (nor counted twice).
        - Step numbers continue after the last one kept."""
        run_id, working = self.session.run_id, self.trading.broker.orders
        since = _ts(self.times[seq])
        with self.log.reader() as store:
            snapshots, orders = store.snapshots(run_id), store.orders(run_id)
            fills = store.fills(run_id)
            last_seq = store.last_step_seq(run_id)
        for snap in snapshots:
            self.outcome.equity.append((_iso(np.datetime64(snap["time"], "s")), snap["equity"]))
            self.exposure.append(snap["gross_exposure"])
        self.logged_fills = {f["fill_id"] for f in fills if f["time"] >= since}
        self.trading.logged |= {o["order_id"] for o in orders if o["order_id"] in working}
        self.session.ctx.seq = itertools.count(last_seq + 1)

    # ---------------------------------------------------------------- the loop

    async def run(self, start_seq: int = 0) -> Outcome:
        engine, portfolio = self.trading.engine, self.trading.portfolio
        out = self.outcome
        for seq in range(start_seq, len(self.times)):
            t = self.times[seq]
            for rows in (out.decisions, out.reviews, out.orders, out.fills):
                rows.clear()  # the log holds them: keep only this decision time's
            self.replay_bars(t)
            self.close_ended(seq, t)
            prices = self.trading.prices()
            engine.update_daily(portfolio.equity(prices))
            self.submit(engine.halt_orders(portfolio, prices, _ts(t))
                        or engine.trim_orders(portfolio, prices, _ts(t)))
            self.log.append("risk_state", {
                "run_id": self.session.run_id, "time": _ts(t), "equity": portfolio.equity(prices),
                "drawdown": portfolio.drawdown(prices), **engine.daily_state()})
            active = [s for s in sorted(self.symbols) if self._has_bar_closing_at(s, t)]
            decided = await _all_or_none([self.decide(s, t, prices) for s in active])
            for d, _ in sorted(decided, key=lambda pair: pair[0].symbol):
                self.review(d, t, prices)
            self.log_orders()
            self.snapshot(t)
            if self.memory:
                self.memory.observe(seq, t, decided, self.bars)
            # A checkpoint commits everything so far (one DuckDB transaction): taken at
            # most every CHECKPOINT_SECONDS and at the end. Resume redoes the dates after the last
            # one, which are deterministic, so results do not depend on where the run was killed.
            if seq == len(self.times) - 1 or (
                    (seq + 1) % CHECKPOINT_EVERY == 0 if CHECKPOINT_EVERY
                    else time.perf_counter() - self.last_checkpoint >= CHECKPOINT_SECONDS):
                self.checkpoint(seq, t)
                self.last_checkpoint = time.perf_counter()
            self.progress(seq + 1)
        # Nothing will fill what is still working: orders placed before the last decision time
        # expire; those placed at it stay `submitted`, the orders the run ends with.
        self.trading.broker.withdraw(None, "expired", before=_ts(self.times[-1]))
        self.log_orders(final=True)
        return self.outcome

    def close_ended(self, seq: int, t: np.datetime64) -> None:
        """At the first decision time after a symbol's last bar (its data ended inside the run;
        the market's data warnings say so): cancel its working orders and exit its position at
        its last close (reason `data_end`), rather than carry it frozen with stops that can
        never fire."""
        from flowkit.domain.orders import OrderRequest

        broker, portfolio = self.trading.broker, self.trading.portfolio
        for s in sorted(self.symbols):
            last = self.bars[s].close_time[-1]
            if not (last < t and (seq == 0 or last >= self.times[seq - 1])):
                continue
            broker.withdraw(s, "cancelled")
            qty = portfolio.qty(s)
            if qty:
                submission = broker.close_out(OrderRequest.create(
                    run_id=self.session.run_id, as_of=_ts(t), symbol=s,
                    side="sell" if qty > 0 else "buy", quantity=abs(qty), reason="data_end"))
                self.record_fills([submission.fill] if submission.fill else [])

    def _has_bar_closing_at(self, symbol: str, t: np.datetime64) -> bool:
        bars = self.bars[symbol]
        i = bars.index_asof(t)
        return i >= 0 and bars.close_time[i] == t

    def replay_bars(self, t: np.datetime64) -> None:
        """Every bar event up to t, all symbols merged in time order: a bar's open once it has
        opened before t (market orders fill there), its close once it has closed by t (limit
        orders, stops, take-profits, then the mark). At one instant closes come before opens
        (a crypto bar closes as the next opens), and the broker takes each instant's bars
        together, so no symbol sees another's later price or later cash."""
        events: list[tuple[np.datetime64, int, str, int]] = []
        for s in self.symbols:
            bars = self.bars[s]
            opened = int(np.searchsorted(bars.time, seconds(t), side="left"))
            closed = bars.index_asof(t) + 1
            events += [(bars.time[i], 1, s, i) for i in range(self.opened[s], opened)]
            events += [(bars.close_time[i], 0, s, i) for i in range(self.cursor[s], closed)]
            self.opened[s], self.cursor[s] = max(self.opened[s], opened), closed
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        broker = self.trading.broker
        for (_, is_open), group in itertools.groupby(events, key=lambda e: (e[0], e[1])):
            batch = {s: self._bar(s, i) for _, _, s, i in group}
            self.record_fills(broker.open_bars(batch) if is_open else broker.close_bars(batch))

    def _bar(self, symbol: str, i: int) -> tuple[datetime, float, float, float, float]:
        bars = self.bars[symbol]
        return (_ts(bars.time[i]), float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                float(bars.close[i]))

    async def decide(self, symbol: str, t: np.datetime64, prices: dict[str, float],
                     ) -> tuple[Decision, DecisionState]:
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
        return await self.session.deliberate(symbol, t, portfolio=view, risk_state=risk_state,
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
        portfolio = self.trading.portfolio
        review = self.trading.engine.review(d, portfolio, prices, _ts(t))
        # The weight of equity the position has once the approved order fills at the decision
        # price (before costs): what the firm ends up targeting after the rule engine.
        price, equity = prices.get(d.symbol), portfolio.equity(prices)
        weight = (portfolio.qty(d.symbol) + review.approved_qty) * price / equity \
            if price and equity > 0 else None
        self.session.ctx.record("decisions", d.row(weight))
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
            self._count(row)
            if row["fill_id"] not in self.logged_fills:
                self.log.append("fills", row)
                self.outcome.fills.append(row)

    def _count(self, fill: dict[str, Any]) -> None:
        self.trips.add(fill)
        self.notional += abs(fill["quantity"] * fill["price"])

    def snapshot(self, t: np.datetime64) -> None:
        snap = self.trading.portfolio.snapshot(_ts(t), self.trading.prices())
        self.log.append("portfolio", {"run_id": self.session.run_id, **snap})
        self.exposure.append(snap["gross_exposure"])
        self.outcome.equity.append((_iso(t), snap["equity"]))

    def progress(self, done: int) -> None:
        if self.on_progress is None:
            return
        ctx = self.session.ctx
        self.on_progress(Progress(
            done=done, total=len(self.times), decisions=self.session.decided,
            equity=self.outcome.equity[-1][1], model_calls=ctx.calls,
            cost_usd=ctx.budget.cost_usd if ctx.budget is not None else 0.0,
            elapsed_s=time.perf_counter() - self.started))


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
