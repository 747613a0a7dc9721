"""`agents.<id>.inputs` has an effect: an agent sees the outputs of its declared inputs, in its
prompt (every built-in template renders them) and in the offline model's context (which reads
them first); without the declaration everything behaves as before."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from roles_context import SNAPSHOTS, context, example_context
from runtime_support import firm, run_firm, user_prompt

from flowkit.llm.base import ModelRequest, ModelResponse
from flowkit.llm.offline import OfflineModel
from flowkit.roles.outputs import validator_for
from flowkit.roles.registry import BUILTIN_ROLES

HEADER = "Your declared inputs"
STANCE = {"risk_debater": "neutral"}


class Capture(OfflineModel):
    """The offline model, keeping each agent's last request."""

    def __init__(self) -> None:
        self.requests: dict[str, ModelRequest] = {}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests[request.agent] = request
        return await super().complete(request)


def _run(tmp_path: Path, body: str, symbol: str = "MSFT") -> Capture:
    model = Capture()
    tmp_path.mkdir(exist_ok=True)
    outcome = run_firm(firm(tmp_path, body), tmp_path / "log.duckdb", models={"default": model},
                       symbols=[symbol], date="2024-03-01")
    assert outcome.status == "completed", outcome.error
    return model


def _subject_firm(role: str, declared: bool) -> str:
    stance = f", stance: {STANCE[role]}" if role in STANCE else ""
    inputs = ", inputs: [scout]" if declared else ""
    return f"""models: {{default: {{model: offline}}}}
agents:
  scout: {{role: news_analyst}}
  other: {{role: technical_analyst}}
  subject: {{role: {role}{stance}{inputs}}}
  desk: {{role: trader}}
pipeline: [scout, other, subject, desk]
decision: desk
market: {{symbols: [MSFT], source: sample}}
"""


@pytest.mark.parametrize("role", sorted(BUILTIN_ROLES))
def test_every_built_in_role_sees_its_declared_input(tmp_path, role):
    with_input = _run(tmp_path / "with", _subject_firm(role, declared=True))
    request = with_input.requests["subject"]
    scout = request.context["outputs"]["scout"]
    assert request.context["inputs"] == {"scout": scout}
    prompt = user_prompt(request.messages)
    assert HEADER in prompt
    assert f"- scout: {json.dumps(scout, separators=(',', ':'), ensure_ascii=False)}" in prompt
    assert prompt.count('"summary":' + json.dumps(scout["summary"], ensure_ascii=False)) == 1

    without = _run(tmp_path / "without", _subject_firm(role, declared=False))
    plain = without.requests["subject"]
    assert plain.context["inputs"] == {} and HEADER not in user_prompt(plain.messages)


def test_an_input_skipped_by_its_condition_is_shown_as_missing(tmp_path):
    body = """models: {default: {model: offline}}
agents:
  scout: {role: news_analyst}
  desk: {role: trader, inputs: [scout]}
pipeline:
  - agent: scout
    when: "symbol == 'NOPE'"
  - desk
decision: desk
market: {symbols: [MSFT], source: sample}
"""
    request = _run(tmp_path, body).requests["desk"]
    assert request.context["inputs"] == {"scout": None}
    assert "- scout: no output (skipped or failed)" in user_prompt(request.messages)


FINCON_WITH_DEBATE = """models: {{default: {{model: offline}}}}
agents:
  technical: {{role: technical_analyst}}
  news: {{role: news_analyst}}
  bull: {{role: bull_researcher}}
  bear: {{role: bear_researcher}}
  judge: {{role: research_manager}}
  fundamentals: {{role: fundamentals_analyst}}
  sentiment: {{role: sentiment_analyst}}
  manager: {{role: manager{inputs}}}
pipeline:
  - parallel: {{steps: [technical, news]}}
  - debate: {{participants: [bull, bear], rounds: 1, judge: judge}}
  - hierarchical: {{manager: manager, workers: [fundamentals, sentiment], max_rounds: 1}}
decision: manager
market: {{symbols: [{symbol}], source: sample}}
"""


