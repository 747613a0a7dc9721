"""One decision value from the decision agent's typed output to the risk engine: the shipped
firms hand the engine the very object they log, and the value reads output schemas by their
field names, keeping core fields strict and dropping junk advisory ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from runtime_support import WORKFLOWS

import flowkit
from flowkit.domain.decision import Decision, decision_from_output
from flowkit.risk import RiskEngine
from flowkit.runtime.session import Session
from flowkit.roles.outputs import ManagerPlan, TradeProposal


@pytest.mark.parametrize(("firm", "symbols", "every"), [
    ("tradingagents.yaml", ["NVDA"], "1d"),
    ("fincon.yaml", ["MSFT", "BTC-USDT"], "1w"),
])
def test_a_shipped_firms_decisions_reach_the_risk_engine_as_the_same_objects(
        firm: str, symbols: list[str], every: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reviewed: list[Any] = []
    decided: list[Any] = []  # every decision the firm made (the Outcome keeps the latest only)
    review, deliberate = RiskEngine.review, Session.deliberate

    def spy(self: RiskEngine, proposal: Any, *args: Any, **kwargs: Any) -> Any:
        reviewed.append(proposal)
        return review(self, proposal, *args, **kwargs)

    async def made(self: Session, *args: Any, **kwargs: Any) -> Any:
        decision, state = await deliberate(self, *args, **kwargs)
        decided.append(decision)
        return decision, state

    monkeypatch.setattr(RiskEngine, "review", spy)
    monkeypatch.setattr(Session, "deliberate", made)
    outcome = flowkit.run(flowkit.load(WORKFLOWS / firm), symbols=symbols, start="2024-02-01",
                          end="2024-02-29", every=every, db=str(tmp_path / "log.duckdb"))
    assert outcome.status == "completed" and outcome.decisions
    assert len(reviewed) == len(decided) == outcome.metrics["decisions"]
    key = lambda d: (d.as_of, d.symbol)  # noqa: E731  (review runs in symbol-name order)
    assert all(r is d for r, d in zip(sorted(reviewed, key=key), sorted(decided, key=key)))
    assert all(r is d for r, d in zip(reviewed[-len(outcome.decisions):], outcome.decisions))
    assert all(isinstance(d, Decision) and d.reasoning for d in decided)


def test_a_trade_proposal_becomes_a_decision_field_by_field() -> None:
    out = TradeProposal(action="SELL", size_pct=4.5, entry=101.0, stop_loss=104.0,
                        take_profit=95.0, confidence=0.7, reasoning="Momentum broke.")
    d = decision_from_output(out.model_dump(), symbol="ETH-USDT", as_of="2024-03-01T00:00:00",
                             agent="trader")
    assert d == Decision(symbol="ETH-USDT", as_of="2024-03-01T00:00:00", agent="trader",
                         action="SELL", size_pct=4.5, entry=101.0, stop_loss=104.0,
                         take_profit=95.0, confidence=0.7, reasoning="Momentum broke.")
    assert d.row(0.1)["target_weight"] == 0.1 and d.row()["reasoning"] == "Momentum broke."


def test_a_manager_plan_and_a_custom_rationale_schema_are_read_by_field_name() -> None:
    plan = ManagerPlan(action="BUY", size_pct=3, confidence=0.55, reasoning="Beliefs agree.",
                       beliefs_applied=["rsi below 30 precedes rebounds"])
    d = decision_from_output(plan.model_dump(), symbol="AAPL", as_of="2024-01-05", agent="mgr")
    assert (d.action, d.size_pct, d.reasoning, d.entry) == ("BUY", 3, "Beliefs agree.", None)
    custom = {"action": "hold", "size_pct": 0, "rationale": "Waiting for earnings."}
    d = decision_from_output(custom, symbol="TSLA", as_of="2024-01-05", agent="desk")
    assert (d.action, d.reasoning, d.confidence) == ("HOLD", "Waiting for earnings.", None)


def test_the_firm_not_the_model_names_the_symbol_time_and_agent() -> None:
    out = {"action": "BUY", "size_pct": 2, "symbol": "GME", "as_of": "1999-01-01",
           "agent": "someone", "reasoning": "x"}
    d = decision_from_output(out, symbol="MSFT", as_of="2024-02-02", agent="trader")
    assert (d.symbol, d.as_of, d.agent) == ("MSFT", "2024-02-02", "trader")


def test_junk_advisory_fields_fall_back_to_their_defaults() -> None:
    out = {"action": "BUY", "size_pct": 5, "entry": -3, "stop_loss": "junk",
           "take_profit": float("nan"), "confidence": 7, "reasoning": ["not", "text"]}
    d = decision_from_output(out, symbol="BTC-USDT", as_of="2024-02-02", agent="trader")
    assert (d.entry, d.stop_loss, d.take_profit, d.confidence, d.reasoning) == \
        (None, None, None, None, "")


@pytest.mark.parametrize("out", [
    {"action": "BUY"},                              # a trade needs a size
    {"action": "SELL", "size_pct": None},
    {"action": "BUY", "size_pct": True},            # booleans are not sizes
    {"action": "BUY", "size_pct": 150},
    {"action": "BUY", "size_pct": float("inf")},
    {"action": "SHORT", "size_pct": 5},
    {"size_pct": 5},
])
def test_a_wrong_core_field_is_no_decision(out: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        decision_from_output(out, symbol="SPY", as_of="2024-02-02", agent="pm")


def test_a_decision_is_a_frozen_value() -> None:
    d = Decision(symbol="spy ", action="hold")
    assert (d.symbol, d.action, d.size_pct) == ("SPY", "HOLD", 0.0)
    with pytest.raises(ValidationError):
        d.size_pct = 50  # type: ignore[misc]
