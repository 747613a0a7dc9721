"""Sizing against the hard limits, in closed form.

Every limit is linear in the traded quantity, so each rule yields its own cap and the largest
quantity that satisfies every limit is the smallest cap. A trade splits into a reducing part
(toward flat: always allowed, whatever the limits say) and a new-exposure part (away from flat):
rules cap only the new part, except `cash_available`, which caps every buy because cash never
goes negative. Limits are measured against equity *after* the trade's fee and slippage."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowkit.spec.models import RiskSpec

# Order in which rules are reported and ties for the binding rule are broken.
RULES = ("allow_short", "max_drawdown_pct", "cvar", "max_position_pct", "max_sector_pct",
         "max_gross_exposure_pct", "min_cash_pct", "cash_available")


@dataclass(frozen=True)
class Book:
    """What the limits read for one symbol, with that symbol valued at `mark`."""

    equity: float
    cash: float
    qty: float     # signed position in the symbol
    mark: float
    sector: float  # sum of |value| over the symbol's sector
    gross: float   # sum of |value| over all positions

    def after(self, signed_qty: float, exec_price: float, fee_rate: float) -> Book:
        """The book once `signed_qty` has traded at `exec_price` (marked at `mark`)."""
        fee = abs(signed_qty) * exec_price * fee_rate
        qty = self.qty + signed_qty
        grown = (abs(qty) - abs(self.qty)) * self.mark
        return Book(equity=self.equity + signed_qty * (self.mark - exec_price) - fee,
                    cash=self.cash - signed_qty * exec_price - fee, qty=qty, mark=self.mark,
                    sector=self.sector + grown, gross=self.gross + grown)

    def percents(self) -> dict[str, float | None]:
        """Each limited quantity as % of equity (None when equity is not positive)."""
        values = {"max_position_pct": abs(self.qty) * self.mark, "max_sector_pct": self.sector,
                  "max_gross_exposure_pct": self.gross, "min_cash_pct": self.cash}
        return {k: (100 * v / self.equity if self.equity > 0 else None) for k, v in values.items()}


def reducible(book: Book, side: int, quantity: float) -> float:
    """How much of a trade of `quantity` on `side` (+1 buy, -1 sell) only reduces the position."""
    return min(quantity, abs(book.qty)) if book.qty * side < 0 else 0.0


def caps(book: Book, side: int, quantity: float, exec_price: float, fee_rate: float,
         spec: RiskSpec, *, halted: bool, scale: float | None) -> dict[str, float]:
    """Per rule, the largest total quantity it allows for a trade of `quantity` on `side`.
    `scale` is the CVaR multiplier on new exposure (None when the firm is not risk-averse)."""
    reduce = reducible(book, side, quantity)
    new = quantity - reduce
    # Equity lost per unit traded: adverse slippage against the mark, plus the fee.
    cost = side * (exec_price - book.mark) + fee_rate * exec_price
    equity = book.equity - cost * reduce  # once the reducing part is done

    def exposure(limit_pct: float, current: float) -> float:
        share = limit_pct / 100
        return (share * equity - (current - reduce * book.mark)) / (book.mark + share * cost)

    new_caps = {
        "allow_short": 0.0 if side < 0 and not spec.allow_short else math.inf,
        "max_drawdown_pct": 0.0 if halted else math.inf,
        "cvar": new * scale if scale is not None else math.inf,
        "max_position_pct": exposure(spec.max_position_pct, abs(book.qty) * book.mark),
        "max_sector_pct": exposure(spec.max_sector_pct, book.sector),
        "max_gross_exposure_pct": exposure(spec.max_gross_exposure_pct, book.gross),
    }
    total = {rule: reduce + max(0.0, cap) for rule, cap in new_caps.items()}
    if side > 0:
        unit_cash = exec_price * (1 + fee_rate)
        floor = spec.min_cash_pct / 100
        # cash - q*unit_cash >= floor * (equity - q*cost), solved for q
        by_floor = (book.cash - floor * book.equity) / (unit_cash - floor * cost)
        total["min_cash_pct"] = reduce + max(0.0, by_floor - reduce)
        total["cash_available"] = max(0.0, book.cash / unit_cash)
    return total


def binding(caps_: dict[str, float], quantity: float) -> str | None:
    """The first rule (in RULES order) with the smallest cap, if that cap is below `quantity`."""
    rule = min(caps_, key=lambda r: (caps_[r], RULES.index(r)))
    return rule if caps_[rule] < quantity else None
