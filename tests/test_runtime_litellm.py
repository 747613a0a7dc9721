"""The TradingAgents firm through litellm's real HTTP path against the fake OpenAI server on
127.0.0.1, driven by the `flowkit` command line in-process. Each test reads back what the DuckDB
event log recorded: model_calls (attempts, errors, answering model, cache flag, tokens), steps,
the decision and the run's status."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import WORKFLOWS, dicts, model_calls, only, steps

from flowkit.cli import main
from flowkit.testing.fakeserver import (
    Answer,
    CallTools,
    Fail,
    FakeOpenAIServer,
    Hang,
    Malformed,
    RateLimited,
    Violating,
)

pytestmark = pytest.mark.usefixtures("http_path")  # lean and litellm transports alike

TA = str(WORKFLOWS / "tradingagents.yaml")
AGENTS = 14  # model calls of one TradingAgents decision: 4 analysts, 2x2 debate, judge, trader,
#              3 risk debaters, portfolio manager
ANALYSTS = ["market_analyst", "fundamentals_analyst", "news_analyst", "sentiment_analyst"]


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def flowkit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_ta(capsys: pytest.CaptureFixture[str], srv: FakeOpenAIServer, db: Path, *extra: str,
           model: str | None = "openai/fake", cache: str = "off") -> tuple[int, str, str]:
    args = ["run", TA, "--api-base", srv.base_url, "--db", db, "--cache", cache, "--quiet", *extra]
    if model:
        args += ["--model", model]
    return flowkit(capsys, *args)


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def the_run(db: Path) -> dict[str, Any]:
    [row] = dicts(db, "SELECT * FROM runs")
    return row


def agent_steps(db: Path, run_id: str) -> list[dict[str, Any]]:
    return [r for r in steps(db, run_id) if r["pattern"] == "agent"]


def retried_step(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The one step that needed more than one attempt, its rows by attempt."""
    [step_id] = {c["step_id"] for c in calls if c["attempt"] > 1}
    return sorted(only(calls, step_id=step_id), key=lambda c: c["attempt"])


def assert_completed_with_decision(db: Path, run: dict[str, Any]) -> dict[str, Any]:
    assert run["status"] == "completed" and run["error"] is None
    rows = agent_steps(db, run["run_id"])
    assert len(rows) == AGENTS and {r["status"] for r in rows} == {"ok"}
    [decision] = dicts(db, "SELECT * FROM decisions WHERE run_id = ?", [run["run_id"]])
    assert decision["agent"] == "portfolio_manager" and decision["symbol"] == "AAPL"
    assert decision["action"] in ("BUY", "SELL", "HOLD")
    return decision


def system_of(req: Any) -> str:
    return next(m["content"] for m in req.messages if m["role"] == "system")


def test_happy_path(capsys, srv: FakeOpenAIServer, tmp_path: Path) -> None:
    srv.latency_ms = 150
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db)
    assert code == 0, err
    run = the_run(db)
    decision = assert_completed_with_decision(db, run)
    # The fake answers the minimal valid instance: action enum's first value, size mid-range.
    assert (decision["action"], decision["size_pct"]) == ("BUY", 50.0)
    calls = model_calls(db, run["run_id"])
    assert len(calls) == AGENTS == len(srv.requests)
    for c in calls:
        assert (c["attempt"], c["error"], c["model"], c["cached"]) == (1, None, "openai/fake", False)
        assert c["prompt_tokens"] > 0 and c["completion_tokens"] > 0
        assert json.loads(c["response"])  # the raw JSON the server sent
    # What went over the wire is what was logged, with the output schema as response_format.
    assert sorted(json.dumps(r.messages) for r in srv.requests) == sorted(
        json.dumps(c["request"]["messages"]) for c in calls)
    assert all(r.schema is not None and r.response_format["type"] == "json_schema"
               for r in srv.requests)
    # The four analysts were in flight at the same time: each request arrived before any of
    # them had been answered.
    sent = {system_of(r).split("'")[1]: r for r in srv.requests}
    analysts = [sent[a] for a in ANALYSTS]
    assert max(r.received_at for r in analysts) < min(r.received_at + r.handled_ms / 1000
                                                     for r in analysts)


