"""Accounting: cash, signed positions, realised/unrealised P&L, fees, drawdown."""

from flowkit.domain.numbers import finite_number, usable_price
from flowkit.portfolio.book import Portfolio, Position

__all__ = ["Portfolio", "Position", "finite_number", "usable_price"]
