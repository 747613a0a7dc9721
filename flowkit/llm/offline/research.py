"""The research debate: bull and bear researchers, and the research manager who judges them.

Researchers argue from the analyst reports in `outputs` (their own market read when there are
none): conviction = 0.5 + 0.5 x consensus toward their side, eased when the opponent's last
conviction is high. The side is the one the role declares (bull_researcher, bear_researcher, or
an agent's `stance: bull|bear`). The rebuttal quotes, verbatim, one of the opponent's points (or
its argument) from `transcript` and answers with the strongest report on this side; no opponent
turn, no rebuttal. The research manager blends the analyst consensus with the debate edge
(round-weighted bull minus bear conviction)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowkit.llm.offline.analysts import consensus
from flowkit.llm.offline.trading import price_levels
from flowkit.llm.offline.view import (
    MARK, THRESHOLD, Reading, View, action_for, clip, fmt_price, num, quote, rnd,
)


def research_argument(v: View) -> dict[str, Any]:
    stance = "bear" if v.stance == "bear" else "bull"  # declared; bull unless it says bear
    side = 1 if stance == "bull" else -1
    views = v.analysts
    crowd = consensus(v)
    support = sorted((x for x in views if side * x[1].score > THRESHOLD),
                     key=lambda x: -side * x[1].score)
    against = [x for x in views if side * x[1].score < -THRESHOLD]
    points = [_point(agent, v.outputs.get(agent) or v.inputs.get(agent) or {}, reading)
              for agent, reading in support]
    if not points:
        points = [f"no analyst leans {stance}ish; {crowd.drivers[0]}"]
    conviction = 0.5 + 0.5 * side * crowd.score
    opponent = _last_turn(v.transcript, "bear" if stance == "bull" else "bull")
    if opponent is not None:  # concede a little to a strong opponent
        conviction -= 0.2 * ((num(opponent["output"], "conviction") or 0.5) - 0.5)
    conviction = clip(conviction + side * v.bias, 0.05, 0.95)
    headline = (f"{stance.title()} case for {v.symbol}: {len(support)} of {len(views)} analyst "
                f"reports lean {stance}ish, {len(against)} against")
    return {"stance": stance, "argument": v.explain(headline, crowd.drivers),
            "points": points, "rebuttal": _rebuttal(v, opponent, support),
            "conviction": rnd(conviction)}


def _point(agent: str, out: Mapping[str, Any], reading: Reading) -> str:
    """One supporting view: an analyst report, or a declared input with a direction."""
    detail = next((p for p in out.get("key_points") or () if isinstance(p, str)), None)
    call = out.get("signal") or out.get("recommendation") or out.get("action")
    text = f"{agent} reads {call} at {reading.score:+.2f} (confidence {reading.confidence:.2f})"
    return f"{text}: {detail}" if detail else text


def _last_turn(transcript: list[Mapping[str, Any]], stance: str) -> Mapping[str, Any] | None:
    for turn in reversed(transcript):
        out = turn.get("output")
        if isinstance(out, dict) and out.get("stance") == stance:
            return turn
    return None


def _rebuttal(v: View, opponent: Mapping[str, Any] | None,
              support: list[tuple[str, Reading]]) -> str | None:
    """Quote the opponent's latest turn verbatim and answer it; None before it has spoken."""
    if opponent is None:
        return None
    out = opponent["output"]
    points = [p for p in out.get("points") or () if isinstance(p, str) and p.strip()]
    if points:
        claim = points[((v.ctx.get("round") or 1) - 1) % len(points)]
    else:
        claim = str(out.get("argument") or "").removeprefix(MARK).split(". ")[0]
    claim = quote(claim)
    if not claim:
        return None
    if support:
        agent, best = support[0]
        answer = (f"{agent} reads {best.score:+.2f} at confidence {best.confidence:.2f}, which "
                  "that point does not answer")
    else:
        answer = "no analyst report backs it strongly enough to act on"
    return f'{opponent.get("agent")} argued "{claim}", but {answer}.'


def _debate_edge(transcript: list[Mapping[str, Any]]) -> tuple[float, float] | None:
    """Round-weighted mean conviction of bull and bear, if both spoke."""
    sums = {"bull": [0.0, 0.0], "bear": [0.0, 0.0]}
    for turn in transcript:
        out = turn.get("output")
        if not isinstance(out, dict):
            continue
        conviction, stance = num(out, "conviction"), out.get("stance")
        if conviction is not None and stance in sums:
            w = float(turn.get("round") or 1)
            sums[stance][0] += w * conviction
            sums[stance][1] += w
    if not (sums["bull"][1] and sums["bear"][1]):
        return None
    return sums["bull"][0] / sums["bull"][1], sums["bear"][0] / sums["bear"][1]


def research_verdict(v: View) -> dict[str, Any]:
    crowd = consensus(v)
    drivers = list(crowd.drivers)
    edge = _debate_edge(v.transcript)
    if edge is None:
        score, winner = crowd.score, "tie"
    else:
        bull, bear = edge
        score = 0.5 * crowd.score + 0.5 * (bull - bear)
        winner = "bull" if bull - bear > 0.05 else "bear" if bull - bear < -0.05 else "tie"
        drivers.insert(0, f"debate conviction bull {bull:.2f} vs bear {bear:.2f}")
    score = clip(score + v.bias)
    action = action_for(score)
    confidence = clip(0.5 * crowd.confidence + 0.5 * abs(score), 0.05, 0.95)
    return {"recommendation": action, "winner": winner, "confidence": rnd(confidence),
            "score": rnd(score),
            "rationale": v.explain(f"{action} {v.symbol} at net score {score:+.2f}", drivers),
            "plan": _plan_text(v, action)}


def _plan_text(v: View, action: str) -> str:
    entry, stop, take = price_levels(v, action)
    if entry is None:
        return (f"No new trade in {v.symbol}; revisit when the net score moves beyond "
                f"±{THRESHOLD:.2f}.")
    verb = "Buy" if action == "BUY" else "Sell short" if stop else "Reduce or exit"
    levels = "".join(f", {label} {x:g}" for label, x in (("stop", stop), ("target", take)) if x)
    sma50 = num(v.ind, "sma_50")
    exit_if = (f"a close {'below' if action == 'BUY' else 'above'} SMA50 ({fmt_price(sma50)})"
               if sma50 else "the signal reversing")
    return f"{verb} near {entry:g}{levels}; size with the confidence; reassess on {exit_if}."
