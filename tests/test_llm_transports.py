"""The two transports of a model call (`flowkit.llm.transport`): the lean httpx one for
`openai/<model>` at an api_base and litellm's, behind the one policy (`RemoteModel`). Both send
the same request, read chunked and cut bodies alike, log every attempt of a cancelled call and
count the tokens of answers that were billed but unusable; the lean one never imports litellm."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import dicts, firm, model_calls, steps

from flowkit.cli import main
from flowkit.errors import ModelError
from flowkit.llm import transport
from flowkit.llm.base import ModelRequest
from flowkit.llm.remote import RemoteModel
from flowkit.spec.models import ModelProfile
from flowkit.testing.fakeserver import (
    Answer,
    Chunked,
    EmptyChoices,
    Fail,
    FakeOpenAIServer,
    Hang,
    RateLimited,
    Refusal,
    Truncated,
)

SCHEMA = {"type": "object", "required": ["action", "confidence"], "properties": {
    "action": {"enum": ["BUY", "SELL", "HOLD"]},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}
MARKET = "market: {symbols: [ETH-USDT], source: sample, timeframe: 1d}"
TOOLS = [{"type": "function", "function": {
    "name": "get_price", "description": "Last close of a symbol.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                   "required": ["symbol"]}}}]


def request(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = dict(agent="trader", role="trader", output_name="trade proposal",
                                  output_schema=SCHEMA,
                                  messages=[{"role": "user", "content": "Decide on ETH-USDT."}])
    return ModelRequest(**{**fields, **overrides})


@pytest.fixture
async def srv() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


def model(srv: FakeOpenAIServer, name: str = "fake", **profile: Any) -> RemoteModel:
    return RemoteModel(ModelProfile(model=f"openai/{name}", api_base=srv.base_url,
                                    **{"retries": 2, "timeout": 5, **profile}), backoff=0.01)


# ---------------------------------------------------------------- one request, two transports


@pytest.mark.parametrize("mode, overrides", [
    ("json_schema", {"seed": 3}),
    ("json_object", {"temperature": 0.9, "max_tokens": 77}),
    ("tools", {}),
    ("tools", {"tools": TOOLS}),
    ("json_schema", {"tools": TOOLS, "seed": 0}),
    ("prompt", {"output_schema": None}),
], ids=["schema-seed", "object", "answer-tool", "answer-tool-and-agent-tools", "schema-tools",
        "no-schema"])
async def test_both_transports_send_the_same_request(srv: FakeOpenAIServer, mode: str,
                                                     overrides: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sent = []
    for lean in (True, False):
        monkeypatch.setattr(transport, "LEAN_PREFIXES", ("openai/",) if lean else ())
        m = model(srv, "gpt-4o-mini", structured_output=mode)
        response = await m.complete(request(**overrides))
        await m.aclose()
        sent.append((srv.requests[-1].body, srv.requests[-1].headers["authorization"],
                     response.content, response.prompt_tokens, response.cost_usd))
    lean, litellm = sent
    assert lean == litellm


# ---------------------------------------------------------------- bodies as servers send them


@pytest.mark.usefixtures("http_path")
async def test_a_chunked_body_is_read_whole(srv: FakeOpenAIServer) -> None:
    srv.script(Chunked(chunk=7))
    m = model(srv)
    response = await m.complete(request())
    assert json.loads(response.content)["action"] in ("BUY", "SELL", "HOLD")
    assert [a.error for a in response.attempts] == [None]
    await m.aclose()


@pytest.mark.usefixtures("http_path")
async def test_a_body_cut_short_is_a_lost_connection_and_retried(srv: FakeOpenAIServer) -> None:
    srv.script(Truncated(keep=30))
    m = model(srv)
    response = await m.complete(request())
    cut, ok = response.attempts
    assert cut.error.startswith(f"connection to {srv.base_url} lost before an answer")
    assert ok.error is None and len(srv.requests) == 2
    await m.aclose()


@pytest.mark.parametrize("body, content, tokens", [
    ({"choices": [{"message": {"content": {"action": "HOLD"}}}]}, '{"action": "HOLD"}', (0, 0)),
    ({"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": "many",
                                                            "completion_tokens": -3}}, "ok", (0, 0)),
    ({"choices": [{"message": {"content": None, "tool_calls": [
        {"id": "t1", "function": {"name": "get_price", "arguments": None}}]}}],
      "usage": {"prompt_tokens": 7, "completion_tokens": 2}}, "", (7, 2)),
], ids=["object-content", "garbage-usage", "null-arguments"])
def test_a_hostile_completion_body_is_read_without_a_crash(body: dict[str, Any], content: str,
                                                            tokens: tuple[int, int]) -> None:
    answer = transport.read(body, transport.catalog_price("openai/gpt-4o-mini"))
    assert answer.content == content
    assert (answer.prompt_tokens, answer.completion_tokens) == tokens
    assert all(c.arguments == "{}" for c in answer.tool_calls)


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": "none"},
                                  {"choices": [{"message": "text"}]}, {"choices": [None]}],
                         ids=["no-choices", "empty", "string", "message-string", "null-choice"])
def test_a_body_without_a_usable_choice_is_a_retryable_fault(body: dict[str, Any]) -> None:
    from flowkit.llm import faults

    with pytest.raises(faults.ProviderFault) as caught:
        transport.read(body, transport.catalog_price("openai/fake"))
    assert faults.retryable(caught.value)


async def test_an_endpoint_behind_a_proxy_goes_through_httpx_alike(
        srv: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowkit.llm import openai_compat

    monkeypatch.setattr(openai_compat, "_proxied", lambda url: True)  # as HTTP_PROXY would
    srv.script(RateLimited(retry_after=0.05), Hang(30))
    m = model(srv, timeout=0.3)
    response = await m.complete(request())
    limited, hung, ok = response.attempts
    assert limited.error.startswith("HTTP 429: RateLimitError") and "Timeout" in hung.error
    assert ok.error is None and response.prompt_tokens > 0
    assert {r.headers["authorization"] for r in srv.requests} == {"Bearer sk-local"}
    await m.aclose()


# ---------------------------------------------------------------- keys


@pytest.mark.usefixtures("http_path")
async def test_a_key_goes_only_to_its_own_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-ambient-openai-key-0123456789")
    monkeypatch.setenv("PRIMARY_KEY", "sk-primary-0123456789abcdef")
    monkeypatch.setenv("BACKUP_KEY", "sk-backup-0123456789abcdef")
    async with FakeOpenAIServer() as first, FakeOpenAIServer() as second, \
            FakeOpenAIServer() as third:
        first.default(Fail(503))
        second.default(Fail(503))
        m = RemoteModel(
            ModelProfile(model="openai/a", api_base=first.base_url, api_key_env="PRIMARY_KEY",
                         retries=0),
            [ModelProfile(model="openai/b", api_base=second.base_url, api_key_env="BACKUP_KEY",
                          retries=0),
             ModelProfile(model="openai/c", api_base=third.base_url, retries=0)], backoff=0.01)
        response = await m.complete(request())
        await m.aclose()
        sent = {name: {r.headers["authorization"] for r in srv.requests}
                for name, srv in (("first", first), ("second", second), ("third", third))}
    assert response.model == "openai/c"
    assert sent == {"first": {"Bearer sk-primary-0123456789abcdef"},
                    "second": {"Bearer sk-backup-0123456789abcdef"},
                    "third": {"Bearer sk-local"}}  # never the ambient OPENAI_API_KEY


# ---------------------------------------------------------------- cancelled calls


@pytest.mark.usefixtures("http_path")
async def test_a_cancelled_call_keeps_every_attempt_the_one_in_flight_marked(
        srv: FakeOpenAIServer) -> None:
    srv.script(Fail(503), Hang(30))
    m = model(srv)
    seen: list[Any] = []

    async def call() -> None:  # as the agent step does: it logs what the cancel carries
        try:
            await m.complete(request())
        except asyncio.CancelledError as exc:
            seen.extend(getattr(exc, "attempts", []))
            raise

    task = asyncio.create_task(call())
    while len(srv.requests) < 2:  # the retry is in flight, hanging
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed, in_flight = seen
    assert "HTTP 503" in failed.error
    assert in_flight.error == "cancelled before an answer" and in_flight.response is None
    await m.aclose()


@pytest.mark.usefixtures("http_path")
def test_a_sibling_cancelled_by_a_fast_failure_still_has_its_model_call_row(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    with FakeOpenAIServer() as srv:
        srv.default(Hang(30), model="slow")
        srv.default(Fail(400, delay=0.3), model="broken")  # after the slow call is in flight
        path = firm(tmp_path, f"""{MARKET}
