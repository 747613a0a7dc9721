"""Accounting: cash, signed positions, realised/unrealised P&L, fees, drawdown."""

from flowkit.portfolio.book import Portfolio, Position, finite_number, usable_price

__all__ = ["Portfolio", "Position", "finite_number", "usable_price"]
