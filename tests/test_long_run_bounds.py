"""A long run costs the same per decision at its end as at its start: a checkpoint holds only the
live state (positions, working orders, risk state, recent lessons, cursors), never the history
the log tables already hold, so its size does not grow with how far the run has gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowkit
from flowkit.backtest import loop
from runtime_support import rows

ROOT = Path(__file__).resolve().parents[1]
TA = ROOT / "workflows" / "tradingagents.yaml"
FINCON = ROOT / "workflows" / "fincon.yaml"
EVERY = 15  # a checkpoint every 15 decision times, so the test sees many whatever the machine


@pytest.mark.parametrize(("workflow", "symbols", "start", "end", "every"), [
    (TA, ["NVDA", "AAPL", "MSFT"], "2023-01-03", "2023-12-29", "1d"),
    (TA, ["MSFT", "BTC-USDT"], "2023-01-02", "2023-08-31", "1d"),
    (FINCON, ["ETH-USDT", "BTC-USDT"], "2022-01-03", "2024-06-30", "1w"),
], ids=["stocks-daily", "stock-and-coin-daily", "fincon-crypto-weekly"])
def test_checkpoints_stay_the_size_of_the_live_state(tmp_path, monkeypatch, workflow, symbols,
                                                     start, end, every) -> None:
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY", EVERY)
    db = tmp_path / "log.duckdb"
    outcome = flowkit.run(flowkit.load(workflow), symbols=symbols, start=start, end=end,
                          every=every, db=str(db))
    assert outcome.status == "completed"
    states = [json.loads(s) for (s,) in rows(
        db, "SELECT state FROM checkpoints WHERE run_id = ? ORDER BY seq", outcome.run_id)]
    assert len(states) >= 5
    sizes = [len(json.dumps(s)) for s in states]
    # The history is in the log, not in the checkpoint: its size stays within a small bound
    # of an early one (positions and working orders come and go) instead of growing with it.
    assert max(sizes[2:]) <= 1.5 * max(sizes[:2]), sizes
    (n_orders,) = rows(db, "SELECT count(*) FROM orders WHERE run_id = ?", outcome.run_id)[0]
    assert n_orders > 3 * len(symbols)  # it did trade: there was history to leave out
    for state in states:
        broker = state["trading"]["broker"]
        assert all(o["status"] == "submitted" for o in broker["orders"])  # working orders only
        assert {o["order_id"] for o in broker["orders"]} >= set(broker["pending"])
        assert not broker["fills"]  # a fill settles its order, which the log then holds
        memory = state["memory"]
        if memory is not None:
            assert all(len(kept) <= 5 for kept in memory["lessons"].values())
            assert memory["trajectory"] == []  # only a training episode keeps its matured decisions
