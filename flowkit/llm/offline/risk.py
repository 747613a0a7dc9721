"""Risk roles: the risk debaters (by their declared stance) and the risk manager.

Risk debaters resize the proposal by stance and the volatility scale v (targets a 2% daily ATR,
within 0.5-1.5): aggressive x1.25 x max(v, 1), neutral x v, conservative x0.5 x min(v, 1), and
x risk.cvar.scale while risk-averse (except aggressive); each raises the concerns at or above
its severity (aggressive: blocking only, neutral: material, conservative: all). The risk manager caps the
proposal (volatility, CVaR trigger, correlation with holdings) and vetoes only blocking
problems. Beliefs, which give a direction, shrink size by |bias| when they oppose the trade."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.llm.offline.view import View, clip, conf, fmt_price, is_proposal, num, rnd, sign


def risk_views(v: View) -> dict[str, float]:
    """Latest recommended size per stance in the current transcript."""
    sizes: dict[str, float] = {}
    for turn in v.transcript:
        out = turn.get("output")
        if not isinstance(out, dict):
            continue
        size, stance = num(out, "recommended_size_pct"), out.get("stance")
        if size is not None and stance in ("aggressive", "conservative", "neutral"):
            sizes[stance] = size
    return sizes


def _concerns(v: View, proposal: Mapping[str, Any] | None) -> list[tuple[int, str]]:
    """(severity 1-3, concern) about a proposal: 3 blocks it, 2 is material, 1 is minor."""
    found: list[tuple[int, str]] = []
    action = str(proposal.get("action")) if proposal else "HOLD"
    size = num(proposal, "size_pct") or 0.0
    position = num(v.portfolio, "position_pct") or 0.0
    if v.risk_state.get("halted"):
        found.append((3, "trading is halted by the drawdown limit"))
    if action == "SELL" and not v.risk.get("allow_short") and position <= 0:
        found.append((3, "SELL with no position while shorting is off"))
    atr_pct = v.atr_pct
    if atr_pct is not None and atr_pct > 2.5:
        found.append((2 if atr_pct > 4 else 1, f"volatile: ATR {atr_pct:.1f}% of price"))
    drawdown = abs(num(v.risk_state, "drawdown_pct") or 0.0)
    if drawdown > 5:
        found.append((2 if drawdown > 10 else 1, f"firm drawdown {drawdown:.1f}%"))
    if v.averse:
        found.append((2, "CVaR trigger: the firm is risk-averse"))
    if action == "BUY":
        if position + size > 0.8 * v.max_pos:
            found.append((2, f"position would reach {position + size:.1f}% of a {v.max_pos:g}% limit"))
        rsi, sma200 = num(v.ind, "rsi_14"), num(v.ind, "sma_200")
        if rsi is not None and rsi > 70:
            found.append((1, f"buying into an overbought RSI {rsi:.0f}"))
        if sma200 and v.close is not None and v.close < sma200:
            found.append((1, f"buying below the 200-day average ({fmt_price(sma200)})"))
        for other, corr in (v.portfolio.get("correlations") or {}).items():
            if isinstance(corr, float) and corr > 0.8:
                found.append((1, f"moves with {other} already held (correlation {corr:.2f})"))
    ratio = v.news_ratio()
    if ratio is not None and ratio > 2:
        found.append((1, f"news flow {ratio:.1f}x normal: event risk"))
    if proposal and action != "HOLD" and conf(proposal) < 0.4:
        found.append((1, f"low-confidence proposal ({conf(proposal):.2f})"))
    return found


def _risk_factor(v: View, action: str) -> float:
    """Beliefs on a risk role: size_mult, and a bias against the trade shrinks it by |bias|."""
    against = v.bias * sign(action) < 0
    return v.size_mult * (1 - min(abs(v.bias), 1.0) if against else 1.0)


_STANCE_RULES = {
    # stance: (size multiplier on the proposal, lowest severity it raises, its case)
    "aggressive": (1.25, 3, "the edge is in the signal; volatility is the price of the return"),
    "neutral": (1.0, 2, "size to volatility, targeting a 2% daily ATR"),
    "conservative": (0.5, 1, "protect capital first: half size and every risk counted"),
}


def risk_argument(v: View) -> dict[str, Any]:
    stance = v.stance if v.stance in _STANCE_RULES else "neutral"
    mult, threshold, case = _STANCE_RULES[stance]
    proposal = v.latest(is_proposal)
    concerns = [text for severity, text in _concerns(v, proposal) if severity >= threshold]
    action = str(proposal.get("action")) if proposal else "HOLD"
    drivers = [case]
    if action == "HOLD" or v.risk_state.get("halted"):
        size = 0.0
        drivers.append("no trade to size")
    else:
        base = num(proposal, "size_pct") or 0.0
        vol = v.vol_scale
        size = base * mult * (max(vol, 1.0) if stance == "aggressive" else
                              vol if stance == "neutral" else min(vol, 1.0))
        if v.averse and stance != "aggressive":
            size *= v.cvar_scale
            drivers.append(f"risk-averse: x{v.cvar_scale:g}")
        size = clip(size * _risk_factor(v, action), 0.0, v.max_pos)
        drivers.insert(0, f"proposal {action} {base:g}%, volatility scale {vol:.2f}")
    others = {s: x for s, x in risk_views(v).items() if s != stance}
    if others:
        drivers.append("others on the desk: " + ", ".join(f"{s} {x:g}%" for s, x in others.items()))
    return {"stance": stance, "recommended_size_pct": rnd(size, 2), "concerns": concerns,
            "argument": v.explain(f"{stance.title()} view: {rnd(size, 2):g}% of equity", drivers)}


def risk_assessment(v: View) -> dict[str, Any]:
    proposal = v.latest(is_proposal)
    if proposal is None:
        return {"approve": False, "max_size_pct": 0.0, "concerns": ["no trade proposal to review"],
                "reasoning": v.explain("Nothing to approve", ["no trade proposal in the outputs"])}
    action = str(proposal.get("action"))
    concerns = _concerns(v, proposal)
    blocking = [text for severity, text in concerns if severity >= 3 and action != "HOLD"]
    cap = v.max_pos * min(v.vol_scale, 1.0) * _risk_factor(v, action)
    drivers = [f"volatility scale {v.vol_scale:.2f}"]
    cap = v.risk_scaled(cap, action, drivers)
    cap = rnd(clip(cap, 0.0, v.max_pos), 2)
    size = num(proposal, "size_pct") or 0.0
    if blocking:
        drivers.insert(0, f"blocked: {blocking[0]}")
    elif action != "HOLD":
        drivers.insert(0, f"{action} {size:g}% {'within' if size <= cap else 'resized to'} a {cap:g}% cap")
    return {"approve": not blocking, "max_size_pct": 0.0 if blocking else cap,
            "concerns": [text for severity, text in concerns if severity >= 2],
            "reasoning": v.explain(f"Risk review of {action} {size:g}%", drivers)}