@pytest.mark.parametrize("behaviour, error", [
    (RateLimited(retry_after=2.5), "RateLimitError"),
    (Fail(500), "500"),
], ids=["429-retry-after", "500"])
def test_transient_http_error_is_retried(capsys, srv: FakeOpenAIServer, tmp_path: Path,
                                         behaviour: Any, error: str) -> None:
    srv.script(behaviour)
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db)
    assert code == 0, err
    run = the_run(db)
    assert_completed_with_decision(db, run)
    calls = model_calls(db, run["run_id"])
    assert len(calls) == AGENTS + 1 == len(srv.requests)
    first, second = retried_step(calls)
    assert first["attempt"] == 1 and error in first["error"] and first["response"] is None
    assert second["attempt"] == 2 and second["error"] is None and second["completion_tokens"] > 0
    assert first["agent"] in ANALYSTS  # the first request of the run is an analyst's
    [step] = only(steps(db, run["run_id"]), step_id=first["step_id"])
    assert step["status"] == "ok"
    if isinstance(behaviour, RateLimited):  # the retry waited as long as the server asked
        tries = [r for r in srv.requests if system_of(r).startswith(f"You are '{first['agent']}'")]
        assert len(tries) == 2
        assert tries[1].received_at - tries[0].received_at >= behaviour.retry_after


def test_timeout_is_retried(capsys, srv: FakeOpenAIServer, tmp_path: Path) -> None:
    srv.script(Hang(delay=60))
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, "--set", "models.default.timeout=1",
                          "--set", "models.deep.timeout=1")
    assert code == 0, err
    run = the_run(db)
    assert_completed_with_decision(db, run)
    first, second = retried_step(model_calls(db, run["run_id"]))
    assert "timeout" in first["error"].lower() or "timed out" in first["error"].lower()
    assert first["latency_ms"] >= 1000  # it was abandoned at the profile's timeout
    assert second["error"] is None and second["attempt"] == 2


@pytest.mark.parametrize("behaviour, problem", [
    (Malformed(), "not valid JSON"),
    (Violating(), "signal"),  # the first required field of an analyst report, mistyped
], ids=["malformed", "schema-violating"])
def test_invalid_output_is_reasked_then_valid(capsys, srv: FakeOpenAIServer, tmp_path: Path,
                                              behaviour: Any, problem: str) -> None:
    srv.script(behaviour)
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db)
    assert code == 0, err
    run = the_run(db)
    assert_completed_with_decision(db, run)
    first, second = retried_step(model_calls(db, run["run_id"]))
    # The bad answer is kept, with why it was refused; the re-ask shows the model both.
    assert first["error"].startswith("output invalid:") and problem in first["error"]
    assert first["response"] and "\n" not in first["error"]
    reask = second["request"]["messages"]
    assert reask[-2] == {"role": "assistant", "content": first["response"]}
    assert reask[-1]["role"] == "user" and "did not validate" in reask[-1]["content"]
    assert second["error"] is None
    [step] = only(steps(db, run["run_id"]), step_id=first["step_id"])
    assert step["status"] == "ok"
    assert len(srv.requests) == AGENTS + 1


def test_output_that_never_validates_fails_the_step_cleanly(capsys, srv: FakeOpenAIServer,
                                                            tmp_path: Path) -> None:
    srv.default(Violating(), model="fake")
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, "--set", "runtime.output_attempts=2")
    assert code == 1
    assert err.count("\n") == 1 and "did not match" in err and "Traceback" not in err
    run = the_run(db)
    assert run["status"] == "failed" and "after 2 attempts" in run["error"]
    # The analysts' parallel continues past a failed analyst, but not past all four.
    rows = agent_steps(db, run["run_id"])
    assert {r["agent"]: r["status"] for r in rows} == {a: "failed" for a in ANALYSTS}


def test_fallback_to_the_second_model(capsys, srv: FakeOpenAIServer, tmp_path: Path) -> None:
    srv.default(Fail(503), model="fake")
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, *sets(
        "models.default.model=openai/fake", "models.deep.model=openai/fake",
        "models.default.retries=0", "models.deep.retries=1", "models.backup.model=openai/backup",
        "models.backup.temperature=0.7", "models.backup.max_tokens=333",
        "models.default.fallbacks=[backup]", "models.deep.fallbacks=[backup]"), model=None)
    assert code == 0, err
    run = the_run(db)
    assert_completed_with_decision(db, run)
    calls = model_calls(db, run["run_id"])
    by_step: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        by_step.setdefault(c["step_id"], []).append(c)
    assert len(by_step) == AGENTS
    tried_primary = 0
    for rows in by_step.values():
        rows.sort(key=lambda c: c["attempt"])
        deep = rows[0]["agent"] in ("research_manager", "portfolio_manager")
        failed = rows[:-1]
        # The primary and its retries, then the fallback; once the primary failed 3 calls in a
        # row its circuit opens and later calls go straight to the fallback.
        assert len(failed) == (2 if deep else 1) or (not deep and not failed)
        tried_primary += bool(failed) and not deep
        assert all(c["model"] == "openai/fake" and "503" in c["error"] for c in failed)
        assert [c["attempt"] for c in rows] == list(range(1, len(rows) + 1))
        answered = rows[-1]
        assert (answered["model"], answered["error"]) == ("openai/backup", None)
    assert 3 <= tried_primary < AGENTS - 2
    assert {r.model for r in srv.requests} == {"fake", "backup"}
    # Each profile is called with its own settings: the fallback's, not the primary's.
    settings = {(r.model, r.body["temperature"], r.body["max_tokens"]) for r in srv.requests}
    assert settings == {("fake", 0.2, 1200), ("fake", 0.0, 2000), ("backup", 0.7, 333)}


