"""Answers for outputs flowkit does not ship: a valid instance of any inline JSON Schema.

Fields named score, signal, action, recommendation, confidence, size_pct, reasoning, summary,
rationale or argument take the computation for the role's kind (the analyst read for analysts,
by focus or all four blended; the firm's current lean otherwise), mapped onto the schema's own
labels (BUY / bullish / long ...); every other field gets its default, const, first enum value
or its type's zero."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flowkit.llm.offline.analysts import ANALYSTS, composite
from flowkit.llm.offline.trading import firm_lean
from flowkit.llm.offline.view import View, action_for, clip, rnd, sign

_SYNONYMS = {
    1: ("bullish", "buy", "long", "positive", "up", "bull", "overweight"),
    -1: ("bearish", "sell", "short", "negative", "down", "bear", "underweight"),
    0: ("neutral", "hold", "flat", "none", "mixed", "tie", "equal-weight"),
}
_TEXT_FIELDS = ("reasoning", "summary", "rationale", "argument", "explanation", "analysis", "thesis")


def from_schema(v: View, schema: Mapping[str, Any]) -> Any:
    """A valid instance of an inline schema: known field names get the data-driven values,
    everything else its default, first enum value or the type's zero."""
    rule = ANALYSTS.get(v.focus or "", composite) if v.kind == "analyst" else firm_lean
    reading = rule(v)
    score = clip(reading.score + v.bias)
    direction = sign(action_for(score))
    size = v.max_pos * reading.confidence * v.size_mult if direction else 0.0
    text = v.explain(f"{v.role} on {v.symbol}: net score {score:+.2f}", reading.drivers)
    values: dict[str, Any] = {
        "score": score, "confidence": reading.confidence, "size_pct": size,
        "signal": direction, "action": direction, "recommendation": direction,
        **{name: text for name in _TEXT_FIELDS}}
    return _Filler(schema, values, v.as_of).instance(schema, None, 0)


def _fit(value: Any, node: Mapping[str, Any]) -> Any:
    """A data value shaped to a schema node, or None when it does not fit."""
    types = node.get("type")
    types = set(types) if isinstance(types, list) else {types}
    enum = node.get("enum")
    if isinstance(value, int) and (enum or "string" in types):
        labels = _SYNONYMS[value]  # a direction (-1, 0, 1) as whichever label the schema uses
        return next((e for e in enum if isinstance(e, str) and e.lower() in labels), None) \
            if enum else labels[0]
    if isinstance(value, (int, float)) and types & {"number", "integer"}:
        value = clip(float(value), node.get("minimum", -math.inf), node.get("maximum", math.inf))
        value = round(value) if "number" not in types else rnd(value)
        if value <= node.get("exclusiveMinimum", -math.inf) or \
                value >= node.get("exclusiveMaximum", math.inf):
            return None
        return value
    if isinstance(value, str) and "string" in types:
        limit = node.get("maxLength")
        return value[:limit] if isinstance(limit, int) else value
    return None


class _Filler:
    def __init__(self, root: Mapping[str, Any], values: dict[str, Any], as_of: str):
        self.root, self.values = root, values
        self.formats = {"date": as_of[:10], "date-time": as_of}

    def resolve(self, node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return self.resolve(target)
        return node

    def instance(self, node: Any, name: str | None, depth: int) -> Any:
        node = self.resolve(node)
        if not isinstance(node, dict) or depth > 12:
            return None
        if "const" in node:
            return node["const"]
        if name in self.values and (fitted := _fit(self.values[name], node)) is not None:
            return fitted
        if "default" in node:
            return node["default"]
        if node.get("enum"):
            return node["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = [o for o in node.get(key) or () if self.resolve(o).get("type") != "null"]
            if options:
                return self.instance(options[0], name, depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or "properties" in node:
            return {p: self.instance(sub, p, depth + 1)
                    for p, sub in (node.get("properties") or {}).items()}
        if kind == "array":
            return [self.instance(node.get("items") or {}, None, depth + 1)
                    for _ in range(node.get("minItems", 0))]
        if kind in ("number", "integer"):
            zero = clip(0.0, node.get("minimum", -math.inf), node.get("maximum", math.inf))
            if zero <= node.get("exclusiveMinimum", -math.inf):
                zero = node["exclusiveMinimum"] + 1
            return int(zero) if kind == "integer" else zero
        if kind == "string":
            return self.formats.get(str(node.get("format")), "n/a".ljust(node.get("minLength", 0), "."))
        return False if kind == "boolean" else None
