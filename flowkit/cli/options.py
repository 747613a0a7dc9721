"""The option catalogue: every option a command shares is declared once here and attached to
commands by name, so the same flag means the same thing (and has the same help) everywhere."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    spec: dict[str, Any] = field(default_factory=dict)  # argparse's add_argument keywords


CATALOGUE: dict[str, Option] = {
    # what to run on
    "symbol": Option(("--symbol",), dict(action="append", dest="symbols", metavar="SYM",
                     help="symbol to decide on (repeatable); default: market.symbols")),
    "date": Option(("--date",), dict(help="decision date YYYY-MM-DD; default: the latest bar "
                                          "in the data")),
    "start": Option(("--start",), dict(help="backtest start date YYYY-MM-DD (with --end)")),
    "end": Option(("--end",), dict(help="backtest end date YYYY-MM-DD (with --start)")),
    "every": Option(("--every",), dict(choices=["1d", "1w", "1h"],
                                       help="decision frequency in a backtest")),
    "seeds": Option(("--seeds",), dict(type=int, default=1, help="repeat the backtest N times "
                    "with seeds 0..N-1 and report mean ± standard error")),
    "live": Option(("--live",), dict(action="store_true", help="trade live: one decision now "
                   "on current data, with a broker that trades (e.g. ccxt) and "
                   "FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND; refused with --start/--end, --date, "
                   "--seeds")),
    # which models answer
    "model": Option(("--model",), dict(help="litellm model id for every profile (e.g. "
                                            "gpt-4o-mini, offline)")),
    "api-base": Option(("--api-base",), dict(help="base URL of an OpenAI-compatible server "
                                                  "for every profile")),
    "cache": Option(("--cache",), dict(choices=["off", "read_write", "replay"],
                                       help="response cache mode")),
    "estimate": Option(("--estimate",), dict(action="store_true", help="call no model: print "
                       "the calls, prompt and completion tokens and dollars per decision and "
                       "for the whole window (litellm's prices; offline and local are $0)")),
    # the firm and the log
    "set": Option(("--set",), dict(action="append", default=[], metavar="dotted.path=value",
                  help="override a workflow value, e.g. --set risk.max_position_pct=10")),
    "db": Option(("--db",), dict(help="DuckDB event log (default: log.db of the workflow, "
                                      "FLOWKIT_DB, or ./flowkit.duckdb)")),
    "quiet": Option(("--quiet",), dict(action="store_true", help="no progress: print only the "
                                                                 "run id and the result")),
    "out": Option(("--out",), dict(help="HTML file to write, or a folder to write it in "
                                        "(default: under reports/; a sweep's in its folder)")),
    # reading one run
    "only-symbol": Option(("--symbol",), dict(help="only this symbol")),
    "only-date": Option(("--date",), dict(help="only this decision date YYYY-MM-DD")),
}

# Every command that calls models takes all of these.
MODEL_OPTIONS = ("model", "api-base", "cache")


def attach(parser: argparse.ArgumentParser, *names: str) -> None:
    for name in names:
        option = CATALOGUE[name]
        parser.add_argument(*option.flags, **option.spec)
