"""The trade proposal the rule engine reads, and the parser that turns anything into one or
says why not. Core fields (symbol, action, size) must be right; advisory fields (stops,
confidence) that are junk are dropped, so the defaults apply instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowkit.portfolio import finite_number, usable_price


class Proposal(BaseModel):
    """size_pct is the trade's size as % of equity: BUY raises the position by that much,
    SELL lowers it (reducing a long, then going short if allowed)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: str = Field(min_length=1, max_length=40)
    action: Literal["BUY", "SELL", "HOLD"]
    size_pct: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    stop_loss: float | None = None
    take_profit: float | None = None
    confidence: float | None = None

    @field_validator("symbol", "action", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("size_pct", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # ValueError: pydantic reports it; a TypeError would escape
            raise ValueError("size_pct must be a number, not a boolean")  # noqa: TRY004
        return value

    @field_validator("stop_loss", "take_profit", mode="before")
    @classmethod
    def _price_or_none(cls, value: Any) -> float | None:
        return usable_price(value)

    @field_validator("confidence", mode="before")
    @classmethod
    def _unit_or_none(cls, value: Any) -> float | None:
        share = finite_number(value)
        return share if share is not None and 0 <= share <= 1 else None

    @model_validator(mode="before")
    @classmethod
    def _size_required_to_trade(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("size_pct") is None:
            action = data.get("action")
            if not (isinstance(action, str) and action.strip().upper() == "HOLD"):
                raise ValueError("size_pct is required for BUY and SELL")
        return data


def parse_proposal(raw: Any, symbols: set[str] | frozenset[str]) -> Proposal:
    """A Proposal from a Proposal, any pydantic model or a mapping; raises otherwise."""
    if isinstance(raw, Proposal):
        proposal = raw
    else:
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        if not isinstance(raw, Mapping):
            raise TypeError(f"expected a mapping, got {type(raw).__name__}")
        proposal = Proposal.model_validate(dict(raw))
    if proposal.symbol not in symbols:
        raise ValueError(f"unknown symbol {proposal.symbol!r}")
    return proposal
