"""The belief condition language names what the data layer computes: its indicator and price
fields come from the indicator catalogue and the snapshot, so every name it accepts resolves on
real data (stocks and crypto, daily and hourly) and nothing else is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from flowkit.market import indicators, load_market
from flowkit.memory.conditions import FIELDS, compile_condition
from flowkit.spec.models import MarketSpec


def test_indicator_fields_are_the_catalogue():
    assert FIELDS["indicator"] == frozenset(indicators.NAMES)
    for name in indicators.NAMES:
        compile_condition({"indicator": name, "op": "<", "value": 0})
    with pytest.raises(ValueError, match="unknown indicator 'rsi_15'; known: atr_14, bb_lower"):
        compile_condition({"indicator": "rsi_15", "op": "<", "value": 0})


@pytest.mark.parametrize("symbol, timeframe", [("MSFT", "1d"), ("BTC-USDT", "1d"),
                                               ("ETH-USDT", "1h")])
def test_every_market_field_resolves_on_a_real_snapshot(symbol, timeframe):
    market = load_market(MarketSpec(symbols=[symbol], source="sample", timeframe=timeframe))
    snapshot = market.asof(symbol, np.datetime64("2024-03-28T23:00")).snapshot()
    ctx = {"market": snapshot}
    for source in ("indicator", "price"):
        for name in FIELDS[source]:
            # `!=` an impossible value holds exactly when the field has a value
            assert compile_condition({source: name, "op": "!=", "value": -1e300})(ctx), (source, name)
    assert set(snapshot["indicators"]) == FIELDS["indicator"]
    assert set(snapshot["price"]) == FIELDS["price"]
