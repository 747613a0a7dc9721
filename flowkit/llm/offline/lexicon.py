"""Headline scoring: a small finance lexicon, ~150 words weighted +1 / -1, matched on
lower-cased words with punctuation removed; tone = (pos - neg) / (pos + neg + 2), so a single
word cannot dominate. No negation or context handling: a smoke-level reading, labelled as such."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

_POSITIVE = """
    beat beats beating surge surges surged soar soars soared jump jumps jumped rally rallies
    rallied gain gains gained rise rises climb climbs climbed record upgrade upgrades upgraded
    outperform outperforms outperformed strong stronger strength growth grows grew profit profits
    profitable raise raises raised boost boosts boosted bullish buyback buybacks dividend approval
    approved win wins won expands expansion exceeds exceeded tops topped rebound rebounds
    rebounded optimism optimistic breakthrough robust upbeat accelerates accelerating higher
    momentum partnership launch launches demand
""".split()
_NEGATIVE = """
    miss misses missed plunge plunges plunged fall falls fell drop drops dropped slump slumps
    slumped tumble tumbles tumbled sink sinks sank slide slides slid decline declines declined
    downgrade downgrades downgraded underperform underperforms weak weaker weakness loss losses
    lawsuit lawsuits sues sued probe investigation recall recalls cut cuts slashes bearish fraud
    layoffs layoff warning warns warned halt halts halted fined selloff sell-off crash crashes
    crashed bankruptcy default delay delays delayed concern concerns fears slowdown antitrust
    pessimism shortfall disappoint disappoints disappointing lower hack breach subpoena
""".split()
LEXICON: dict[str, int] = {**{w: 1 for w in _POSITIVE}, **{w: -1 for w in _NEGATIVE}}
_WORDS = str.maketrans({c: " " for c in string.punctuation if c != "-"})
_tone_cache: dict[str, tuple[int, int]] = {}  # headlines repeat for weeks in a backtest


def tone_counts(text: str) -> tuple[int, int]:
    """(positive, negative) lexicon hits in a text."""
    hit = _tone_cache.get(text)
    if hit is None:
        pos = neg = 0
        for word in text.lower().translate(_WORDS).split():
            w = LEXICON.get(word)
            if w == 1:
                pos += 1
            elif w == -1:
                neg += 1
        if len(_tone_cache) > 50_000:
            _tone_cache.clear()
        hit = _tone_cache[text] = (pos, neg)
    return hit


def news_tone(items: list[Mapping[str, Any]], with_text: bool) -> tuple[int, int, str | None]:
    """Lexicon hits over news items, and the headline with the strongest tone."""
    pos = neg = 0
    top, top_net = None, 0
    for item in items:
        p, n = tone_counts(str(item.get("headline") or ""))
        if abs(p - n) > abs(top_net):
            top, top_net = item.get("headline"), p - n
        if with_text and item.get("text"):
            tp, tn = tone_counts(str(item["text"])[:600])
            p, n = p + tp, n + tn
        pos, neg = pos + p, neg + n
    return pos, neg, top
