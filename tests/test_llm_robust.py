"""Real models' habits against the fake OpenAI server, through the `flowkit` command line and
the litellm client: structured-output negotiation with an endpoint that refuses json_schema
(llama.cpp's), the repair ladder on hostile answers, held `invalid` decisions, provider faults
named and retried correctly, and a cache that serves only usable answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import WORKFLOWS, dicts, model_calls, steps

from flowkit.cli import main
from flowkit.errors import ModelError
from flowkit.llm.base import ModelRequest
from flowkit.llm.remote import RemoteModel
from flowkit.spec.models import ModelProfile
from flowkit.testing.fakeserver import (
    Answer,
    Drip,
    EmptyChoices,
    Fail,
    FakeOpenAIServer,
    Garbage,
    Refusal,
    Reset,
    Say,
    instance,
)

pytestmark = pytest.mark.usefixtures("http_path")  # lean and litellm transports alike

TA = str(WORKFLOWS / "tradingagents.yaml")
SCHEMA = {"type": "object", "required": ["action", "confidence"], "properties": {
    "action": {"enum": ["BUY", "SELL", "HOLD"]},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def flowkit(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_ta(capsys: pytest.CaptureFixture[str], srv: FakeOpenAIServer, db: Path,
           *extra: str) -> tuple[int, str, str]:
    return flowkit(capsys, "run", TA, "--api-base", srv.base_url, "--db", db, "--cache", "off",
                   "--quiet", "--model", "openai/fake", *extra)


def is_agent(req: Any, agent: str) -> bool:
    return any(m["role"] == "system" and m["content"].startswith(f"You are '{agent}'")
               for m in req.messages)


def answers(agent: str, bad: Any) -> Say:
    """`bad(valid_instance) -> text` for `agent`'s requests, a valid answer for everyone else."""
    def make(req: Any) -> str:
        valid = instance(req.schema or {})
        return bad(valid) if is_agent(req, agent) else json.dumps(valid)
    return Say(make)


def the_run(db: Path) -> dict[str, Any]:
    [row] = dicts(db, "SELECT * FROM runs")
    return row


# ---------------------------------------------------------------- negotiation


