"""The offline model: valid, deterministic, data-driven answers for every role; beliefs that act."""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

import pytest
from roles_context import SNAPSHOTS, context, example_context, portfolio

from flowkit.errors import ModelError
from flowkit.llm.base import ChatModel, ModelRequest
from flowkit.llm.offline import MARK, OfflineModel, tone_counts
from flowkit.memory.conditions import compile_condition, parse_belief
from flowkit.roles.outputs import validator_for
from flowkit.roles.registry import BUILTIN_ROLES

MODEL = OfflineModel()
ANALYSTS = {"technical": "technical_analyst", "fundamentals": "fundamentals_analyst",
            "news": "news_analyst", "sentiment": "sentiment_analyst"}
FIRM = {**ANALYSTS, "bull": "bull_researcher", "bear": "bear_researcher", "judge": "research_manager",
        "trader": "trader", "aggressive": "risk_debater", "conservative": "risk_debater",
        "neutral": "risk_debater", "risk": "risk_manager", "pm": "portfolio_manager"}
TEXT_FIELD = {"analyst_report": "summary", "research_argument": "argument",
              "research_verdict": "rationale", "trade_proposal": "reasoning",
              "risk_argument": "argument", "risk_assessment": "reasoning", "manager_plan": "reasoning"}


def request(ctx: dict[str, Any], output: str | None = None, schema: dict | None = None) -> ModelRequest:
    agent = ctx["agent"]
    name = output or BUILTIN_ROLES[agent["role"]].output
    return ModelRequest(agent=agent["id"], role=agent["role"], output_name=name, output_schema=schema,
                        messages=[{"role": "system", "content": "s" * 400},
                                  {"role": "user", "content": "u" * 2000}], context=ctx)


def ask(snap: dict, agent: str, role: str, outputs: dict, **scope: Any) -> dict[str, Any]:
    """One answer, checked against its output model the way the runtime checks it."""
    ctx = context(snap, agent, role, outputs=dict(outputs), **scope)
    answer = MODEL.answer(request(ctx))
    name = BUILTIN_ROLES[role].output
    assert validator_for(name).validate(json.dumps(answer)) == answer
    assert MARK in answer[TEXT_FIELD[name]]
    return answer


def run_firm(snap: dict, rounds: int = 2, **scope: Any) -> tuple[dict, list, list]:
    """The TradingAgents topology: analysts, bull/bear debate, judge, trader, risk debate, PM."""
    out: dict[str, Any] = {}
    for agent, role in ANALYSTS.items():
        out[agent] = ask(snap, agent, role, out, **scope)
    debate: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        for side in ("bull", "bear"):
            out[side] = ask(snap, side, f"{side}_researcher", out, transcript=list(debate), round=r, **scope)
            debate.append({"agent": side, "role": f"{side}_researcher", "round": r, "output": out[side]})
    out["judge"] = ask(snap, "judge", "research_manager", out, transcript=debate, final=True, **scope)
    out["trader"] = ask(snap, "trader", "trader", out, **scope)
    risk: list[dict[str, Any]] = []
    for stance in ("aggressive", "conservative", "neutral"):
        ctx_scope = {"transcript": list(risk), "round": 1, **scope}
        ctx = context(snap, stance, "risk_debater", stance=stance, outputs=dict(out), **ctx_scope)
        out[stance] = MODEL.answer(request(ctx))
        validator_for("risk_argument").validate(out[stance])
        risk.append({"agent": stance, "role": "risk_debater", "round": 1, "output": out[stance]})
    out["risk"] = ask(snap, "risk", "risk_manager", out, **scope)
    out["pm"] = ask(snap, "pm", "portfolio_manager", out, transcript=risk, final=True, **scope)
    return out, debate, risk


def test_offline_model_is_a_chat_model():
    model: ChatModel = OfflineModel()
    assert model.name == "offline"


@pytest.mark.parametrize("symbol", sorted(SNAPSHOTS))
def test_every_role_answers_validly_for_real_snapshots(symbol):
    out, _, risk = run_firm(SNAPSHOTS[symbol]())
    assert {t["output"]["stance"] for t in risk} == {"aggressive", "conservative", "neutral"}
    pm = out["pm"]
    assert pm["size_pct"] <= 20 and (pm["action"] == "HOLD") == (pm["size_pct"] == 0)