def test_a_failing_analyst_is_recorded_and_the_debate_still_runs(capsys, srv: FakeOpenAIServer,
                                                                 tmp_path: Path) -> None:
    srv.default(Fail(500), model="broken")
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, *sets(
        "models.default.model=openai/fake", "models.deep.model=openai/fake",
        "models.broken.model=openai/broken", "models.broken.retries=0",
        "agents.news_analyst.model=broken"), model=None)
    assert code == 0, err
    run = the_run(db)
    assert run["status"] == "completed"
    rows = agent_steps(db, run["run_id"])
    [news] = only(rows, agent="news_analyst")
    assert news["status"] == "failed" and "500" in news["error"]
    assert len(rows) == AGENTS and [r for r in rows if r["status"] != "ok"] == [news]
    [call] = only(model_calls(db, run["run_id"]), agent="news_analyst")
    assert (call["model"], call["attempt"]) == ("openai/broken", 1) and "500" in call["error"]
    [parallel] = [r for r in steps(db, run["run_id"]) if r["pattern"] == "parallel"]
    assert list(parallel["output"]["failed"]) == ["news_analyst"]
    assert [r["agent"] for r in rows if r["step_id"].startswith("research_debate/")] == [
        "bull", "bear", "bull", "bear", "research_manager"]
    bull_prompt = next(r for r in srv.requests if system_of(r).startswith("You are 'bull'"))
    assert "news_analyst" not in json.dumps(bull_prompt.messages[1:])
    assert dicts(db, "SELECT count(*) AS n FROM decisions")[0]["n"] == 1


def test_tool_calls_run_against_the_decision_time_view(capsys, srv: FakeOpenAIServer,
                                                       tmp_path: Path) -> None:
    srv.script(CallTools(calls=(("price_history", {"n": 3}), ("no_such_tool", {}))),
               model="tooluser")
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, *sets(
        "models.default.model=openai/fake", "models.deep.model=openai/fake",
        "models.tooluser.model=openai/tooluser", "agents.market_analyst.model=tooluser",
        "agents.market_analyst.tools=[price_history, indicators]"), model=None)
    assert code == 0, err
    run = the_run(db)
    assert_completed_with_decision(db, run)
    asked, answered = [r for r in srv.requests if r.model == "tooluser"]
    assert [t["function"]["name"] for t in asked.tools] == ["price_history", "indicators"]
    results = [m for m in answered.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == ["call_0", "call_1"]
    history, unknown = (json.loads(m["content"]) for m in results)
    [decision] = dicts(db, "SELECT CAST(as_of AS DATE)::VARCHAR AS day FROM decisions")
    assert len(history["close"]) == 3 and history["time"][-1][:10] == decision["day"]
    assert "unknown tool 'no_such_tool'" in unknown["error"]
    calls = sorted(only(model_calls(db, run["run_id"]), agent="market_analyst"),
                   key=lambda c: c["attempt"])
    assert [c["attempt"] for c in calls] == [1, 2]
    assert [c["name"] for c in json.loads(calls[0]["response"])] == ["price_history", "no_such_tool"]
    assert calls[0]["request"]["tools"] == ["price_history", "indicators"]
    assert calls[1]["error"] is None and json.loads(calls[1]["response"])["signal"]


def test_replay_makes_no_http_requests_and_reproduces_the_decisions(capsys, srv: FakeOpenAIServer,
                                                                    tmp_path: Path) -> None:
    # The first analyst to ask answers last: the original's analysts finish out of order, the
    # replay's (cache hits) in order. Prompts, and so cache keys, must not depend on that.
    srv.script(Answer(delay=0.3))
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, cache="read_write")
    assert code == 0, err
    [original] = dicts(db, "SELECT run_id FROM runs")
    assert len(srv.requests) == AGENTS
    code, out, err = flowkit(capsys, "replay", original["run_id"], "--db", db)
    assert code == 0, err
    assert len(srv.requests) == AGENTS  # the provider, still up, got nothing
    assert "identical to the original" in out and "0 provider calls" in out
    [replay] = dicts(db, "SELECT * FROM runs WHERE parent_run_id = ?", [original["run_id"]])
    assert (replay["mode"], replay["status"]) == ("replay", "completed")
    calls = model_calls(db, replay["run_id"])
    assert len(calls) == AGENTS and all(c["cached"] and c["error"] is None for c in calls)
    assert {c["model"] for c in calls} == {"openai/fake"}
    cols = "symbol, as_of, agent, action, size_pct, confidence, entry, stop_loss, take_profit, reasoning"
    before = dicts(db, f"SELECT {cols} FROM decisions WHERE run_id = ?", [original["run_id"]])
    after = dicts(db, f"SELECT {cols} FROM decisions WHERE run_id = ?", [replay["run_id"]])
    assert before == after and len(after) == 1
    outputs = "SELECT step_id, output FROM steps WHERE run_id = ? AND pattern = 'agent' ORDER BY step_id"
    assert dicts(db, outputs, [original["run_id"]]) == dicts(db, outputs, [replay["run_id"]])


