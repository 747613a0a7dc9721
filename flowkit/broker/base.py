"""The broker contract, and what every broker shares: the
orders and fills it produced, keyed by order id (the idempotency key) and exposed for the caller
to log; the latest price seen per symbol; and booking fills into the portfolio and the risk
engine. Once the caller has logged a settled order it tells the broker to `forget` it, so what a
broker holds (and a checkpoint saves) is the live state: working orders and marks."""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from flowkit.domain.orders import (
    Fill,
    OrderRecord,
    OrderRequest,
    OrderStatus,
    Submission,
)
from flowkit.errors import BrokerError, DataError

if TYPE_CHECKING:  # for annotations only: the broker gets them from its caller
    from flowkit.portfolio import Portfolio
    from flowkit.risk import RiskEngine
    from flowkit.spec.models import PortfolioSpec

_REQUEST_FIELDS = set(OrderRequest.model_fields)

Bar = tuple[dt.datetime | dt.date, float, float, float, float]
"""One symbol's bar for a broker: (open time, open, high, low, close)."""
_TIME = TypeAdapter(dt.datetime)


class Broker(ABC):
    """Registered under a name in the `flowkit.brokers` entry point group.

    Contract (checked by `flowkit.testing.conformance.check_broker`): `submit` is idempotent by
    order id (the same order again returns its record; the id reused for another order is a
    BrokerError); every booked fill goes through `_book`, so the portfolio and the engine's
    stops follow; `on_bar` sees each bar once, in time order, records the latest price in
    `marks` and returns the fills it caused; `to_state`/`load_state` round-trip through JSON
    so a resumed run continues where it stopped; `forget` drops settled orders (an id forgotten
    is no longer known to `submit`).

    The backtest feeds bars in time order across symbols, through `open_bars` (every bar opening
    at one instant) and `close_bars` (every bar closing at one instant). Their defaults suit a
    broker that only acts on whole bars: nothing at the open, `on_bar` per symbol in symbol-name
    order at the close, so the order a workflow lists its symbols in never matters."""

    name: str  # the `broker` column: paper | ccxt:<exchange> | a plugin's name

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: PortfolioSpec, portfolio: Portfolio, risk_engine: RiskEngine, *,
                  live: bool = False) -> Broker:
        """The broker a run uses; `live` is True only when the user asked for live trading."""

    @abstractmethod
    def submit(self, order: OrderRequest) -> Submission: ...

    @abstractmethod
    def on_bar(self, symbol: str, time: dt.datetime | dt.date, open: float, high: float,
               low: float, close: float) -> list[Fill]: ...

    def open_bars(self, bars: Mapping[str, Bar]) -> list[Fill]:
        """Bars of these symbols open at one instant; only their opens are known yet."""
        return []

    def close_bars(self, bars: Mapping[str, Bar]) -> list[Fill]:
        """Bars of these symbols close at one instant: their whole range is known now."""
        fills: list[Fill] = []
        for symbol in sorted(bars):
            fills += self.on_bar(symbol, *bars[symbol])
        return fills

    def close_out(self, order: OrderRequest) -> Submission:
        """Fill market `order` at once at its symbol's latest price: the symbol's data ended and
        no later bar will fill it. Only a simulated broker can; a real one refuses."""
        raise BrokerError(f"{self.name} cannot fill {order.symbol} at its last known price: "
                          "the symbol's data ended inside the run")

    def withdraw(self, symbol: str | None, status: OrderStatus,
                 before: dt.datetime | None = None) -> list[str]:
        """Stop the simulated orders still working (for `symbol`, or all; submitted before
        `before` if given) with `status`; their ids. A real exchange's orders keep working: by
        default none are withdrawn."""
        return []

    def __init__(self, portfolio: Portfolio | None, risk_engine: RiskEngine | None):
        self.portfolio = portfolio
        self.risk = risk_engine
        self._orders: dict[str, OrderRecord] = {}
        self._fills: dict[str, Fill] = {}  # by order id: one booked fill per order
        self._marks: dict[str, float] = {}

    @property
    def orders(self) -> Mapping[str, OrderRecord]:
        """Every order submitted, by order id, with its current status."""
        return MappingProxyType(self._orders)

    @property
    def fills(self) -> list[Fill]:
        return list(self._fills.values())

    @property
    def marks(self) -> Mapping[str, float]:
        """The latest price seen per symbol: the close of its last bar."""
        return MappingProxyType(self._marks)

    @staticmethod
    def _bar_time(symbol: str, time: dt.datetime | dt.date, open_: float, high: float,
                  low: float, close: float) -> dt.datetime:
        """The bar's time as a datetime, once the bar is known to be sane."""
        prices = (open_, high, low, close)
        if not all(math.isfinite(p) and p > 0 for p in prices) \
                or not low <= min(open_, close) <= max(open_, close) <= high:
            raise DataError(f"{symbol} {time}: bad bar {prices}")
        return _TIME.validate_python(time)

    def _known(self, order: OrderRequest) -> bool:
        """Whether `order` was submitted before. An id reused for a different order is refused:
        returning the other order's record would hide the conflict."""
        known = self._orders.get(order.order_id)
        if known is None:
            return False
        if known.model_dump(include=_REQUEST_FIELDS) != order.model_dump(include=_REQUEST_FIELDS):
            raise BrokerError(f"order id {order.order_id} was already used for a different order "
                              f"({known.side} {known.quantity} {known.symbol}, {known.reason})")
        return True

    def _submission(self, order_id: str) -> Submission:
        return Submission(self._orders[order_id], self._fills.get(order_id))

    def _record(self, order: OrderRequest, status: OrderStatus,
                submitted_at: dt.datetime) -> OrderRecord:
        known = self._orders.get(order.order_id)
        record = OrderRecord(**order.model_dump(include=_REQUEST_FIELDS), status=status,
                             broker=self.name,
                             submitted_at=known.submitted_at if known else submitted_at)
        self._orders[order.order_id] = record
        return record

    def _set_status(self, order_id: str, status: OrderStatus) -> None:
        self._orders[order_id] = self._orders[order_id].model_copy(update={"status": status})

    def _book(self, fill: Fill) -> None:
        """Record a fill and carry it into the portfolio and the engine's stops."""
        self._fills[fill.order_id] = fill
        if self.portfolio is not None:
            self.portfolio.apply_fill(fill)
            if self.risk is not None:
                self.risk.on_fill(fill, self.portfolio)

    def forget(self, order_ids: Iterable[str]) -> None:
        """Drop these orders and their fills once they are settled (filled, rejected, cancelled,
        expired) and logged by the caller; working orders are kept."""
        for order_id in order_ids:
            if self._orders[order_id].status != "submitted":
                del self._orders[order_id]
                self._fills.pop(order_id, None)

    def to_state(self) -> dict[str, Any]:
        return {"orders": [o.model_dump(mode="json") for o in self._orders.values()],
                "fills": [f.model_dump(mode="json") for f in self._fills.values()],
                "marks": dict(self._marks)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._orders = {o["order_id"]: OrderRecord.model_validate(o) for o in state["orders"]}
        self._fills = {f["order_id"]: Fill.model_validate(f) for f in state["fills"]}
        self._marks = dict(state["marks"])
