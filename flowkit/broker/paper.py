"""Simulated execution against OHLC bars.

Timing: with `fill: next_open` a market order waits for the first bar after its as_of and fills
at that bar's open; with `fill: close` it fills at once at the close of the last bar seen for its
symbol (the decision bar). Limit and stop orders wait for a bar that reaches their level: buy
limits and sell stops fill at min(open, level) once low <= level, sell limits and buy stops at
max(open, level) once high >= level, so a gap through the level fills at the open. Every fill
moves slippage_bps against us and pays fee_bps of its notional. Just before filling, the risk
engine clips the quantity to the hard limits at the fill price (an order clipped to nothing is
`rejected`).

Time order (`open_bars`, `close_bars`): at a bar's open only its open is known, so market orders
fill then, marked and clipped against every other symbol's latest known price; limit orders,
stops and take-profits need the bar's range and resolve at its close. Orders at one instant go
in a fixed order that never depends on how the workflow lists its symbols."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowkit.broker.base import Bar, Broker
from flowkit.domain.orders import Fill, OrderRequest, OrderStatus, Submission
from flowkit.errors import BrokerError
from flowkit.spec.models import PortfolioSpec

if TYPE_CHECKING:  # for annotations only: the broker gets them from its caller
    from flowkit.portfolio import Portfolio
    from flowkit.risk import RiskEngine


def _reference_price(order: OrderRequest, open_: float, high: float, low: float) -> float | None:
    """Where `order` executes on this bar before slippage, or None if the bar misses it."""
    if order.order_type == "market":
        return open_
    level = order.limit_price
    assert level is not None  # guaranteed by OrderRequest for non-market orders
    if (order.side == "buy") == (order.order_type == "limit"):  # waits for the price to fall
        return min(open_, level) if low <= level else None
    return max(open_, level) if high >= level else None


class PaperBroker(Broker):
    name = "paper"
    portfolio: Portfolio
    risk: RiskEngine

    def __init__(self, spec: PortfolioSpec, portfolio: Portfolio, risk_engine: RiskEngine):
        super().__init__(portfolio, risk_engine)
        self.spec = spec
        self._pending: list[str] = []

    @classmethod
    def from_spec(cls, spec: PortfolioSpec, portfolio: Portfolio, risk_engine: RiskEngine, *,
                  live: bool = False) -> PaperBroker:
        return cls(spec, portfolio, risk_engine)

    def submit(self, order: OrderRequest) -> Submission:
        """Idempotent: an order id seen before returns its existing record and fill."""
        if self._known(order):
            return self._submission(order.order_id)
        close_now = self.spec.fill == "close" and order.order_type == "market"
        if close_now and order.symbol not in self._marks:
            raise BrokerError(f"{order.symbol}: no bar seen yet, so no close to fill at")
        if close_now:
            return self.close_out(order)
        self._record(order, "submitted", order.as_of)
        self._pending.append(order.order_id)
        return self._submission(order.order_id)

    def close_out(self, order: OrderRequest) -> Submission:
        if self._known(order):
            return self._submission(order.order_id)
        self._record(order, "submitted", order.as_of)
        self._execute(order, self._marks[order.symbol], order.as_of)
        return self._submission(order.order_id)

    def withdraw(self, symbol: str | None, status: OrderStatus,
                 before: dt.datetime | None = None) -> list[str]:
        gone = [i for i in self._pending if (symbol is None or self._orders[i].symbol == symbol)
                and (before is None or self._orders[i].as_of < before)]
        for order_id in gone:
            self._pending.remove(order_id)
            self._set_status(order_id, status)
        return gone

    def on_bar(self, symbol: str, time: dt.datetime | dt.date, open: float, high: float,
               low: float, close: float) -> list[Fill]:
        """Process one bar: its open, then its close."""
        bar = {symbol: (time, open, high, low, close)}
        return self.open_bars(bar) + self.close_bars(bar)

    def open_bars(self, bars: Mapping[str, Bar]) -> list[Fill]:
        """Mark every symbol at its open, then fill the market orders waiting for these bars:
        reductions before additions (a sale's cash is there for a purchase at the same instant),
        each in symbol-name order (one symbol's in submission order). Only the opens are used:
        the ranges are not known yet."""
        times = {s: self._bar_time(s, *bar) for s, bar in bars.items()}
        for symbol, bar in bars.items():
            self._marks[symbol] = bar[1]
        due = [self._orders[i] for i in self._pending]
        # The decision bar opened before as_of; the next one may open exactly at it (crypto).
        due = [o for o in due if o.order_type == "market" and o.symbol in bars
               and o.as_of <= times[o.symbol]]
        # Stable: one symbol's orders keep the order they were submitted in.
        due.sort(key=lambda o: (self.portfolio.qty(o.symbol) * o.sign >= 0, o.symbol))
        fills: list[Fill] = []
        for order in due:
            fills += self._try_fill(order, times[order.symbol], *bars[order.symbol][1:4])
        return fills

    def close_bars(self, bars: Mapping[str, Bar]) -> list[Fill]:
        """In symbol-name order: fill the limit and stop orders each bar's range reaches, then
        the stops and take-profits it triggers, with every other symbol still marked at the
        price known before these closes; then mark every symbol at its close."""
        fills: list[Fill] = []
        for symbol in sorted(bars):
            bar = bars[symbol]
            time = self._bar_time(symbol, *bar)
            _, open_, high, low, _close = bar
            waiting = [self._orders[i] for i in self._pending]
            for order in waiting:
                if order.symbol == symbol and order.order_type != "market" and order.as_of <= time:
                    fills += self._try_fill(order, time, open_, high, low)
            for exit_ in self.risk.check_stops(self.portfolio, symbol, open_, high, low, time):
                if exit_.order_id not in self._orders:  # a replayed bar must not exit twice
                    self._record(exit_, "submitted", time)
                    self._pending.append(exit_.order_id)
                    fills += self._try_fill(exit_, time, open_, high, low)
        for symbol, bar in bars.items():
            self._marks[symbol] = bar[4]
        return fills

    def _try_fill(self, order: OrderRequest, time: dt.datetime, open_: float, high: float,
                  low: float) -> list[Fill]:
        ref = _reference_price(order, open_, high, low)
        if ref is None:  # the bar missed the level: keep waiting
            return []
        self._pending.remove(order.order_id)
        fill = self._execute(order, ref, time)
        return [fill] if fill else []

    def _execute(self, order: OrderRequest, ref: float, time: dt.datetime) -> Fill | None:
        price = ref * (1 + order.sign * self.spec.slippage_bps / 10_000)
        quantity = self.risk.clip_to_limits(order, self.portfolio, price, self._marks)
        if quantity <= 0:
            self._set_status(order.order_id, "rejected")
            return None
        fill = Fill(fill_id=f"{order.order_id}-f", order_id=order.order_id, symbol=order.symbol,
                    time=time, side=order.side, quantity=quantity, price=price,
                    fee=quantity * price * self.spec.fee_bps / 10_000,
                    slippage=quantity * abs(price - ref))
        self._book(fill)
        self._set_status(order.order_id, "filled")
        return fill

    def to_state(self) -> dict[str, Any]:
        return {**super().to_state(), "pending": list(self._pending)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self._pending = list(state["pending"])
