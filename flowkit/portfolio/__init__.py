"""Accounting: cash, signed positions, realised/unrealised P&L, fees, drawdown."""

from flowkit.portfolio.book import Portfolio, Position, usable_price

__all__ = ["Portfolio", "Position", "usable_price"]
