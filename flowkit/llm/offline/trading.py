"""Orders: the trader, the portfolio manager (a decider), and the sizing every order goes
through.

The trader follows the research verdict (its declared input, else the latest verdict, else the
analyst consensus): confidence = mean(source confidence, |score|), size = max_position_pct x
confidence x belief size_mult, entry = close, stop = 2 ATR and target = 3 ATR (bounded by
risk.stop_loss_pct / take_profit_pct). The portfolio manager follows the trader's proposal, sizes
from the risk debate, honours a risk review's veto or cap and scales by risk.cvar.scale (default
0.5) while risk_state.risk_averse. Sizes fit the position limit, the cash floor and the shorting
rule; what does not fit is a HOLD that says why."""

from __future__ import annotations

import math
from typing import Any

from flowkit.llm.offline.analysts import consensus
from flowkit.llm.offline.risk import risk_views
from flowkit.llm.offline.view import (
    Reading, View, action_for, clip, conf, directional, is_assessment, is_proposal, is_verdict,
    num, price_level, rnd, sign,
)


def price_levels(v: View, action: str) -> tuple[float | None, float | None, float | None]:
    """Entry at the close; stop 2 ATR and target 3 ATR away, no wider than the risk defaults.
    A SELL that only trims a long (shorting off) carries no stop or target."""
    close = v.close
    if close is None or action == "HOLD":
        return None, None, None
    if action == "SELL" and not v.risk.get("allow_short"):
        return price_level(close), None, None
    side = 1 if action == "BUY" else -1
    stop_pct, take_pct = num(v.risk, "stop_loss_pct"), num(v.risk, "take_profit_pct")
    stop_d = 2 * v.atr if v.atr else None
    take_d = 3 * v.atr if v.atr else None
    if stop_pct:
        stop_d = min(stop_d or math.inf, close * stop_pct / 100)
    if take_pct:
        take_d = min(take_d or math.inf, close * take_pct / 100)
    stop = close - side * stop_d if stop_d else None
    take = close + side * take_d if take_d else None
    return (price_level(close), price_level(stop) if stop and stop > 0 else None,
            price_level(take) if take and take > 0 else None)


def fit_size(v: View, action: str, desired: float) -> tuple[str, float, str | None]:
    """Fit a desired size (% of equity) to the position limit, cash floor and shorting rule."""
    if action == "HOLD":
        return "HOLD", 0.0, None
    position = num(v.portfolio, "position_pct") or 0.0
    halted = bool(v.risk_state.get("halted"))
    if action == "BUY":
        if halted:
            return "HOLD", 0.0, "trading halted by the drawdown limit"
        room = v.max_pos - position
        cash, equity = num(v.portfolio, "cash"), num(v.portfolio, "equity")
        if cash is not None and equity:
            room = min(room, cash / equity * 100 - (num(v.risk, "min_cash_pct") or 0.0))
        why = f"no room under the {v.max_pos:g}% position limit and cash floor"
    else:
        short = bool(v.risk.get("allow_short")) and not halted
        room = position + v.max_pos if short else max(position, 0.0)
        why = "no position to sell and shorting is off" if not short else "short already at the limit"
    size = min(desired, room)
    if size < 0.5:
        return "HOLD", 0.0, why
    return action, rnd(size, 2), None


def lean(v: View, source: Reading) -> tuple[float, str, float]:
    """Net score after beliefs, the action it calls for, and the decision's confidence."""
    score = clip(source.score + v.bias)
    return score, action_for(score), clip(0.5 * source.confidence + 0.5 * abs(score), 0.05, 0.95)


def emit(v: View, who: str, score: float, wanted: str, desired: float, confidence: float,
          drivers: list[str], levels: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
    """A trade_proposal: the wanted action fitted to the limits, with entry, stop and target."""
    action, size, why = fit_size(v, wanted, desired)
    if why:
        drivers.append(f"{wanted} not possible: {why}")
    entry, stop, take = levels if levels and action == wanted else price_levels(v, action)
    return {"action": action, "size_pct": size, "entry": entry, "stop_loss": stop,
            "take_profit": take, "confidence": rnd(confidence),
            "reasoning": v.explain(f"{who}: {action} {size:g}% of equity (net score {score:+.2f})",
                                   drivers)}


def sized_order(v: View, source: Reading, who: str) -> dict[str, Any]:
    """Size from confidence: max_position_pct x confidence x belief size_mult; deciders and
    managers also shrink while the firm is risk-averse."""
    score, wanted, confidence = lean(v, source)
    drivers = list(source.drivers)
    desired = v.max_pos * confidence * v.size_mult
    if v.averse and v.kind in ("decider", "manager"):
        desired *= v.cvar_scale
        drivers.append(f"risk-averse (CVaR trigger): size x{v.cvar_scale:g}")
    return emit(v, who, score, wanted, desired, confidence, drivers)


def trade_proposal(v: View) -> dict[str, Any]:
    if v.kind == "decider":
        return _final_decision(v)
    verdict = v.latest(is_verdict)
    if verdict is None:
        return sized_order(v, consensus(v), "Trader")
    score = num(verdict, "score") or 0.0
    return sized_order(v, Reading(score, conf(verdict), [
        f"research verdict {verdict.get('recommendation')} at {score:+.2f} "
        f"(confidence {conf(verdict):.2f})"]), "Trader")


def _final_decision(v: View) -> dict[str, Any]:
    """Portfolio manager: the trader's direction, sized by the risk debate, capped or vetoed by
    the risk review, shrunk while risk-averse."""
    proposal = v.latest(is_proposal)
    if proposal is None:
        return sized_order(v, firm_lean(v), "Portfolio manager")
    p_action, p_size = str(proposal.get("action")), num(proposal, "size_pct") or 0.0
    score, wanted, confidence = lean(v, Reading(sign(p_action) * conf(proposal), conf(proposal)))
    drivers = [f"trader proposes {p_action} {p_size:g}% (confidence {conf(proposal):.2f})"]
    desired = p_size if wanted == p_action else v.max_pos * confidence
    sizes = risk_views(v)
    if sizes and wanted == p_action:
        weights = {"neutral": 0.5, "aggressive": 0.25, "conservative": 0.25}
        desired = sum(weights[s] * x for s, x in sizes.items()) / sum(weights[s] for s in sizes)
        drivers.append("risk debate " + ", ".join(f"{s} {x:g}%" for s, x in sizes.items()))
    review = v.latest(is_assessment)
    if review is not None and wanted != "HOLD":
        if not review.get("approve"):
            concern = next(iter(review.get("concerns") or ()), "no reason given")
            drivers.append(f"risk review withheld approval: {concern}")
            wanted = "HOLD"
        elif (cap := num(review, "max_size_pct")) is not None and cap < desired:
            desired = cap
            drivers.append(f"capped at the risk review's {cap:g}%")
    desired = v.risk_scaled(desired, wanted, drivers)
    levels = (proposal.get("entry"), proposal.get("stop_loss"), proposal.get("take_profit"))
    return emit(v, "Portfolio manager", score, wanted, desired * v.size_mult, confidence, drivers,
                 levels if wanted == p_action and levels[1] is not None else None)


def firm_lean(v: View) -> Reading:
    """The firm's current lean: the latest trade proposal, else verdict, else the analysts."""
    for test in (is_proposal, is_verdict):
        out = v.latest(test)
        if out is not None:
            return directional(out) or consensus(v)
    return consensus(v)
