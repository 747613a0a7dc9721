"""Orders and fills: the records every broker produces, shaped like the `orders` and `fills`
tables (the caller adds run_id)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop"]
Reason = Literal["decision", "stop_loss", "take_profit", "drawdown_halt", "rebalance", "data_end"]
# cancelled: its symbol's data ended; expired: the run ended with it working.
OrderStatus = Literal["submitted", "filled", "rejected", "cancelled", "expired"]


def client_order_id(run_id: str, as_of: dt.datetime, symbol: str, reason: str) -> str:
    """The idempotency key: the same decision always maps to the same id. 32 characters of
    [a-z0-9], inside every exchange's client-id alphabet and length limit (bybit: 36)."""
    key = f"{run_id}|{as_of.isoformat()}|{symbol}|{reason}"
    return "fk" + hashlib.sha256(key.encode()).hexdigest()[:30]


class OrderRequest(BaseModel):
    """What the risk engine lets through. `limit_price` is the limit of a limit order and the
    trigger level of a stop order (stop exits are sent as `stop`, take-profits as `limit`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,36}$")
    symbol: str = Field(min_length=1)
    side: Side
    quantity: float = Field(gt=0, allow_inf_nan=False)
    order_type: OrderType = "market"
    limit_price: float | None = Field(None, gt=0, allow_inf_nan=False)
    reason: Reason = "decision"
    as_of: dt.datetime

    @model_validator(mode="after")
    def _price_matches_type(self) -> OrderRequest:
        if (self.order_type == "market") != (self.limit_price is None):
            raise ValueError("limit and stop orders need limit_price; market orders take none")
        return self

    @classmethod
    def create(cls, *, run_id: str, as_of: dt.datetime, symbol: str, side: Side, quantity: float,
               reason: Reason = "decision", order_type: OrderType = "market",
               limit_price: float | None = None) -> OrderRequest:
        return cls(order_id=client_order_id(run_id, as_of, symbol, reason), symbol=symbol,
                   side=side, quantity=quantity, order_type=order_type, limit_price=limit_price,
                   reason=reason, as_of=as_of)

    @property
    def sign(self) -> int:
        return 1 if self.side == "buy" else -1


class OrderRecord(OrderRequest):
    """An order as a broker holds it: one `orders` row."""

    status: OrderStatus
    broker: str
    submitted_at: dt.datetime


class Fill(BaseModel):
    """One execution: one `fills` row. `price` includes slippage; `slippage` is its cost in the
    quote currency (negative when an exchange filled better than the reference)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fill_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    time: dt.datetime
    side: Side
    quantity: float = Field(gt=0, allow_inf_nan=False)
    price: float = Field(gt=0, allow_inf_nan=False)
    fee: float = Field(0.0, ge=0, allow_inf_nan=False)
    slippage: float = Field(0.0, allow_inf_nan=False)

    @property
    def signed_qty(self) -> float:
        return self.quantity if self.side == "buy" else -self.quantity


class Submission(NamedTuple):
    """What `submit` returns: the order's record and its fill, if it has one yet."""

    order: OrderRecord
    fill: Fill | None