def test_an_endpoint_refusing_json_schema_is_negotiated_down_once(capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer(rejects=("json_schema",)) as srv:
        code, _, err = run_ta(capsys, srv, db)
    assert code == 0, err
    run = the_run(db)
    assert run["status"] == "completed"
    modes = [r.mode for r in srv.requests]
    # Each model profile (default, deep) learns once and keeps json_object for the run; only
    # the calls already in flight then (the four concurrent analysts) were refused too.
    assert 2 <= modes.count("json_schema") <= 5
    for max_tokens in (1200, 2000):  # the default and deep profiles
        theirs = [r.mode for r in srv.requests if r.body["max_tokens"] == max_tokens]
        learnt = theirs.index("json_object")
        assert set(theirs[:learnt]) == {"json_schema"} and set(theirs[learnt:]) == {"json_object"}
    assert all(r.schema for r in srv.requests if r.mode == "json_object")  # llama.cpp's form
    calls = model_calls(db, run["run_id"])
    refused = [c for c in calls if c["error"]]
    assert len(refused) == modes.count("json_schema") and all("json_schema refused: using json_object" in c["error"]
                                     and "\n" not in c["error"] for c in refused)
    assert {c["request"]["structured_output"] for c in calls if not c["error"]} == {"json_object"}
    [decision] = dicts(db, "SELECT * FROM decisions")
    assert decision["status"] == "ok"


@pytest.mark.parametrize("mode", ["json_object", "tools", "prompt"])
def test_a_declared_mode_is_used_as_declared(capsys, tmp_path: Path, mode: str) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        code, _, err = run_ta(capsys, srv, db, "--set", f"models.default.structured_output={mode}",
                              "--set", f"models.deep.structured_output={mode}")
        if mode == "prompt":  # nothing asks for JSON: the fake answers prose, repairs cannot help
            assert code == 1 and "invalid" in err and "Traceback" not in err
            return
    assert code == 0, err
    assert {r.mode for r in srv.requests} == {mode}


# ---------------------------------------------------------------- repair ladder


@pytest.mark.parametrize("bad, repair", [
    (lambda v: json.dumps({**v, "confidence": 1.75}), "clamped confidence 1.75 -> 1"),
    (lambda v: f"Here is my decision:\n{json.dumps(v)}\nThanks!", "extracted JSON from prose"),
    (lambda v: f"Sure:\n```json\n{json.dumps(v)}\n```\nDone.", "extracted JSON from a code fence"),
    (lambda v: json.dumps({**v, "confidence": "-0.5"}), "clamped confidence -0.5 -> 0"),
    (lambda v: json.dumps({**v, "action": "hold"}), "action: 'hold' read as 'HOLD'"),
], ids=["out-of-bounds", "prose", "fence", "string-number-clamped", "enum-case"])
def test_hostile_answers_are_repaired_without_a_reask(capsys, tmp_path: Path, bad: Any,
                                                      repair: str) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        srv.default(answers("trader", bad))
        code, _, err = run_ta(capsys, srv, db)
    assert code == 0, err
    run = the_run(db)
    [trader] = [s for s in steps(db, run["run_id"]) if s["agent"] == "trader"]
    assert trader["status"] == "ok" and repair in trader["repairs"]
    assert 0 <= trader["output"]["confidence"] <= 1
    [[count]] = [[r["n"]] for r in dicts(
        db, "SELECT count(*) AS n FROM steps, unnest(CAST(repairs AS VARCHAR[])) AS t(r) "
            "WHERE r = ?", [repair])]
    assert count == 1
    assert len([r for r in srv.requests if is_agent(r, "trader")]) == 1  # no re-ask


def test_a_huge_garbage_answer_is_held_invalid_and_the_reask_is_bounded(capsys,
                                                                       tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    garbage = "garbage " * 250_000  # 2 MB
    with FakeOpenAIServer() as srv:
        srv.default(answers("trader", lambda v: garbage))
        code, _, err = run_ta(capsys, srv, db, "--set", "runtime.max_invalid_share=1")
        trader_requests = [r for r in srv.requests if is_agent(r, "trader")]
    assert code == 0, err
    assert len(trader_requests) == 3  # the first ask and two re-asks, then the policy
    for req in trader_requests[1:]:
        assert len(json.dumps(req.messages)) < 40_000  # the prompt, not 2 MB of echo
        assert "more characters cut" in req.messages[-2]["content"]
    [decision] = dicts(db, "SELECT * FROM decisions")
    assert decision["status"] == "invalid" and decision["action"] == "HOLD"
    assert "trader" in decision["reasoning"] and "after 3 attempts" in decision["reasoning"]


def test_a_run_past_the_invalid_share_fails_with_one_clear_line(capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        srv.default(answers("trader", lambda v: "no idea"))
        code, _, err = run_ta(capsys, srv, db)
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "1 of 1 decisions invalid" in err and "max_invalid_share 5%" in err
    assert the_run(db)["status"] == "failed"


def test_on_invalid_fail_stops_at_the_first_invalid_answer(capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        srv.default(answers("trader", lambda v: "no idea"))
        code, _, err = run_ta(capsys, srv, db, "--set", "runtime.on_invalid=fail",
                              "--set", "runtime.max_invalid_share=1")
    assert code == 1 and "trader" in err and "did not match" in err
    assert not dicts(db, "SELECT * FROM decisions")


# ---------------------------------------------------------------- faults


def request() -> ModelRequest:
    return ModelRequest(agent="trader", role="trader", output_name="trade", output_schema=SCHEMA,
                        messages=[{"role": "user", "content": "Decide on AAPL."}])


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def model(srv: FakeOpenAIServer, **profile: Any) -> RemoteModel:
    return RemoteModel(ModelProfile(model="openai/fake", api_base=srv.base_url,
                                     **{"retries": 2, "timeout": 5, **profile}), backoff=0.01)


@pytest.mark.parametrize("fault, named, retried", [
    (EmptyChoices(), "no choices", True),
    (Garbage(), "the body is not JSON", True),
    (Reset(), "lost before an answer", True),
    (Fail(409), "HTTP 409", True),
    (Fail(503), "HTTP 503", True),
    (Refusal(), "the model refused", False),
    (Fail(400), "HTTP 400", False),
    (Fail(404), "HTTP 404", False),
], ids=lambda v: type(v).__name__ if not isinstance(v, (str, bool)) else str(v))
async def test_faults_are_named_and_retried_only_when_retrying_can_help(
        srv: FakeOpenAIServer, fault: Any, named: str, retried: bool) -> None:
    srv.script(fault)
    m = model(srv)
    try:
        if retried:
            response = await m.complete(request())
            first, ok = response.attempts
            assert named in first.error and "\n" not in first.error and ok.error is None
        else:
            with pytest.raises(ModelError) as caught:
                await m.complete(request())
            [only_try] = caught.value.attempts
            assert named in only_try.error and "\n" not in only_try.error
            assert len(srv.requests) == 1
    finally:
        await m.aclose()


async def test_a_refused_connection_says_cannot_connect() -> None:
    async with FakeOpenAIServer() as dead:
        pass
    m = RemoteModel(ModelProfile(model="openai/fake", api_base=dead.base_url, retries=1),
                     backoff=0.01)
    with pytest.raises(ModelError) as caught:
        await m.complete(request())
    assert all(a.error == f"cannot connect to {dead.base_url}: connection refused"
               for a in caught.value.attempts)
    assert "HTTP 500" not in str(caught.value)
    await m.aclose()


async def test_a_slow_drip_is_cut_at_the_total_deadline(srv: FakeOpenAIServer) -> None:
    srv.script(Drip(interval=0.2, chunk=4))  # each read is quick; the whole would take ~10 s
    m = model(srv, timeout=0.5, retries=1)
    started = time.perf_counter()
    response = await m.complete(request())
    dripped, ok = response.attempts
    assert "Timeout" in dripped.error and dripped.latency_ms < 3000 and ok.error is None
    assert time.perf_counter() - started < 5
    await m.aclose()


async def test_a_primary_that_keeps_failing_is_skipped_during_its_cool_down(
        srv: FakeOpenAIServer) -> None:
    srv.default(Fail(503), model="primary")
    m = RemoteModel(ModelProfile(model="openai/primary", api_base=srv.base_url, retries=1),
                     [ModelProfile(model="openai/backup", api_base=srv.base_url)], backoff=0.01,
                     breaker_failures=2, breaker_cooldown=60)
    for _ in range(5):
        response = await m.complete(request())
        assert response.model == "openai/backup"
    primary = [r for r in srv.requests if r.model == "primary"]
    assert len(primary) == 4  # two calls with a retry each, then the circuit is open
    await m.aclose()


# ---------------------------------------------------------------- cache and replay


def test_only_usable_answers_are_served_from_the_cache_and_replay_reproduces_failures(
        capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        srv.default(answers("trader", lambda v: "no idea"))
        code, _, err = run_ta(capsys, srv, db, "--cache", "read_write",
                              "--set", "runtime.max_invalid_share=1")
        assert code == 0, err
        [original] = dicts(db, "SELECT run_id FROM runs")
        first = len(srv.requests)
        # A replay answers from the cache alone and reproduces the held decision.
        code, out, err = flowkit(capsys, "replay", original["run_id"], "--db", db)
        assert code == 0, err
        assert len(srv.requests) == first
        srv.default(Answer())  # the model got better: a live re-run asks the trader again
        code, _, err = run_ta(capsys, srv, db, "--cache", "read_write")
        assert code == 0, err
        again = srv.requests[first:]
        assert len([r for r in again if is_agent(r, "trader")]) == 1
        # what came before the trader was usable and cached: not asked again
        assert not [r for r in again if any(is_agent(r, a) for a in (
            "market_analyst", "news_analyst", "bull", "bear", "research_manager"))]
    statuses = sorted(r["status"] for r in dicts(db, "SELECT status FROM decisions"))
    assert statuses == ["invalid", "invalid", "ok"]


# ---------------------------------------------------------------- a seeded fault storm


@pytest.mark.slow
@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_a_fault_storm_never_sinks_the_backtest_and_replays_identically(
        capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rate: float) -> None:
    from flowkit.testing.fakeserver import FaultStorm

    monkeypatch.setattr(RemoteModel, "_delay", lambda self, exc, failures: 0.001)
    db = tmp_path / "log.duckdb"
    end = "2025-10-08"
    with FakeOpenAIServer() as srv:
        storm = FaultStorm(rate, seed=11)
        srv.default(storm)
        code, _, err = run_ta(capsys, srv, db, "--symbol", "AAPL", "--symbol", "BTC-USDT",
                              "--start", "2025-09-10", "--end", end, "--cache", "read_write",
                              "--set", "runtime.max_invalid_share=1")
        assert code == 0, err
        sent = len(srv.requests)
    [run] = dicts(db, "SELECT * FROM runs")
    assert run["status"] == "completed"
    decisions = dicts(db, "SELECT * FROM decisions")
    assert len({d["as_of"] for d in decisions}) >= 20 and {d["symbol"] for d in decisions} == {
        "AAPL", "BTC-USDT"}
    for d in decisions:  # held or valid, never garbage
        assert d["status"] in ("ok", "invalid") and d["action"] in ("BUY", "SELL", "HOLD")
        assert 0 <= d["confidence"] <= 1 and 0 <= d["size_pct"] <= 100
    assert any(name != "Answer" for name in storm.drawn)
    calls = dicts(db, "SELECT * FROM model_calls WHERE NOT cached")
    assert len(calls) == sent  # every attempt has its row
    assert all("\n" not in (c["error"] or "") for c in calls)
    code, _, err = flowkit(capsys, "replay", run["run_id"], "--db", db)
    assert code == 0, err  # replay compares its decisions with the original's
