"""The four analysts, chosen by the role's declared focus; an analyst with none (a user-defined
analyst) blends all four.

  technical     close vs SMA50 (±0.25) and SMA200 (±0.2); MACD histogram (±0.2, scaled by its
                size relative to 0.4% of price); RSI > 70 overbought (-0.25), < 30 oversold
                (+0.25), else (RSI-50)/100; Bollinger %b above 1 (-0.15) or below 0 (+0.15);
                20-day change (±0.15 tanh). Confidence grows with |score| and input coverage.
  fundamentals  latest EPS surprise % (±0.4), YoY EPS growth (±0.35), beat rate over the last
                four quarters (±0.15), trailing EPS <= 0 (-0.1); confidence x0.6 when the last
                report is over 120 days old. No fundamentals: neutral, confidence 0.1.
  news          0.75 x lexicon tone of the last 7 days' headlines and text, amplified up to x2
                when news_count_7d runs above its 30-day norm (news_count_30d x 7/30).
  sentiment     60% lexicon tone of all headlines, 40% 5-day return (tanh of change/5%); volume
                above its 20-day average raises confidence.
In a broadcast an analyst moves 25% of the way toward its peers' latest posts, and likewise
toward its declared inputs that have a direction."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flowkit.llm.offline.lexicon import news_tone
from flowkit.llm.offline.view import (
    THRESHOLD, Evidence, Reading, View, blend, clip, conf, fmt_price, is_analyst, num, quote,
    rnd, to_date,
)


def _technical(v: View) -> Reading:
    e, close, ind = Evidence(), v.close, v.ind
    for key, label, weight in (("sma_50", "SMA50", 0.25), ("sma_200", "SMA200", 0.2)):
        level = num(ind, key)
        if close is not None and level:
            above = close >= level
            e.add(weight if above else -weight,
                  f"price {'above' if above else 'below'} {label} ({fmt_price(close)} vs {fmt_price(level)})")
    hist = num(ind, "macd_hist")
    if hist is not None:
        scale = min(1.0, abs(hist) / (0.004 * close)) if close else 1.0
        e.add(math.copysign(0.2 * scale, hist),
              f"MACD hist {'+' if hist >= 0 else '-'}{fmt_price(abs(hist))}")
    rsi = num(ind, "rsi_14")
    if rsi is not None:
        if rsi > 70:
            e.add(-0.25, f"RSI {rsi:.0f} overbought")
        elif rsi < 30:
            e.add(0.25, f"RSI {rsi:.0f} oversold")
        else:
            e.add((rsi - 50) / 100, f"RSI {rsi:.0f}")
    pct_b = num(ind, "bb_pct_b")
    if pct_b is not None:
        where = "above the upper" if pct_b > 1 else "below the lower" if pct_b < 0 else "inside the"
        e.add(-0.15 if pct_b > 1 else 0.15 if pct_b < 0 else 0.0,
              f"{where} Bollinger band (%b {pct_b:.2f})")
    change = num(v.px, "change_20d_pct")
    if change is not None:
        e.add(0.15 * math.tanh(change / 10), f"20-day change {change:+.1f}%")
    return e.reading(6)


def _fundamentals(v: View) -> Reading:
    f = v.market.get("fundamentals")
    if not f:
        return Reading(0.0, 0.1, ["no fundamentals available"])
    e, latest = Evidence(), f.get("latest") or {}
    surprise = num(latest, "surprise_pct")
    if surprise is not None:
        eps, est = num(latest, "reported_eps"), num(latest, "estimated_eps")
        detail = f" ({eps:.2f} vs est. {est:.2f})" if eps is not None and est is not None else ""
        e.add(clip(surprise / 20, -0.4, 0.4), f"EPS surprise {surprise:+.1f}%{detail}")
    growth = num(f, "eps_growth_yoy_pct")
    if growth is not None:
        e.add(clip(growth / 50, -0.35, 0.35), f"EPS growth {growth:+.1f}% YoY")
    quarters = sorted((q for q in f.get("history") or () if num(q, "surprise") is not None),
                      key=lambda q: str(q.get("fiscal_date_ending")))[-4:]
    if quarters:
        beats = sum(1 for q in quarters if q["surprise"] > 0)
        e.add(0.15 * (2 * beats / len(quarters) - 1),
              f"beat estimates in {beats} of the last {len(quarters)} quarters")
    ttm = num(f, "eps_ttm")
    if ttm is not None:
        e.add(-0.1 if ttm <= 0 else 0.0, f"trailing EPS {ttm:.2f}")
    reading = e.reading(4, base=0.4, gain=0.5)
    reported, today = to_date(latest.get("reported_date")), to_date(v.as_of)
    if reported and today and (today - reported).days > 120:
        reading.confidence *= 0.6
        reading.drivers.append(f"last report {(today - reported).days} days old")
    return reading


def _news(v: View) -> Reading:
    today = to_date(v.as_of)
    cutoff = (today - timedelta(days=7)).isoformat() if today else ""
    recent = [n for n in v.market.get("news") or () if n and str(n.get("time") or "") >= cutoff]
    ratio = v.news_ratio()
    if not recent:
        return Reading(0.0, 0.1, ["no headlines in the last 7 days"])
    pos, neg, top = news_tone(recent, with_text=True)
    tone = (pos - neg) / (pos + neg + 2)
    drivers = [f"tone {tone:+.2f} over {len(recent)} headlines in 7 days ({pos} positive, "
               f"{neg} negative words)"]
    if top:
        drivers.append(f'loudest headline: "{quote(str(top), 100)}"')
    amplify = 1.0
    if ratio is not None:
        amplify = 1 + 0.5 * clip(ratio - 1, 0.0, 2.0)
        drivers.append(f"news flow {ratio:.1f}x its 30-day norm")
    confidence = 0.2 + 0.04 * min(pos + neg, 10) + (0.1 if ratio and ratio > 1.5 else 0.0)
    return Reading(clip(0.75 * tone * amplify), clip(confidence, 0.05, 0.9), drivers)


def _sentiment(v: View) -> Reading:
    news = [n for n in v.market.get("news") or () if n]
    pos, neg, top = news_tone(news, with_text=False)
    tone = (pos - neg) / (pos + neg + 2)
    drivers = [f"headline tone {tone:+.2f} over {len(news)} headlines" if news else "no headlines"]
    change = num(v.px, "change_5d_pct")
    confidence = 0.15 + 0.04 * min(pos + neg, 10)
    if change is None:
        score = tone
    else:
        score = 0.6 * tone + 0.4 * math.tanh(change / 5)
        confidence += 0.1
        drivers.append(f"5-day return {change:+.1f}%")
    volume = num(v.ind, "volume_ratio_20d")
    if volume is not None:
        drivers.append(f"volume {volume:.1f}x its 20-day average")
        confidence += 0.1 if volume > 1.3 else 0.0
    if top:
        drivers.append(f'most charged headline: "{quote(str(top), 100)}"')
    return Reading(clip(score), clip(confidence, 0.05, 0.9), drivers)


# An analyst's rule by its declared focus (flowkit.roles.registry.RoleInfo.focus).
ANALYSTS: dict[str, Callable[[View], Reading]] = {
    "technical": _technical, "fundamentals": _fundamentals, "news": _news, "sentiment": _sentiment,
}


def composite(v: View) -> Reading:
    """All four reads blended: an analyst with no declared focus reads everything."""
    return blend([(focus, rule(v)) for focus, rule in ANALYSTS.items()], "own read of the data")


def consensus(v: View) -> Reading:
    """The analysts' confidence-weighted view, or this model's own read of the data."""
    return blend(v.analysts, "analyst consensus") if v.analysts else composite(v)


def analyst_report(v: View) -> dict[str, Any]:
    r = ANALYSTS.get(v.focus or "", composite)(v)
    peers = {t["agent"]: Reading(num(t["output"], "score") or 0.0, conf(t["output"]))
             for t in v.transcript if t.get("agent") != v.me and is_analyst(t.get("output"))}
    inputs = v.input_views(peers)
    if peers or inputs:  # broadcast peers and declared inputs: move a quarter of the way
        board = blend([*peers.items(), *inputs],
                      "declared inputs and peers" if inputs else "peers on the board")
        r = Reading(0.75 * r.score + 0.25 * board.score, r.confidence, board.drivers + r.drivers)
    score = clip(r.score + v.bias)
    signal = "bullish" if score > THRESHOLD else "bearish" if score < -THRESHOLD else "neutral"
    return {"signal": signal, "score": rnd(score), "confidence": rnd(r.confidence),
            "summary": v.explain(f"{v.symbol} {signal} at {score:+.2f}", r.drivers[:4]),
            "key_points": r.drivers}