def test_answers_follow_the_data():
    nvda, _, _ = run_firm(SNAPSHOTS["NVDA"]())
    assert nvda["technical"]["signal"] == "bullish" and "RSI 78 overbought" in nvda["technical"]["summary"]
    assert nvda["fundamentals"]["score"] > 0.5 and "EPS surprise +12.4%" in nvda["fundamentals"]["summary"]
    assert nvda["judge"]["recommendation"] == "BUY" and nvda["judge"]["winner"] == "bull"
    trade = nvda["trader"]
    assert trade["action"] == "BUY" and trade["entry"] == 926.69
    assert trade["stop_loss"] == pytest.approx(926.69 - 2 * 35.8)   # 2 ATR, inside the 8% default
    assert trade["take_profit"] == pytest.approx(926.69 + 3 * 35.8)
    assert trade["size_pct"] == pytest.approx(20 * trade["confidence"], abs=0.01)
    assert nvda["conservative"]["recommended_size_pct"] < nvda["neutral"]["recommended_size_pct"] \
        < nvda["aggressive"]["recommended_size_pct"]
    assert 0 < nvda["pm"]["size_pct"] < trade["size_pct"]

    intc, _, _ = run_firm(SNAPSHOTS["INTC"]())
    assert intc["technical"]["signal"] == "bearish" and "RSI 24 oversold" in intc["technical"]["summary"]
    assert intc["news"]["signal"] == "bearish" and intc["judge"]["recommendation"] == "SELL"
    assert intc["trader"]["action"] == "HOLD"  # nothing to sell, shorting off
    assert "no position to sell and shorting is off" in intc["trader"]["reasoning"]

    btc, _, _ = run_firm(SNAPSHOTS["BTC-USDT"]())
    assert btc["fundamentals"] == {
        "signal": "neutral", "score": 0.0, "confidence": 0.1, "key_points": ["no fundamentals available"],
        "summary": f"{MARK} BTC-USDT neutral at +0.00: no fundamentals available."}


def test_trader_sells_an_existing_long_and_shorts_only_when_allowed():
    snap = SNAPSHOTS["INTC"]()
    held, _, _ = run_firm(snap, portfolio=portfolio(12.0, price=31.88))
    assert held["trader"]["action"] == "SELL" and 0 < held["trader"]["size_pct"] <= 12.0
    assert held["trader"]["stop_loss"] is None  # trimming a long carries no stop
    risk = {**context(snap, "x", "trader")["risk"], "allow_short": True}
    short, _, _ = run_firm(snap, risk=risk)
    assert short["trader"]["action"] == "SELL" and short["trader"]["stop_loss"] > 31.88


def test_position_limit_and_halt_are_respected():
    snap = SNAPSHOTS["NVDA"]()
    full, _, _ = run_firm(snap, portfolio=portfolio(20.0, price=926.69))
    assert full["trader"]["action"] == "HOLD" and "position limit" in full["trader"]["reasoning"]
    halted, _, _ = run_firm(snap, risk_state={"risk_averse": False, "drawdown_pct": 26.0, "halted": True})
    assert halted["trader"]["action"] == "HOLD" and halted["risk"]["approve"] is True  # HOLD is fine
    assert "trading halted" in halted["trader"]["reasoning"]


def test_portfolio_manager_shrinks_when_risk_averse_and_honours_a_veto():
    snap = SNAPSHOTS["NVDA"]()
    calm, _, risk = run_firm(snap)
    averse_state = {"risk_averse": True, "drawdown_pct": 4.0, "halted": False}
    pm_ctx = context(snap, "pm", "portfolio_manager", outputs=calm, transcript=risk)
    averse = MODEL.answer(request({**pm_ctx, "risk_state": averse_state}))
    assert averse["size_pct"] == pytest.approx(calm["pm"]["size_pct"] * 0.5, abs=0.01)
    assert "risk-averse" in averse["reasoning"]
    vetoed = dict(calm, risk={"approve": False, "max_size_pct": 0.0, "reasoning": "no",
                              "concerns": ["earnings tomorrow"]})
    veto = MODEL.answer(request({**pm_ctx, "outputs": vetoed}))
    assert veto["action"] == "HOLD" and "earnings tomorrow" in veto["reasoning"]


