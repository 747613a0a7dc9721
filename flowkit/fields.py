"""The building blocks of the firm file's pydantic models: strict field types and the id and
name patterns with their plain-words meaning. A leaf module, so that `flowkit.spec.models` and
the pattern plugins (`flowkit.patterns`) can both build on it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
JOIN_PATTERN = r"^(all|any|quorum:[1-9][0-9]*)$"
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9.\-/]*$"
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
EXCHANGE_PATTERN = r"^[a-z0-9_]+$"
# http(s), a host name or [IPv6] literal, an optional port, path and query (a proxy's token)
API_BASE_PATTERN = (r"^(https?://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^\s?#]*)?"
                    r"(\?[^\s#]*)?|.*\$\{env:[^}]*\}.*)$")  # ${env:...}: checked once resolved

# What each pattern means, for error messages (a regex is not an explanation).
PATTERN_NAMES = {
    ID_PATTERN: "an id: letters, digits and _, not starting with a digit",
    JOIN_PATTERN: "all, any or quorum:N with N >= 1",
    SYMBOL_PATTERN: "an upper-case symbol such as AAPL, BRK.B or BTC-USDT",
    NAME_PATTERN: "a name of letters, digits, _ . and - (no spaces)",
    ENV_NAME_PATTERN: "an environment variable name such as OPENAI_API_KEY",
    EXCHANGE_PATTERN: "a lower-case ccxt exchange id such as binance",
    API_BASE_PATTERN: "an http(s) URL such as http://127.0.0.1:8080/v1 (host, optional port, path and query)",
}


# pydantic's lax mode reads "5" as 5, 1 as True and 1704153600 as a date; JSON Schema does
# not. These validators keep the models exactly as strict as the generated schema, so a file
# the schema accepts is never rejected later (and the reverse), without changing the schema.
def _number(value: Any) -> Any:
    if isinstance(value, (bool, str)):
        raise ValueError("expected a number")
    return value


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _date(value: Any) -> Any:
    if value is None or isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value  # None is then accepted or rejected by the annotated type
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    raise ValueError("expected a date YYYY-MM-DD")


Int = Annotated[int, BeforeValidator(_number)]
Float = Annotated[float, BeforeValidator(_number)]
Bool = StrictBool
Date = Annotated[dt.date, BeforeValidator(_date)]
Version = Annotated[Literal[1], BeforeValidator(_number)]
# Optional forms wrap the union: constraints on `Annotated[...] | None` would be lost.
OptInt = Annotated[int | None, BeforeValidator(_number)]
OptFloat = Annotated[float | None, BeforeValidator(_number)]
OptDate = Annotated[dt.date | None, BeforeValidator(_date)]
Id = Annotated[str, Field(pattern=ID_PATTERN)]  # agent ids, profile and role names
Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