@pytest.mark.parametrize("symbol", ["NVDA", "AAPL", "BTC-USDT"])
def test_fincon_manager_declaring_the_judge_sees_its_verdict(tmp_path, symbol):
    declared = _run(tmp_path / "with", FINCON_WITH_DEBATE.format(inputs=", inputs: [judge]",
                                                                  symbol=symbol), symbol)
    final = declared.requests["manager"]
    verdict = final.context["outputs"]["judge"]
    assert final.context["inputs"] == {"judge": verdict}
    assert f'- judge: {json.dumps(verdict, separators=(",", ":"), ensure_ascii=False)}' \
        in user_prompt(final.messages)
    decided = OfflineModel().answer(final)
    assert "worker reports and declared inputs" in decided["reasoning"]
    assert f"judge {verdict['score']:+.2f}" in decided["reasoning"]

    plain = _run(tmp_path / "without", FINCON_WITH_DEBATE.format(inputs="", symbol=symbol),
                 symbol).requests["manager"]
    assert '"recommendation"' not in user_prompt(plain.messages)
    assert "judge" not in OfflineModel().answer(plain)["reasoning"]


# ---------------------------------------------------------------- what the offline model reads

MODEL = OfflineModel()
SELL_VERDICT = {"recommendation": "SELL", "winner": "bear", "confidence": 0.9, "score": -0.9,
                "rationale": "contrary view", "plan": "exit"}
SMALL_BUY = {"action": "BUY", "size_pct": 2.5, "entry": 900.0, "stop_loss": 850.0,
             "take_profit": 1000.0, "confidence": 0.3, "reasoning": "a smaller trade"}


def _answer(role: str, outputs: dict[str, Any], inputs: dict[str, Any] | None) -> dict[str, Any]:
    snap = SNAPSHOTS["NVDA"]()
    scope: dict[str, Any] = {"outputs": outputs, "final": True}
    if inputs is not None:
        scope["inputs"] = inputs
    ctx = context(snap, "subject", role, stance=STANCE.get(role), **scope)
    info = BUILTIN_ROLES[role]
    request = ModelRequest(agent="subject", role=role, output_name=info.output,
                           messages=[{"role": "user", "content": "x"}], context=ctx)
    answer = MODEL.answer(request)
    assert validator_for(info.output).validate(json.dumps(answer)) == answer
    return answer


def _desk() -> dict[str, Any]:
    """A bullish NVDA desk: analysts, a BUY verdict, a BUY proposal and a risk review."""
    out = copy.deepcopy(example_context()["outputs"])
    for agent in ("technical", "fundamentals", "news"):
        out[agent].update(signal="bullish", score=0.6)
    out["judge"].update(recommendation="BUY", score=0.5, winner="bull")
    out["trader"] = {**SMALL_BUY, "size_pct": 12.0, "entry": 926.69, "confidence": 0.7}
    return out


@pytest.mark.parametrize("role", sorted(BUILTIN_ROLES))
def test_the_offline_model_reads_a_declared_input_first(role):
    kind = BUILTIN_ROLES[role].kind
    contrary = SMALL_BUY if kind in ("risk", "decider") else SELL_VERDICT
    outputs = {"contrary": contrary, **_desk()}  # earlier than everything else in the state
    today = _answer(role, outputs, None)
    assert _answer(role, outputs, {}) == today  # no declaration: as before
    assert _answer(role, outputs, {"contrary": contrary}) != today


@pytest.mark.parametrize("role, reads", [("trader", "judge"), ("risk_manager", "trader"),
                                         ("risk_debater", "trader"), ("portfolio_manager", "trader"),
                                         ("bull_researcher", "technical"),
                                         ("research_manager", "news")])
def test_declaring_what_a_role_reads_anyway_changes_nothing(role, reads):
    outputs = _desk()
    assert _answer(role, outputs, {reads: outputs[reads]}) == _answer(role, outputs, None)


def test_a_declared_input_that_produced_nothing_is_ignored():
    outputs = _desk()
    assert _answer("manager", outputs, {"judge": None}) == _answer("manager", outputs, None)
