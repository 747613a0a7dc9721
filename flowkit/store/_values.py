"""Python values -> the column types of schema.sql, checked when a row is appended.

Every value is normalised on the caller's thread so a bad value fails at once, naming its
column, instead of poisoning a whole batch on the writer thread later. Each column ends up
holding one Python type (str, int, float, bool, naive UTC datetime), which the writer hands to
DuckDB as typed JSON (_rows.staged_rows). dict/list values are encoded to JSON here, which
also snapshots them against later mutation by the caller.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import operator
import re
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

Converter = Callable[[Any], Any]

def _json_default(value: Any) -> Any:
    """How objects that json cannot encode natively are written."""
    if isinstance(value, datetime):
        stamp = to_timestamp(value)
        return None if stamp is None else stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "model_dump"):  # pydantic
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> str:
    """DuckDB takes valid UTF-8 only: a lone surrogate (say from a truncated \\ud83d escape in a
    model's JSON) would fail a whole batch, so it becomes U+FFFD, the replacement character."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _strict_encoder() -> Callable[[Any], str]:
    """One reusable C encoder: json.dumps/JSONEncoder.encode build a new one on every call,
    which costs as much as encoding a small dict. (No circular-reference check: a cycle ends in
    RecursionError, which append reports like any bad value.)"""
    try:
        from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

        encode = c_make_encoder(None, _json_default, encode_basestring, None, ":", ",", False, False, False)
        return lambda value: "".join(encode(value, 0))
    except (ImportError, TypeError):  # no C accelerator, or another signature
        return json.JSONEncoder(default=_json_default, ensure_ascii=False, allow_nan=False,
                                separators=(",", ":")).encode


def _orjson_encoder() -> Callable[[Any], str]:
    """orjson is ~5x faster on the prompt-sized strings of model_calls; same output as the
    stdlib path: compact separators, NaN as null, non-string keys as strings, and datetimes,
    dataclasses and the rest through _json_default."""
    import orjson

    options = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
               | orjson.OPT_PASSTHROUGH_DATACLASS)
    dumps = orjson.dumps

    def encode(value: Any) -> str:
        return dumps(value, default=_json_default, option=options).decode()

    return encode


# Built once: json.dumps/loads with keyword arguments build a new encoder/decoder every call.
_FAST = _orjson_encoder()
_ENCODE = _strict_encoder()
_ENCODE_NAN = json.JSONEncoder(default=_json_default, separators=(",", ":")).encode
_DECODE_NAN_AS_NULL = json.JSONDecoder(parse_constant=lambda _: None).decode
_DECODE_STRICT = json.JSONDecoder(parse_constant=_not_json).decode
_JSON_START = re.compile(r'\s*[{\["\-0-9tfn]')  # cheap first test: most prose fails it


def to_json(value: Any) -> str:
    """Strict JSON text; NaN and infinities become null."""
    try:
        return _FAST(value)
    except (TypeError, ValueError):  # lone surrogates, huge ints: the stdlib path copes
        pass
    try:
        text = _ENCODE(value)
    except ValueError:  # a non-finite float somewhere: encode it, then map NaN/Infinity to null
        text = _ENCODE(_DECODE_NAN_AS_NULL(_ENCODE_NAN(value)))
    return _utf8(text)


def _text(value: Any) -> str:
    if type(value) is not str:
        if isinstance(value, enum.Enum):
            value = value.value
        if isinstance(value, (dict, list, tuple)):
            return to_json(value)
        value = str.__str__(value) if isinstance(value, str) else str(value)
    return _utf8(value)


def _json(value: Any) -> str:
    """JSON text is kept as it is; any other string is stored as a JSON string."""
    if isinstance(value, str):
        if _JSON_START.match(value):
            try:
                _DECODE_STRICT(value)
                return _utf8(value)
            except (ValueError, RecursionError):
                pass
        return to_json(str.__str__(value))
    return to_json(value)


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _integer(bound: int) -> Converter:
    def convert(value: Any) -> int:
        if type(value) is not int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                value = operator.index(value)  # ints, numpy ints; TypeError otherwise
        if not -bound <= value < bound:
            raise ValueError(f"{value} is out of range")
        return value
    return convert


def _bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    if (isinstance(value, int) and value in (0, 1)) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return bool(value)
    raise TypeError(f"expected a bool, got {type(value).__name__}")


_PARSED: dict[str, datetime | None] = {}  # ISO strings seen: a run logs each decision time
_PARSED_MAX = 4096                        # on many rows (steps, calls), so each is parsed once


def to_timestamp(value: Any) -> datetime | None:
    """A naive UTC datetime: aware values are converted, naive ones are taken as UTC."""
    if type(value) is datetime and value.tzinfo is None:  # the common case, first
        return value
    if type(value) is str:
        stamp = _PARSED.get(value)
        if stamp is None:
            stamp = _to_timestamp(value)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[value] = stamp
        return stamp
    return _to_timestamp(value)


def _to_timestamp(value: Any) -> datetime | None:
    if isinstance(value, str):  # ISO 8601; a trailing Z (UTC) also before Python 3.11
        value = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    elif type(value).__name__ == "datetime64":  # numpy, without importing it; NaT -> None
        value = value.astype("datetime64[us]").item()
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value is None or type(value).__name__ == "NaTType":  # pandas NaT, without importing it
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


CONVERTERS: dict[str, Converter] = {
    "VARCHAR": _text,
    "JSON": _json,
    "DOUBLE": _float,
    "BIGINT": _integer(2**63),
    "INTEGER": _integer(2**31),
    "BOOLEAN": _bool,
    "TIMESTAMP": to_timestamp,
}

# Values of these exact types are stored as they are (the common case, kept cheap); a str only
# when it is ASCII (else _utf8 has to look at it).
PASSTHROUGH: dict[str, type] = {"VARCHAR": str, "DOUBLE": float, "BOOLEAN": bool}
