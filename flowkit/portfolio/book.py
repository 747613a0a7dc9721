"""Cash, positions and P&L.

Conventions: quantities are signed (short < 0); `avg_cost` excludes fees; realised and
unrealised P&L are price P&L gross of fees, which are tracked apart in `fees_paid`, so that
equity - initial_cash == realized + unrealized - fees_paid. A symbol missing from `prices` is
valued at its last known price (last fill or snapshot mark)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from flowkit.domain.numbers import usable_price
from flowkit.domain.orders import Fill

FRACTIONAL_STEP = 1e-8  # smallest quantity step when fractional (one satoshi of BTC); 8 decimals


@dataclass
class Position:
    qty: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0
    last_price: float = 0.0


class Portfolio:
    def __init__(self, initial_cash: float, fractional: bool = False):
        if not (math.isfinite(initial_cash) and initial_cash > 0):
            raise ValueError(f"initial_cash must be a positive number, got {initial_cash!r}")
        self.initial_cash = float(initial_cash)
        self.fractional = fractional
        self.cash = self.initial_cash
        self.fees_paid = 0.0
        self.peak_equity = self.initial_cash
        self.positions: dict[str, Position] = {}

    # ------------------------------------------------------------ quantities

    def qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0.0

    def round_qty(self, qty: float) -> float:
        """Round toward zero to a tradable quantity, so sizing never overshoots a limit."""
        if not math.isfinite(qty):
            return 0.0
        if not self.fractional:
            return float(math.trunc(qty))
        # Snap to the grid first: a quantity already on it (stored as 20.68903894 but held as
        # ...893999) must come back unchanged, not one step lower.
        steps = qty / FRACTIONAL_STEP
        nearest = round(steps)
        whole = nearest if abs(steps - nearest) < 1e-6 else math.trunc(steps)
        return round(whole * FRACTIONAL_STEP, 8)

    def apply_fill(self, fill: Fill) -> None:
        """Book a fill: opening, adding, reducing, closing or flipping a position."""
        if not self.fractional and fill.quantity != math.floor(fill.quantity):
            raise ValueError(f"{fill.symbol}: {fill.quantity} is not a whole number of shares")
        pos = self.positions.setdefault(fill.symbol, Position())
        delta = fill.signed_qty
        old = pos.qty
        new = old + delta
        if abs(new) < 1e-12 * max(abs(old), abs(delta)):  # float residue of a full close
            new = 0.0
        if old == 0 or (old > 0) == (delta > 0):  # open or add: blend the cost
            pos.avg_cost = (abs(old) * pos.avg_cost + abs(delta) * fill.price) / abs(new)
        else:  # reduce, close or flip: realise P&L on the closed part
            closed = min(abs(delta), abs(old))
            pos.realized_pnl += closed * (fill.price - pos.avg_cost) * (1 if old > 0 else -1)
            if new == 0:
                pos.avg_cost = 0.0
            elif (new > 0) != (old > 0):  # flipped: the remainder opened at the fill price
                pos.avg_cost = fill.price
        # Keep booked quantities on the tradable grid, so float residue never leaves dust that
        # an exit cannot close.
        pos.qty = round(new, 8) if self.fractional else new
        pos.last_price = fill.price
        self.cash -= delta * fill.price + fill.fee
        self.fees_paid += fill.fee

    # ------------------------------------------------------------ valuation

    def price(self, symbol: str, prices: Mapping[str, float]) -> float:
        """The price to value `symbol` at: the given one if usable, else the last known."""
        price = usable_price(prices.get(symbol))
        if price is not None:
            return price
        pos = self.positions.get(symbol)
        return pos.last_price if pos else 0.0

    def position_value(self, symbol: str, prices: Mapping[str, float]) -> float:
        """Signed market value of one position."""
        return self.qty(symbol) * self.price(symbol, prices)

    def equity(self, prices: Mapping[str, float]) -> float:
        return self.cash + sum(self.position_value(s, prices) for s in self.positions)

    def gross_exposure(self, prices: Mapping[str, float]) -> float:
        """Sum of |position value| as a fraction of equity (inf once equity is gone)."""
        gross = sum(abs(self.position_value(s, prices)) for s in self.positions)
        equity = self.equity(prices)
        return gross / equity if equity > 0 else math.inf if gross else 0.0

    def unrealized_pnl(self, prices: Mapping[str, float], symbol: str | None = None) -> float:
        symbols = self.positions if symbol is None else [symbol] if symbol in self.positions else []
        return sum(self.qty(s) * (self.price(s, prices) - self.positions[s].avg_cost)
                   for s in symbols)

    @property
    def realized_pnl(self) -> float:
        return sum(p.realized_pnl for p in self.positions.values())

    def drawdown(self, prices: Mapping[str, float]) -> float:
        """Fraction below the peak equity seen at snapshots (<= 0)."""
        equity = self.equity(prices)
        return equity / max(self.peak_equity, equity) - 1.0

    def snapshot(self, time: dt.datetime, prices: Mapping[str, float]) -> dict[str, Any]:
        """Mark to market, advance the peak, and return one `portfolio` row (without run_id)."""
        for symbol, pos in self.positions.items():
            pos.last_price = self.price(symbol, prices)
        equity = self.equity(prices)
        self.peak_equity = max(self.peak_equity, equity)
        return {
            "time": time,
            "cash": self.cash,
            "equity": equity,
            "gross_exposure": self.gross_exposure(prices),
            "drawdown": equity / self.peak_equity - 1.0,
            "positions": {
                symbol: {
                    "qty": pos.qty,
                    "avg_cost": pos.avg_cost,
                    "price": pos.last_price,
                    "value": pos.qty * pos.last_price,
                    "unrealized_pnl": pos.qty * (pos.last_price - pos.avg_cost),
                    "realized_pnl": pos.realized_pnl,
                }
                for symbol, pos in self.positions.items()
            },
        }

    # ------------------------------------------------------------ checkpoints

    def to_state(self) -> dict[str, Any]:
        return {
            "initial_cash": self.initial_cash,
            "fractional": self.fractional,
            "cash": self.cash,
            "fees_paid": self.fees_paid,
            "peak_equity": self.peak_equity,
            "positions": {s: asdict(p) for s, p in self.positions.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Portfolio:
        book = cls(state["initial_cash"], state["fractional"])
        book.cash = state["cash"]
        book.fees_paid = state["fees_paid"]
        book.peak_equity = state["peak_equity"]
        book.positions = {s: Position(**p) for s, p in state["positions"].items()}
        return book