models:
  default: {{model: openai/fake, api_base: "{srv.base_url}", retries: 0}}
  slow: {{model: openai/slow, api_base: "{srv.base_url}", retries: 0}}
  broken: {{model: openai/broken, api_base: "{srv.base_url}", retries: 0}}
agents:
  technical: {{role: technical_analyst, model: slow}}
  news: {{role: news_analyst, model: broken}}
  trader: {{role: trader}}
pipeline:
  - id: analysts
    parallel: {{steps: [technical, news], join: all, on_error: fail_fast}}
  - trader
""")
        capsys.readouterr()
        main(["run", str(path), "--db", str(db), "--cache", "off", "--quiet"])
        assert {r.model for r in srv.requests} >= {"slow", "broken"}
    [run] = dicts(db, "SELECT run_id FROM runs")
    calls = model_calls(db, run["run_id"])
    [slow] = [c for c in calls if c["agent"] == "technical"]
    assert (slow["model"], slow["attempt"]) == ("openai/slow", 1)
    assert slow["error"] == "cancelled before an answer" and slow["response"] is None
    [broken] = [c for c in calls if c["agent"] == "news"]
    assert "HTTP 400" in broken["error"]
    [technical] = [s for s in steps(db, run["run_id"]) if s["agent"] == "technical"]
    assert technical["status"] == "cancelled"


# ---------------------------------------------------------------- billed but unusable


@pytest.mark.usefixtures("http_path")
@pytest.mark.parametrize("fault", [EmptyChoices(), Refusal()], ids=lambda f: type(f).__name__)
async def test_an_unusable_answer_that_was_billed_is_counted(srv: FakeOpenAIServer,
                                                             fault: Any) -> None:
    srv.script(fault)
    m = model(srv, "gpt-4o-mini")  # priced in litellm's table
    if isinstance(fault, Refusal):  # not retried: the failed call carries the bill
        with pytest.raises(ModelError) as caught:
            await m.complete(request())
        [billed] = caught.value.attempts
    else:  # retried: the answer's totals include the empty one
        response = await m.complete(request())
        billed, ok = response.attempts
        assert response.prompt_tokens == billed.prompt_tokens + ok.prompt_tokens
        assert response.completion_tokens == billed.completion_tokens + ok.completion_tokens
        assert response.cost_usd == pytest.approx(billed.cost_usd + ok.cost_usd)
    assert billed.error and billed.prompt_tokens > 0 and billed.completion_tokens > 0
    assert billed.cost_usd > 0
    await m.aclose()


@pytest.mark.usefixtures("http_path")
def test_billed_failures_count_against_the_token_budget(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    def run(srv: FakeOpenAIServer, name: str, *extra: str) -> tuple[int, list[dict[str, Any]]]:
        db = tmp_path / f"{name}.duckdb"
        path = firm(tmp_path, f"""{MARKET}
