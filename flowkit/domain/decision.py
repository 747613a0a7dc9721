"""The trade decision: built once from the decision agent's typed output, reviewed as is by
the risk engine and logged as one `decisions` row. Core fields (symbol, action, size) must be
right; advisory fields (stops, entry, confidence, text) that are junk are dropped, so the
defaults apply instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from flowkit.domain.numbers import finite_number, usable_price

Action = Literal["BUY", "SELL", "HOLD"]


class Decision(BaseModel):
    """size_pct is the trade's size as % of equity: BUY raises the position by that much,
    SELL lowers it (reducing a long, then going short if allowed). `reasoning` also reads an
    output schema's `rationale`, the name some custom decision schemas use."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: str = Field(min_length=1, max_length=40)
    action: Action
    size_pct: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    entry: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    confidence: float | None = None
    as_of: str = ""
    agent: str = ""
    reasoning: str = Field("", validation_alias=AliasChoices("reasoning", "rationale"))
    # invalid: held because no model gave a usable answer (runtime.on_invalid: hold)
    status: Literal["ok", "invalid"] = "ok"

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

    @field_validator("entry", "stop_loss", "take_profit", mode="before")
    @classmethod
    def _price_or_none(cls, value: Any) -> float | None:
        return usable_price(value)

    @field_validator("confidence", mode="before")
    @classmethod
    def _unit_or_none(cls, value: Any) -> float | None:
        share = finite_number(value)
        return share if share is not None and 0 <= share <= 1 else None

    @field_validator("as_of", "agent", "reasoning", mode="before")
    @classmethod
    def _text_or_empty(cls, value: Any) -> str:
        return value if isinstance(value, str) else ""

    @model_validator(mode="before")
    @classmethod
    def _size_required_to_trade(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("size_pct") is None:
            action = data.get("action")
            if not (isinstance(action, str) and action.strip().upper() == "HOLD"):
                raise ValueError("size_pct is required for BUY and SELL")
        return data

    def row(self, target_weight: float | None = None) -> dict[str, Any]:
        """The `decisions` row (without run_id); `target_weight` comes from the risk review."""
        return {"symbol": self.symbol, "as_of": self.as_of, "agent": self.agent,
                "action": self.action, "size_pct": self.size_pct, "target_weight": target_weight,
                "confidence": self.confidence, "entry": self.entry, "stop_loss": self.stop_loss,
                "take_profit": self.take_profit, "reasoning": self.reasoning,
                "status": self.status}


def decision_from_output(output: Mapping[str, Any], *, symbol: str, as_of: str,
                         agent: str) -> Decision:
    """The decision in a decision agent's validated output, read by the schema's field names;
    the firm, not the model, says which symbol, time and agent it is for."""
    return Decision.model_validate({**output, "symbol": symbol, "as_of": as_of, "agent": agent,
                                    "status": "ok"})


def order_problem(schema: dict[str, Any]) -> str | None:
    """What keeps an output schema from carrying an order, or None."""
    props = _mapping_of(schema.get("properties"))
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    missing = [f for f in ("action", "size_pct") if f not in props]
    if missing:
        return f"has no {' or '.join(missing)}"
    optional = [f for f in ("action", "size_pct") if f not in required]
    if optional:
        return f"does not require {' or '.join(optional)}"
    enum = _mapping_of(props["action"]).get("enum")
    odd = [v for v in enum or () if not isinstance(v, str) or v.upper() not in ("BUY", "SELL", "HOLD")]
    if odd:
        return f"allows action {odd[0]!r}"
    kind = _mapping_of(props["size_pct"]).get("type")
    if kind is not None and not {"number", "integer"} & set(kind if isinstance(kind, list) else [kind]):
        return f"declares size_pct of type {kind}"
    return None


def _mapping_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