# ---------------------------------------------------------------- determinism and accounting


async def test_same_context_gives_byte_identical_content():
    ctx = example_context()
    ctx["agent"] = {"id": "boss", "role": "manager", "kind": "manager", "stance": None, "description": ""}
    first = await MODEL.complete(request(ctx))
    again = await OfflineModel().complete(request(copy.deepcopy(ctx)))
    assert first.content == again.content
    assert first.model == "offline" and first.cost_usd == 0.0
    assert first.prompt_tokens == 2400 // 4 and first.completion_tokens == len(first.content) // 4


@pytest.mark.parametrize("symbol", sorted(SNAPSHOTS))
def test_whole_firm_is_deterministic(symbol):
    assert run_firm(SNAPSHOTS[symbol]())[0] == run_firm(SNAPSHOTS[symbol]())[0]


def test_speed_per_answer():
    reqs = []
    for snap in SNAPSHOTS.values():
        out, debate, _ = run_firm(snap())
        for agent, role in FIRM.items():
            stance = agent if role == "risk_debater" else None
            reqs.append(request(context(snap(), agent, role, stance=stance, outputs=out,
                                        transcript=debate)))
    start = time.perf_counter()
    for _ in range(20):
        for r in reqs:
            json.dumps(MODEL.answer(r))
    per_answer_us = (time.perf_counter() - start) / (20 * len(reqs)) * 1e6
    assert per_answer_us < 300, per_answer_us  # typically ~20 µs; generous for slow CI


# ---------------------------------------------------------------- debate


@pytest.mark.parametrize("symbol", sorted(SNAPSHOTS))
def test_rebuttals_quote_only_the_transcript(symbol):
    _, debate, _ = run_firm(SNAPSHOTS[symbol](), rounds=3)
    assert debate[0]["output"]["rebuttal"] is None  # the first speaker has nothing to answer
    for i, turn in enumerate(debate[1:], start=1):
        rebuttal = turn["output"]["rebuttal"]
        quoted = re.fullmatch(r'(\w+) argued "(.+?)", but .+', rebuttal)
        assert quoted, rebuttal
        earlier = [t for t in debate[:i] if t["output"]["stance"] != turn["output"]["stance"]]
        assert quoted.group(1) == earlier[-1]["agent"]
        said = earlier[-1]["output"]
        assert any(quoted.group(2) in text for text in [said["argument"], *said["points"]])


def test_rebuttal_quotes_an_llm_opponent_verbatim():
    ctx = example_context()
    turns = ctx["transcript"]
    bull = MODEL.answer(request(context(SNAPSHOTS["AAPL"](), "bull", "bull_researcher",
                                        outputs=ctx["outputs"], transcript=turns, round=2)))
    assert bull["rebuttal"].startswith('bear argued "price below both SMA50 and SMA200"')
    argument_only = [{**turns[0], "output": {**turns[0]["output"], "points": []}}]
    bear = MODEL.answer(request(context(SNAPSHOTS["AAPL"](), "bear", "bear_researcher",
                                        outputs=ctx["outputs"], transcript=argument_only, round=1)))
    assert bear["rebuttal"].startswith(
        'bull argued "Earnings keep beating and services growth carries margins."')


def test_judge_weighs_the_debate():
    snap = SNAPSHOTS["AAPL"]()
    analysts = {a: ask(snap, a, r, {}) for a, r in ANALYSTS.items()}

    def turn(stance: str, conviction: float, r: int) -> dict:
        return {"agent": stance, "role": f"{stance}_researcher", "round": r, "output": {
            "stance": stance, "argument": "a", "points": [], "rebuttal": None, "conviction": conviction}}

    bullish = [turn("bull", 0.9, 1), turn("bear", 0.2, 1)]
    bearish = [turn("bull", 0.2, 1), turn("bear", 0.9, 1)]
    up = ask(snap, "judge", "research_manager", analysts, transcript=bullish)
    down = ask(snap, "judge", "research_manager", analysts, transcript=bearish)
    assert (up["winner"], up["recommendation"]) == ("bull", "BUY")
    assert (down["winner"], down["recommendation"]) == ("bear", "SELL")


