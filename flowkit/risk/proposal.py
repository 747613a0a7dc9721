"""Reading a proposal the risk engine did not get from the firm (a mapping or another model,
e.g. from a custom loop): into a Decision, or an error saying why not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from flowkit.domain.decision import Decision


def parse_proposal(raw: Any, symbols: set[str] | frozenset[str]) -> Decision:
    """A Decision from a Decision (the same object), any pydantic model or a mapping; raises
    when it is none of those, is invalid, or names a symbol the firm does not trade."""
    if isinstance(raw, Decision):
        decision = raw
    else:
        if isinstance(raw, BaseModel):
            raw = raw.model_dump()
        if not isinstance(raw, Mapping):
            raise TypeError(f"expected a mapping, got {type(raw).__name__}")
        decision = Decision.model_validate(dict(raw))
    if decision.symbol not in symbols:
        raise ValueError(f"unknown symbol {decision.symbol!r}")
    return decision
