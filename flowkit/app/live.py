"""Whether a run may send live orders: decided here, once, for every use case.

Live trading is one explicit forward mode: `flowkit run FILE --live`, with a broker that trades
(not paper), FLOWKIT_LIVE_CONFIRM=I-UNDERSTAND in the environment, one seed, no --date and no
window, deciding at the current time on current data. Nothing else sends a live order, whatever
the flags and the environment:

- a use case other than `run` asked for live (compare, train, sweep), and a `run --live` that
  is not the forward mode, is refused with `LiveRefused` before anything is opened, so no
  request leaves the process;
- replay and resume of a run that traded live repeat its decisions against the paper broker,
  and say so (`Execution.note`);
- `run_session` refuses a live invocation that did not come through here (`guard`), and one
  whose decision time is not current.

Every use case calls `execution` before it builds a Session (building one loads market data,
which may be a network fetch)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np

from flowkit.broker.ccxt_broker import LIVE_CONFIRM_ENV, LIVE_CONFIRM_VALUE
from flowkit.errors import LiveRefused

Use = Literal["run", "replay", "resume", "compare", "train", "sweep"]
LIVE_MODE = "live"  # runs.mode of a live run
# How old the decision bar of a live run may be: a weekend or a holiday plus two bars. Older
# data means the run would decide on the past and trade on it now.
_SLACK = timedelta(days=4)
_BAR = {"1d": timedelta(days=1), "1h": timedelta(hours=1)}
_FORWARD = "Live trading is only `flowkit run FILE --live`: one decision now, on current data"


@dataclass(frozen=True)
class Execution:
    """What a use case runs: the workflow (its broker swapped to paper when a live run is
    repeated), the invocation (`live` True only in the forward mode), the run's mode, and a
    note to show the user when the run trades otherwise than the run it repeats."""

    loaded: Any            # flowkit.spec.loader.LoadedWorkflow
    inv: Any               # flowkit.app.running.Invocation
    mode: str
    note: str | None = None


def execution(use: Use, loaded: Any, inv: Any, *, mode: str | None = None,
              run_id: str | None = None, env: Mapping[str, str] | None = None) -> Execution:
    """The one rule. `mode` is the runs.mode the use case would record (default: decide or
    backtest); `run_id` names the run a replay or resume repeats."""
    mode = mode or ("backtest" if inv.start else "decide")
    if not inv.live and mode != LIVE_MODE:
        return Execution(loaded, inv, mode)
    if use in ("replay", "resume"):
        broker = loaded.spec.portfolio.broker
        portfolio = loaded.spec.portfolio.model_copy(update={"broker": "paper"})
        paper = replace(loaded, spec=loaded.spec.model_copy(update={"portfolio": portfolio}))
        again = replace(inv, live=False)
        return Execution(paper, again, "replay" if use == "replay" else mode,
                         f"run {run_id} traded live on the {broker} broker; this {use} runs its "
                         f"decisions against the paper broker: no order is sent")
    reasons = refusals(use, loaded.spec, inv, os.environ if env is None else env)
    if reasons:
        raise LiveRefused(f"--live refused: {'; '.join(reasons)}. {_FORWARD}")
    return Execution(loaded, inv, LIVE_MODE)


def refusals(use: Use, spec: Any, inv: Any, env: Mapping[str, str]) -> list[str]:
    """Why `inv` may not trade live (empty: it may)."""
    if use != "run":
        return [f"`{use}` runs on past data and never trades live"]
    out = []
    if inv.start:
        out.append(f"--start/--end is a historical window ({inv.start} to {inv.end}): each past "
                   f"decision would be sent now, sized at old prices")
    if inv.date:
        out.append(f"--date {inv.date} decides on a past day")
    if inv.seeds > 1:
        out.append(f"--seeds {inv.seeds} would send every order {inv.seeds} times")
    if spec.portfolio.broker == "paper":
        out.append("the paper broker only simulates fills: set portfolio.broker (e.g. ccxt with "
                   "portfolio.exchange) to trade live")
    if env.get(LIVE_CONFIRM_ENV) != LIVE_CONFIRM_VALUE:
        out.append(f"{LIVE_CONFIRM_ENV}={LIVE_CONFIRM_VALUE} is not set in the environment")
    return out


def guard(session: Any, inv: Any, times: list[np.datetime64],
          now: datetime | None = None) -> bool:
    """Whether this run sends live orders, checked again where the broker is built: a live
    invocation must have come through `execution` (its session runs in the live mode) and
    decide once, on a bar that is current."""
    if not inv.live:
        return False
    if session.options.mode != LIVE_MODE or len(times) != 1:
        raise LiveRefused(f"--live refused: this {session.options.mode} run did not come "
                          f"through the live trading rule. {_FORWARD}")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    bar = np.datetime64(times[0], "s").astype(datetime)
    if now - bar > _SLACK + 2 * _BAR[session.spec.market.timeframe]:
        raise LiveRefused(f"--live refused: the latest data is from {bar:%Y-%m-%d %H:%M} UTC, "
                          f"not current (now {now:%Y-%m-%d %H:%M} UTC): a live order must not "
                          f"act on old prices. Refresh the market data first")
    return True