def test_broadcast_analysts_move_toward_their_peers():
    snap = SNAPSHOTS["AAPL"]()
    alone = ask(snap, "technical", "technical_analyst", {})
    board = [{"agent": "news", "role": "news_analyst", "round": 1, "output": {
        "signal": "bullish", "score": 0.9, "confidence": 0.8, "summary": "s", "key_points": []}}]
    revised = ask(snap, "technical", "technical_analyst", {}, transcript=board, round=2)
    assert revised["score"] == pytest.approx(0.75 * alone["score"] + 0.25 * 0.9, abs=1e-3)
    assert "peers on the board" in revised["summary"]


# ---------------------------------------------------------------- hierarchy


def test_manager_assigns_every_worker_then_decides_from_reports():
    snap = SNAPSHOTS["NVDA"]()
    workers = ["technical", "fundamentals"]
    plan = ask(snap, "boss", "manager", {}, workers=workers, round=1)
    assert [a["worker"] for a in plan["assignments"]] == workers
    assert plan["action"] == "HOLD" and plan["size_pct"] == 0
    reports = [{"agent": w, "output": ask(snap, w, ANALYSTS[w], {}, task=a["instruction"])}
               for w, a in zip(workers, plan["assignments"], strict=True)]
    reports.append({"agent": "news", "output": None, "error": "timeout"})
    final = ask(snap, "boss", "manager", {}, workers=workers, reports=reports, round=2, final=True)
    assert final["assignments"] == [] and final["action"] == "BUY" and final["size_pct"] > 0
    assert "worker reports" in final["reasoning"] and "no report from news" in final["reasoning"]
    alone = ask(snap, "boss", "manager", {}, workers=workers, round=1, final=True)
    assert alone["assignments"] == [] and alone["action"] == "BUY"  # must decide: reads the data


# ---------------------------------------------------------------- beliefs

OVERBOUGHT = {"text": "Extended rallies above RSI 70 mean-revert within a week.",
              "condition": {"indicator": "rsi_14", "op": ">", "value": 70}, "effect": {"bias": -0.9}}
OVERSOLD = {"text": "Capitulation below RSI 30 is a buying chance.",
            "condition": {"indicator": "rsi_14", "op": "<", "value": 30}, "effect": {"bias": 0.9}}
HALVE = {"text": "Halve size when the news analyst is bullish on heavy flow.",
         "condition": {"all": [{"signal": "news", "equals": "BULLISH"},
                               {"market": "news_count_7d", "op": ">=", "value": 10}]},
         "effect": {"size_mult": 0.5}}


def _trader(snap: dict, beliefs: list, position: float = 0.0) -> dict:
    out, _, _ = run_firm(snap)
    ctx = context(snap, "trader", "trader", outputs=out, beliefs=beliefs,
                  portfolio=portfolio(position, price=snap["price"]["close"]))
    return MODEL.answer(request(ctx))


def test_a_belief_that_holds_flips_the_decision():
    snap = SNAPSHOTS["NVDA"]()
    base = _trader(snap, [], position=10.0)
    flipped = _trader(snap, [OVERBOUGHT, {**OVERBOUGHT, "text": "Twice is a trend."}], position=10.0)
    assert base["action"] == "BUY" and flipped["action"] == "SELL"
    assert OVERBOUGHT["text"] in flipped["reasoning"] and "bias -0.90" in flipped["reasoning"]


def test_a_belief_that_holds_shrinks_the_size():
    snap = SNAPSHOTS["NVDA"]()
    base, halved = _trader(snap, []), _trader(snap, [HALVE])
    assert halved["action"] == base["action"] == "BUY"
    assert halved["size_pct"] == pytest.approx(base["size_pct"] / 2, abs=0.01)
    assert "size x0.5" in halved["reasoning"]


def test_a_belief_that_does_not_hold_changes_nothing():
    snap = SNAPSHOTS["NVDA"]()
    ctx = context(snap, "trader", "trader", outputs=run_firm(snap)[0])
    plain = json.dumps(MODEL.answer(request(ctx)))
    idle = [OVERSOLD, {**HALVE, "condition": {"not": HALVE["condition"]}},
            {"text": "No fundamentals, no trade.", "effect": {"bias": -1},
             "condition": {"fundamental": "eps_ttm", "op": "<", "value": 0}}]
    assert json.dumps(MODEL.answer(request({**ctx, "beliefs": idle}))) == plain