models:
  default: {{model: openai/fake, api_base: "{srv.base_url}"}}
agents: {{technical: {{role: technical_analyst}}, trader: {{role: trader}}}}
pipeline: [technical, trader]
""", name=f"{name}.yaml")
        capsys.readouterr()
        code = main(["run", str(path), "--db", str(db), "--cache", "off", "--quiet",
                     "--symbol", "MSFT", *extra])
        [row] = dicts(db, "SELECT run_id FROM runs")
        return code, model_calls(db, row["run_id"])

    with FakeOpenAIServer() as srv:
        code, clean = run(srv, "clean")
        assert code == 0
        analyst = sum(c["prompt_tokens"] + c["completion_tokens"] for c in clean
                      if c["agent"] == "technical")
        srv.script(EmptyChoices())  # the analyst's first answer: billed, unusable, retried
        # The answer alone fits the budget; with the billed empty one the trader must not run.
        code, calls = run(srv, "billed", "--set", f"runtime.max_tokens={analyst + 1}")
    err = capsys.readouterr().err
    assert code == 1 and "token budget exceeded" in err, err
    empty, ok = sorted((c for c in calls if c["agent"] == "technical"),
                       key=lambda c: c["attempt"])
    assert "no choices" in empty["error"] and empty["prompt_tokens"] > 0 and ok["error"] is None
    assert not [c for c in calls if c["agent"] == "trader"]


# ---------------------------------------------------------------- start-up


def test_the_lean_transport_never_imports_litellm() -> None:
    code = """
import asyncio, sys
from flowkit.llm.base import ModelRequest
from flowkit.llm.remote import RemoteModel
from flowkit.spec.models import ModelProfile
from flowkit.testing.fakeserver import FakeOpenAIServer

async def main():
    async with FakeOpenAIServer() as srv:
        m = RemoteModel(ModelProfile(model="openai/gpt-4o-mini", api_base=srv.base_url))
        r = await m.complete(ModelRequest(agent="a", role="trader", output_name="x",
                                          output_schema={"type": "object"},
                                          messages=[{"role": "user", "content": "hi"}]))
        await m.aclose()
        print(r.cost_usd > 0, "litellm" in sys.modules)
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]  # priced from the table, litellm not loaded
