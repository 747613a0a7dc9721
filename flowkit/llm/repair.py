"""The repair ladder: what is done to a model's answer that fails its schema before anyone
re-asks. Each rung is cheap, deterministic and recorded:

1. extract: the JSON object inside prose or a code fence;
2. coerce: "0.8" or "80%" to a number, "true" to a boolean, a number to a string, an enum
   value in the wrong case to the schema's spelling;
3. clamp: a number outside the schema's minimum/maximum to the nearest bound;
4. defaults: a missing required property the schema gives a default.

`repair` returns the repaired value and one line per repair (`clamped confidence 1.75 -> 1`),
or None when there is no JSON object to work on. Whether the result validates is the caller's
check: a repair never invents a required value the schema does not give."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
MAX_SCAN_CHARS = 200_000  # longer answers are not searched for an object (a 2 MB garbage reply)


def repair(text: str, schema: dict[str, Any]) -> tuple[Any, list[str]] | None:
    repairs: list[str] = []
    value = _load(text, repairs)
    if not isinstance(value, dict):
        return None
    return _fix(value, schema, "", repairs), repairs


def _load(text: str, repairs: list[str]) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        pass
    if not isinstance(text, str) or len(text) > MAX_SCAN_CHARS:
        return None
    for match in _FENCE.finditer(text):
        try:
            value = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        repairs.append("extracted JSON from a code fence")
        return value
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            repairs.append("extracted JSON from prose")
            return value
    return None


def _fix(value: Any, schema: dict[str, Any], path: str, repairs: list[str]) -> Any:
    kinds = _kinds(schema)
    if isinstance(value, dict) and "object" in kinds:
        props = schema.get("properties", {})
        out = {k: _fix(v, props[k], _join(path, k), repairs) if k in props else v
               for k, v in value.items()}
        for key, sub in props.items():  # only required ones: an optional one may stay absent
            if key not in out and "default" in sub and key in schema.get("required", ()):
                out[key] = sub["default"]
                repairs.append(f"filled {_join(path, key)} with its default {sub['default']!r}")
        return out
    if isinstance(value, list) and "array" in kinds and isinstance(schema.get("items"), dict):
        return [_fix(v, schema["items"], f"{path}[{i}]", repairs) for i, v in enumerate(value)]
    enum = schema.get("enum")
    if enum and value not in enum and isinstance(value, str):
        match = next((e for e in enum if isinstance(e, str) and e.lower() == value.strip().lower()),
                     None)
        if match is not None:
            repairs.append(f"{path}: {value!r} read as {match!r}")
            return match
    if isinstance(value, str) and kinds & {"number", "integer"}:
        number = _number(value)
        if number is not None:
            repairs.append(f"{path}: string {value!r} read as {number:g}")
            value = int(number) if "integer" in kinds and number == int(number) else number
    elif isinstance(value, str) and "boolean" in kinds and value.strip().lower() in ("true", "false"):
        repairs.append(f"{path}: string {value!r} read as a boolean")
        return value.strip().lower() == "true"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and kinds == {"string"}:
        repairs.append(f"{path}: number {value!r} read as a string")
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _clamp(value, schema, path, repairs)
    return value


def _clamp(value: float, schema: dict[str, Any], path: str, repairs: list[str]) -> float:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    bound = lo if lo is not None and value < lo else hi if hi is not None and value > hi else None
    if bound is None:
        return value
    repairs.append(f"clamped {path} {value:g} -> {bound:g}")
    return bound


def _kinds(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            kinds |= _kinds(option)
    if not kinds and "properties" in schema:
        kinds.add("object")
    return kinds


def _number(text: str) -> float | None:
    text = text.strip().replace(",", "")
    percent = text.endswith("%")
    try:
        number = float(text.rstrip("%").strip())
    except ValueError:
        return None
    return number / 100 if percent else number


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
