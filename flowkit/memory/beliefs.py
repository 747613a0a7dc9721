"""Distilling investment beliefs from training episodes (FinCon's conceptual verbal
reinforcement, made concrete enough for a rules-based model to act on).

After each episode every matured decision is known with the market state it saw. For each
candidate condition (RSI overbought, MACD negative, an analyst's bearish call, ...) we measure
the price drift over the horizon *when the condition held*: a condition under which prices
kept falling becomes a belief that leans sell (`bias` < 0), one under which they rose leans
buy. Beliefs from earlier episodes are kept when the next episode did better and weakened when
it did worse (the comparison of better and worse episodes); those that fall to zero weight
are dropped. Each belief goes only to the agents it concerns, by their role's declared kind and
focus (flowkit.roles.registry): indicator and price beliefs to analysts focused on technicals,
fundamental ones to analysts focused on fundamentals, both to analysts with no declared focus
(user-defined analysts, which read all the data), a belief about an analyst's call to that
analyst, and all of them to the agent that makes the decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowkit.memory.conditions import compile_condition
from flowkit.roles.registry import BUILTIN_ROLES

MIN_SUPPORT = 6          # decisions under a condition before it says anything
MIN_DRIFT = 0.004        # 0.4% mean drift over the horizon before it is worth a belief
MAX_BIAS = 0.35


@dataclass(frozen=True)
class Candidate:
    key: str
    condition: dict[str, Any]
    phrase: str
    focus: str | None = None   # a market belief: the analyst focus it concerns
    agent: str | None = None   # a belief about one analyst's call: that analyst


def candidates(analysts: dict[str, str]) -> list[Candidate]:
    """`analysts` maps agent id -> role for the firm's agents of kind analyst."""
    ind = lambda n, op, v: {"indicator": n, "op": op, "value": v}  # noqa: E731
    out = [
        Candidate("rsi_high", ind("rsi_14", ">", 70), "RSI(14) is above 70", "technical"),
        Candidate("rsi_low", ind("rsi_14", "<", 30), "RSI(14) is below 30", "technical"),
        Candidate("macd_pos", ind("macd_hist", ">", 0), "the MACD histogram is positive", "technical"),
        Candidate("macd_neg", ind("macd_hist", "<", 0), "the MACD histogram is negative", "technical"),
        Candidate("bb_high", ind("bb_pct_b", ">", 1), "price closes above the upper Bollinger band", "technical"),
        Candidate("bb_low", ind("bb_pct_b", "<", 0), "price closes below the lower Bollinger band", "technical"),
        Candidate("vol_high", ind("volatility_20d", ">", 0.35), "20-day volatility is above 35%", "technical"),
        Candidate("volume_spike", ind("volume_ratio_20d", ">", 1.5), "volume runs 1.5x its 20-day average", "technical"),
        Candidate("near_high", ind("range_52w_pct", ">", 90), "price sits in the top 10% of its 52-week range", "technical"),
        Candidate("near_low", ind("range_52w_pct", "<", 15), "price sits in the bottom 15% of its 52-week range", "technical"),
        Candidate("run_up", {"price": "change_20d_pct", "op": ">", "value": 8}, "price rose over 8% in 20 days", "technical"),
        Candidate("sell_off", {"price": "change_20d_pct", "op": "<", "value": -8}, "price fell over 8% in 20 days", "technical"),
        Candidate("eps_beat", {"fundamental": "surprise_pct", "op": ">", "value": 5}, "the last EPS beat estimates by over 5%", "fundamentals"),
        Candidate("eps_miss", {"fundamental": "surprise_pct", "op": "<", "value": 0}, "the last EPS missed estimates", "fundamentals"),
    ]
    for agent in analysts:
        for call in ("bullish", "bearish"):
            out.append(Candidate(f"{agent}_{call}", {"signal": agent, "equals": call},
                                 f"{agent} calls it {call}", agent=agent))
    return out


def concerned_agents(c: Candidate, analysts: dict[str, str], decider: str) -> list[str]:
    if c.agent is not None:
        mine = [c.agent]
    else:
        mine = [a for a, role in analysts.items() if _focus(role) in (c.focus, None)]
    return sorted(set(mine + [decider]))


def _focus(role: str) -> str | None:
    info = BUILTIN_ROLES.get(role)
    return info.focus if info else None


def distil(trajectory: list[dict[str, Any]], analysts: dict[str, str], decider: str,
           horizon: int, episode: int) -> list[dict[str, Any]]:
    """New beliefs from one episode's matured decisions."""
    found = []
    for c in candidates(analysts):
        holds = compile_condition(c.condition)
        rets = [p["ret"] for p in trajectory if holds(p["features"])]
        if len(rets) < MIN_SUPPORT:
            continue
        drift = sum(rets) / len(rets)
        if abs(drift) < MIN_DRIFT:
            continue
        traded = [p["signed"] for p in trajectory if p["action"] != "HOLD" and holds(p["features"])]
        record = (f"; our trades then averaged {100 * sum(traded) / len(traded):+.1f}%"
                  if traded else "")
        bias = max(-MAX_BIAS, min(MAX_BIAS, drift * 25))
        lean = "lean toward buying" if bias > 0 else "lean against buying"
        text = (f"When {c.phrase}, the price moved {100 * drift:+.1f}% on average over the next "
                f"{horizon} bars (n={len(rets)}{record}): {lean}.")
        found.append({"key": c.key, "text": text, "condition": c.condition,
                      "effect": {"bias": round(bias, 3)},
                      "agents": concerned_agents(c, analysts, decider),
                      "evidence": {"episode": episode, "support": len(rets),
                                   "mean_drift": drift, "traded": len(traded)},
                      "weight": 1})
    return found


def reinforce(current: list[dict[str, Any]], new: list[dict[str, Any]], improved: bool | None,
              ) -> list[dict[str, Any]]:
    """Keep beliefs the last episode vindicated, weaken the rest, add new ones."""
    by_key = {}
    for b in current:
        weight = b["weight"] + (1 if improved else -1 if improved is False else 0)
        if weight > 0:
            by_key[b["key"]] = {**b, "weight": weight}
    for b in new:
        if b["key"] in by_key:  # fresher evidence, the earned weight stays
            by_key[b["key"]] = {**b, "weight": by_key[b["key"]]["weight"]}
        else:
            by_key[b["key"]] = b
    return sorted(by_key.values(), key=lambda b: (-b["weight"], -abs(b["effect"]["bias"]), b["key"]))