def test_beliefs_reach_every_kind_of_role():
    snap = SNAPSHOTS["NVDA"]()
    out, debate, risk = run_firm(snap)
    for agent, role, scope in [("technical", "technical_analyst", {}),
                               ("bull", "bull_researcher", {"transcript": debate[:1]}),
                               ("judge", "research_manager", {"transcript": debate}),
                               ("pm", "portfolio_manager", {"transcript": risk})]:
        base = ask(snap, agent, role, out, **scope)
        biased = ask(snap, agent, role, out, beliefs=[OVERBOUGHT], **scope)
        key = {"bull": "conviction", "pm": "confidence"}.get(agent, "score")
        assert biased[key] < base[key], agent
    risk_ctx = dict(outputs=out, transcript=risk[:2], beliefs=[OVERBOUGHT])
    assert ask(snap, "risk", "risk_manager", out, beliefs=[OVERBOUGHT])["max_size_pct"] < out["risk"]["max_size_pct"]
    shrunk = MODEL.answer(request(context(snap, "neutral", "risk_debater", stance="neutral", **risk_ctx)))
    assert shrunk["recommended_size_pct"] < out["neutral"]["recommended_size_pct"]


def test_manager_lists_the_beliefs_it_applied():
    snap = SNAPSHOTS["NVDA"]()
    plan = ask(snap, "boss", "manager", {}, beliefs=[OVERBOUGHT, OVERSOLD], final=True)
    assert plan["beliefs_applied"] == [OVERBOUGHT["text"]]
    assert ask(snap, "boss", "manager", {}, beliefs=[OVERSOLD], final=True)["beliefs_applied"] == []


def test_lessons_are_noted_not_acted_on():
    snap = SNAPSHOTS["AAPL"]()
    plain = ask(snap, "technical", "technical_analyst", {})
    noted = ask(snap, "technical", "technical_analyst", {}, lessons=["a", "b"])
    assert noted["score"] == plain["score"] and "2 lesson(s) on file" in noted["summary"]


CTX = context(SNAPSHOTS["AAPL"](), "x", "trader", outputs={"news": {"signal": "bearish", "score": -0.4}},
              portfolio=portfolio(8.0), risk_state={"risk_averse": True, "drawdown_pct": 6.0, "halted": False})


@pytest.mark.parametrize("condition, holds", [
    (None, True), ({}, True),
    ({"indicator": "rsi_14", "op": "<", "value": 50}, True),
    ({"indicator": "sma_200", "op": "<=", "value": 100}, False),
    ({"price": "change_20d_pct", "op": "<", "value": -3}, True),
    ({"fundamental": "surprise_pct", "op": ">", "value": 3}, True),
    ({"fundamental": "eps_growth_yoy_pct", "op": ">=", "value": 20}, False),
    ({"market": "sector", "op": "==", "value": "Technology"}, True),
    ({"portfolio": "position_pct", "op": ">", "value": 5}, True),
    ({"risk_state": "risk_averse", "op": "==", "value": True}, True),
    ({"output": "news.score", "op": "<", "value": -0.3}, True),
    ({"output": "judge.score", "op": "<", "value": 0}, False),  # missing data never holds
    ({"signal": "news", "equals": "bearish"}, True),
    ({"signal": "technical", "equals": "bearish"}, False),
    ({"any": [{"signal": "technical", "equals": "bullish"}, {"indicator": "rsi_14", "op": "<", "value": 50}]}, True),
    ({"all": [{"signal": "news", "equals": "bearish"},
              {"not": {"risk_state": "halted", "op": "==", "value": False}}]}, False),
])
def test_condition_language(condition, holds):
    assert compile_condition(condition)(CTX) is holds