def test_replay_works_with_the_provider_gone(capsys, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as first:
        code, _, err = run_ta(capsys, first, db, cache="read_write")
        assert code == 0, err
    [original] = dicts(db, "SELECT run_id FROM runs")
    code, out, err = flowkit(capsys, "replay", original["run_id"], "--db", db)
    assert code == 0, err
    assert "identical to the original" in out and "0 provider calls" in out


def test_replay_miss_fails_cleanly(capsys, srv: FakeOpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, cache="off")  # nothing cached
    assert code == 0, err
    [original] = dicts(db, "SELECT run_id FROM runs")
    sent = len(srv.requests)
    code, out, err = flowkit(capsys, "replay", original["run_id"], "--db", db)
    assert code == 1
    assert len(srv.requests) == sent  # a miss is not sent to the provider
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and "no cached response for agent '" in err
    [replay] = dicts(db, "SELECT * FROM runs WHERE parent_run_id = ?", [original["run_id"]])
    assert replay["status"] == "failed" and "no cached response" in replay["error"]
    assert dicts(db, "SELECT * FROM decisions WHERE run_id = ?", [replay["run_id"]]) == []


def test_token_budget_stops_the_run(capsys, srv: FakeOpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, _, err = run_ta(capsys, srv, db, "--set", "runtime.max_tokens=4000")
    assert code == 1
    assert err.count("\n") == 1 and "token budget exceeded" in err and "limit 4000" in err
    run = the_run(db)
    assert run["status"] == "budget_exceeded" and "token budget exceeded" in run["error"]
    calls = model_calls(db, run["run_id"])
    assert 0 < len(calls) < AGENTS and len(srv.requests) < AGENTS  # it stopped early
    assert sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls) > 4000
    assert dicts(db, "SELECT * FROM decisions") == []


SECRET = "sk-test-SECRET-0123456789abcdefABCDEF"


def test_api_key_is_sent_but_never_stored(capsys, srv: FakeOpenAIServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # One answer echoes the key (a model can repeat anything it was given): refused as invalid
    # output, logged, and re-asked.
    srv.script(Answer(content=f"my key is {SECRET}"))
    db = tmp_path / "log.duckdb"
    code, out, err = run_ta(capsys, srv, db, "--set", "models.default.api_key_env=OPENAI_API_KEY",
                            "--set", "models.deep.api_key_env=OPENAI_API_KEY")
    assert code == 0, err
    assert {r.headers.get("authorization") for r in srv.requests} == {f"Bearer {SECRET}"}
    run = the_run(db)
    assert_completed_with_decision(db, run)
    [echo, _] = retried_step(model_calls(db, run["run_id"]))
    assert echo["response"] is not None and "my key is" in echo["response"]
    config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
    assert config["workflow"]["models"]["default"]["api_key_env"] == "OPENAI_API_KEY"
    files = [Path(p) for p in glob.glob(f"{db}*")]
    assert files
    for f in files:
        data = f.read_bytes()
        assert SECRET.encode() not in data and SECRET[8:].encode() not in data, f
    assert SECRET not in out + err