@pytest.mark.parametrize("condition, message", [
    ({"indicator": "rsi14", "op": ">", "value": 70}, "unknown indicator 'rsi14'"),
    ({"indicator": "rsi_14", "op": "=>", "value": 70}, "unknown op '=>'"),
    ({"indicator": "rsi_14", "op": ">", "value": "70"}, "> needs a number"),
    ({"indicator": "rsi_14", "op": ">"}, "unknown condition"),
    ({"all": []}, '"all" takes a non-empty list'),
    ({"signal": "news"}, "signal condition"),
    ({"output": "score", "op": ">", "value": 0}, "AGENT.FIELD"),
    ({"eval": "__import__('os')"}, "unknown condition"),
    ("rsi > 70", "a condition is an object"),
])
def test_malformed_conditions_are_rejected(condition, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_condition(condition)


@pytest.mark.parametrize("belief, message", [
    ({"text": "", "effect": {"bias": 0.1}}, "non-empty text"),
    ({"text": "t", "effect": {"bias": 2}}, "bias must be a number in [-1, 1]"),
    ({"text": "t", "effect": {"size_mult": -1}}, "size_mult must be a number in [0, 2]"),
    ({"text": "t", "effect": {"weight": 1}}, 'effect must have "bias" and/or "size_mult"'),
    ({"text": "t", "effect": {"bias": 0.1}, "condition": {"indicator": "x", "op": ">", "value": 1}},
     'belief "t": unknown indicator'),
])
def test_malformed_beliefs_are_rejected(belief, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_belief(belief)


async def test_a_malformed_belief_fails_the_call_loudly():
    ctx = context(SNAPSHOTS["AAPL"](), "t", "technical_analyst",
                  beliefs=[{"text": "t", "effect": {"bias": 5}}])
    with pytest.raises(ModelError, match="agent 't'.*bias must be"):
        await MODEL.complete(request(ctx))


def test_lexicon():
    assert tone_counts("Nvidia beats estimates; shares surge to a record") == (3, 0)
    assert tone_counts("Intel sinks on weak outlook, analysts cut targets") == (0, 3)
    assert tone_counts("Apple to hold WWDC June 10") == (0, 0)


# ---------------------------------------------------------------- user-defined roles

STRATEGIST = {
    "type": "object",
    "properties": {
        "signal": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "summary": {"type": "string", "maxLength": 120},
        "regime": {"enum": ["risk_on", "risk_off", "range"]},
        "horizon_days": {"type": "integer", "minimum": 1, "maximum": 20},
        "catalysts": {"type": "array", "items": {"type": "string", "minLength": 5}, "minItems": 1},
        "as_of": {"type": "string", "format": "date"},
        "hedge": {"type": "boolean"},
        "target": {"anyOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}]},
        "meta": {"$ref": "#/$defs/meta"},
    },
    "required": ["signal", "score", "confidence", "summary", "regime", "horizon_days", "catalysts",
                 "as_of", "hedge", "target", "meta"],
    "additionalProperties": False,
    "$defs": {"meta": {"type": "object", "properties": {"source": {"const": "desk"},
                                                        "tier": {"type": "string", "default": "b"}},
                       "required": ["source", "tier"], "additionalProperties": False}},
}


def _custom(snap: dict, kind: str, schema: dict, **scope: Any) -> dict:
    ctx = context(snap, "strategist", "macro_strategist", kind=kind, **scope)
    answer = MODEL.answer(request(ctx, output="macro_strategist", schema=schema))
    return validator_for(schema).validate(json.dumps(answer))


@pytest.mark.parametrize("symbol", sorted(SNAPSHOTS))
def test_user_defined_role_gets_a_valid_data_driven_answer(symbol):
    answer = _custom(SNAPSHOTS[symbol](), "analyst", STRATEGIST)
    assert answer["summary"].startswith(MARK) and len(answer["summary"]) <= 120
    assert answer["as_of"] == SNAPSHOTS[symbol]()["as_of"][:10]
    assert answer["meta"] == {"source": "desk", "tier": "b"} and answer["horizon_days"] == 1


def test_user_defined_fields_take_the_generic_computation():
    bullish = _custom(SNAPSHOTS["NVDA"](), "analyst", STRATEGIST)
    bearish = _custom(SNAPSHOTS["INTC"](), "analyst", STRATEGIST)
    assert bullish["signal"] == "BUY" and bullish["score"] > 0.1
    assert bearish["signal"] == "SELL" and bearish["score"] < -0.1
    assert 0 <= bullish["confidence"] <= 100
    lower = {"type": "object", "required": ["action", "size_pct", "reasoning"], "properties": {
        "action": {"type": "string", "enum": ["buy", "sell", "hold"]},
        "size_pct": {"type": "number", "minimum": 0, "maximum": 100},
        "reasoning": {"type": "string"}}}
    out, _, _ = run_firm(SNAPSHOTS["NVDA"]())
    trade = _custom(SNAPSHOTS["NVDA"](), "trader", lower, outputs=out)
    assert trade["action"] == "buy" and 0 < trade["size_pct"] <= 20


def test_unknown_output_without_schema_is_an_error():
    ctx = context(SNAPSHOTS["AAPL"](), "x", "macro_strategist", kind="analyst")
    with pytest.raises(ModelError, match="not built in and no schema"):
        MODEL.answer(request(ctx, output="macro_view"))


def test_risk_voices_name_the_data_behind_their_concerns():
    snap = SNAPSHOTS["NVDA"]()
    out, _, _ = run_firm(snap)
    held = {**portfolio(5.0, price=926.69), "correlations": {"AMD": 0.86, "SPY": 0.41}}
    conservative = MODEL.answer(request(context(snap, "c", "risk_debater", stance="conservative",
                                                outputs=out, portfolio=held)))
    assert "moves with AMD already held (correlation 0.86)" in conservative["concerns"]
    assert "buying into an overbought RSI 78" in conservative["concerns"]
    assert not any("SPY" in c for c in conservative["concerns"])
    aggressive = MODEL.answer(request(context(snap, "a", "risk_debater", stance="aggressive",
                                              outputs=out, portfolio=held)))
    assert aggressive["concerns"] == []  # only blocking problems reach the aggressive voice


def test_portfolio_manager_shrinks_a_buy_that_moves_with_a_held_position():
    snap = SNAPSHOTS["NVDA"]()
    out, _, _ = run_firm(snap)
    alone = portfolio(0.0, price=926.69)
    crowded = {**alone, "correlations": {"AMD": 0.9, "SPY": 0.3}}
    loose = {**alone, "correlations": {"SPY": 0.4}}
    pm = {name: MODEL.answer(request(context(snap, "pm", "portfolio_manager", outputs=out,
                                             portfolio=p)))
          for name, p in (("alone", alone), ("crowded", crowded), ("loose", loose))}
    assert pm["alone"]["action"] == pm["crowded"]["action"] == "BUY"
    assert pm["crowded"]["size_pct"] == pytest.approx(pm["alone"]["size_pct"] * 0.6, rel=1e-3)
    assert "correlation 0.90 with AMD held" in pm["crowded"]["reasoning"]
    assert pm["loose"]["size_pct"] == pm["alone"]["size_pct"]  # below 0.5: no change


# ---------------------------------------------------------------- declared, never named


def test_strategies_follow_what_roles_declare_not_their_names():
    snap = SNAPSHOTS["NVDA"]()
    out, _, _ = run_firm(snap)
    # An agent id naming another focus reads by its role's declared focus.
    assert ask(snap, "news", "technical_analyst", {}) == ask(snap, "x", "technical_analyst", {})
    # The built-in researchers argue their declared side whatever the agent is called.
    assert ask(snap, "bull", "bear_researcher", out)["stance"] == "bear"
    assert ask(snap, "bear", "bull_researcher", out)["stance"] == "bull"

    def custom(role: str, kind: str, output: str, stance: str | None = None) -> dict:
        ctx = context(snap, "agent", role, kind=kind, stance=stance, outputs=out)
        return MODEL.answer(request(ctx, output=output))

    # A user-defined role's name says nothing: a "bear_case" researcher argues the side its
    # agent declares (bull when none), a "technical_analyst_v2" analyst reads all four.
    assert custom("bear_case", "researcher", "research_argument")["stance"] == "bull"
    assert custom("skeptic", "researcher", "research_argument", stance="bear")["stance"] == "bear"
    v2 = custom("technical_analyst_v2", "analyst", "analyst_report")
    assert "own read of the data" in v2["summary"]
    assert v2["score"] != ask(snap, "x", "technical_analyst", {})["score"]
