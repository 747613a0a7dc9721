"""RemoteModel through litellm's real HTTP path against the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, AsyncIterator, Callable

import jsonschema
import pytest

from flowkit.errors import CacheMiss, ConfigError, ModelError
from flowkit.llm.base import ModelRequest
from flowkit.llm.cache import CachedModel, MemoryCacheStore
from flowkit.testing.fakeserver import (Answer, CallTools, Fail, FakeOpenAIServer, Hang, Malformed,
                                    RateLimited, Violating)
from flowkit.llm.limits import Limiter
from flowkit.llm.remote import RemoteModel
from flowkit.spec.models import ModelProfile

pytestmark = pytest.mark.usefixtures("http_path")  # lean and litellm transports alike

SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "reasoning": {"type": "string", "minLength": 1},
    },
    "required": ["action", "confidence", "reasoning"],
}
TOOLS = [{"type": "function", "function": {
    "name": "get_price", "description": "Last close of a symbol.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                   "required": ["symbol"]}}}]

MakeModel = Callable[..., RemoteModel]


def request(text: str = "Decide on AAPL.", **overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = dict(agent="trader", role="trader",
                                  messages=[{"role": "user", "content": text}],
                                  output_name="trade proposal", output_schema=SCHEMA)
    return ModelRequest(**{**fields, **overrides})


@pytest.fixture
async def srv() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
async def make_model(srv: FakeOpenAIServer) -> AsyncIterator[MakeModel]:
    """RemoteModel factory: profiles are (name on the server, overrides) pairs; fast backoff."""
    models: list[RemoteModel] = []

    def make(*names: str, backoff: float = 0.01, limiter: Limiter | None = None,
             **profile: Any) -> RemoteModel:
        profiles = [ModelProfile(model=f"openai/{n}", api_base=srv.base_url,
                                 **{"timeout": 5, "retries": 2, **profile})
                    for n in names or ("fake",)]
        model = RemoteModel(profiles[0], profiles[1:], limiter=limiter, backoff=backoff)
        models.append(model)
        return model

    yield make
    for model in models:
        await model.aclose()


async def test_happy_path(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    model = make_model(temperature=0.3, max_tokens=321)
    response = await model.complete(request(seed=7))

    jsonschema.validate(json.loads(response.content), SCHEMA)
    assert response.model == "openai/fake" and not response.cached
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    assert response.cost_usd == 0.0  # unknown to litellm's price table: zero, not a crash
    [attempt] = response.attempts
    assert attempt.error is None and attempt.response == response.content
    assert attempt.prompt_tokens == response.prompt_tokens

    [sent] = srv.requests
    assert sent.model == "fake"
    assert sent.response_format == {"type": "json_schema", "json_schema": {
        "name": "trade_proposal", "schema": SCHEMA, "strict": False}}
    assert sent.messages == [{"role": "user", "content": "Decide on AAPL."}]
    assert (sent.body["temperature"], sent.body["max_tokens"], sent.body["seed"]) == (0.3, 321, 7)
    assert sent.headers["authorization"] == "Bearer sk-local"
    assert sent.tools is None


async def test_request_values_override_profile_and_no_schema_means_no_format(
        srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    model = make_model(temperature=0.3)
    await model.complete(request(output_schema=None, temperature=0.9, max_tokens=11))
    sent = srv.requests[0]
    assert "response_format" not in sent.body and "seed" not in sent.body
    assert (sent.body["temperature"], sent.body["max_tokens"]) == (0.9, 11)


async def test_known_model_is_priced(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    response = await make_model("gpt-4o-mini").complete(request())
    assert response.cost_usd > 0
    assert response.attempts[0].cost_usd == response.cost_usd


async def test_api_key_from_env(srv: FakeOpenAIServer, make_model: MakeModel,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-from-env")
    await make_model(api_key_env="FAKE_LLM_KEY").complete(request())
    assert srv.requests[0].headers["authorization"] == "Bearer sk-from-env"
    monkeypatch.delenv("FAKE_LLM_KEY")
    with pytest.raises(ConfigError, match="FAKE_LLM_KEY"):
        await make_model(api_key_env="FAKE_LLM_KEY").complete(request())


async def test_429_honours_retry_after(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    srv.script(RateLimited(retry_after=0.4))
    model = make_model(backoff=10)  # a backoff wait would take 10 s: only Retry-After is this short
    response = await model.complete(request())

    assert len(srv.requests) == 2
    assert 0.4 <= srv.requests[1].received_at - srv.requests[0].received_at < 2.0
    failed, ok = response.attempts
    assert "RateLimitError" in failed.error and failed.prompt_tokens == 0
    assert ok.error is None and response.content == ok.response


async def test_retry_after_is_capped(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    srv.script(RateLimited(retry_after=600))
    model = make_model()
    model.retry_after_cap = 0.05
    await model.complete(request())
    assert srv.requests[1].received_at - srv.requests[0].received_at < 1.0


async def test_500_then_success(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    srv.script(Fail(500), Fail(502))
    response = await make_model().complete(request())
    assert [a.error is None for a in response.attempts] == [False, False, True]
    assert "InternalServerError" in response.attempts[0].error
    assert response.latency_ms >= sum(a.latency_ms for a in response.attempts)


async def test_timeout_then_success(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    srv.script(Hang(30))
    response = await make_model(timeout=0.3).complete(request())
    hung, ok = response.attempts
    assert "Timeout" in hung.error and 250 <= hung.latency_ms < 2000
    assert ok.error is None


async def test_fallback_after_first_model_keeps_failing(srv: FakeOpenAIServer,
                                                        make_model: MakeModel) -> None:
    srv.default(Fail(503), model="primary")
    response = await make_model("primary", "backup", retries=1).complete(request())

    assert response.model == "openai/backup"
    assert [r.model for r in srv.requests] == ["primary", "primary", "backup"]
    assert [(a.model, a.error is None) for a in response.attempts] == [
        ("openai/primary", False), ("openai/primary", False), ("openai/backup", True)]


async def test_client_error_skips_retries_but_not_fallbacks(srv: FakeOpenAIServer,
                                                            make_model: MakeModel) -> None:
    srv.default(Fail(400), model="primary")
    response = await make_model("primary", "backup").complete(request())
    assert [r.model for r in srv.requests] == ["primary", "backup"]
    assert "BadRequestError" in response.attempts[0].error


async def test_all_failing_raises_model_error_with_attempts(srv: FakeOpenAIServer,
                                                            make_model: MakeModel) -> None:
    srv.default(Fail(500))
    with pytest.raises(ModelError, match="trader") as caught:
        await make_model("primary", "backup", retries=1).complete(request())
    attempts = caught.value.attempts  # type: ignore[attr-defined]
    assert [a.model for a in attempts] == ["openai/primary"] * 2 + ["openai/backup"] * 2
    assert all(a.error for a in attempts)


async def test_connection_refused_is_retried_then_reported() -> None:
    async with FakeOpenAIServer() as dead:
        pass  # stopped: its port now refuses connections
    model = RemoteModel(ModelProfile(model="openai/fake", api_base=dead.base_url, retries=1),
                         backoff=0.01)
    try:
        with pytest.raises(ModelError) as caught:
            await model.complete(request())
        assert len(caught.value.attempts) == 2  # type: ignore[attr-defined]
    finally:
        await model.aclose()


@pytest.mark.parametrize("behaviour", [Malformed(), Violating()])
async def test_bad_json_is_returned_as_text(srv: FakeOpenAIServer, make_model: MakeModel,
                                            behaviour: Any) -> None:
    srv.script(behaviour)
    response = await make_model().complete(request())
    assert len(response.attempts) == 1 and response.content  # the agent layer re-asks
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(response.content), SCHEMA)


async def test_tool_calls_are_parsed(srv: FakeOpenAIServer, make_model: MakeModel) -> None:
    srv.script(CallTools(calls=(("get_price", {"symbol": "AAPL"}),
                                ("get_price", {"symbol": "MSFT"}))))
    response = await make_model().complete(request(tools=TOOLS))

    assert srv.requests[0].tools == TOOLS
    assert response.content == ""
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("call_0", "get_price", {"symbol": "AAPL"}), ("call_1", "get_price", {"symbol": "MSFT"})]
    assert json.loads(response.attempts[0].response)[0]["name"] == "get_price"


async def test_cache_read_write_then_replay_with_server_stopped(make_model: MakeModel) -> None:
    store = MemoryCacheStore()
    async with FakeOpenAIServer() as server:
        profile = ModelProfile(model="openai/fake", api_base=server.base_url, retries=0)
        live = CachedModel(RemoteModel(profile), store, "read_write")
        server.script(Answer({"action": "SELL", "confidence": 0.9, "reasoning": "first"}))
        first = await live.complete(request())
        again = await live.complete(request())
        await live.aclose()
        assert len(server.requests) == 1
    assert not first.cached and first.cache_key == again.cache_key
    assert again.cached and again.cost_usd == 0 and again.latency_ms < 50
    assert again.content == first.content and again.attempts[0].cached

    replay = CachedModel(RemoteModel(profile), store, "replay")  # same profile, server gone
    replayed = await replay.complete(request())
    assert replayed.cached and json.loads(replayed.content)["reasoning"] == "first"
    with pytest.raises(CacheMiss, match="trader"):
        await replay.complete(request("A prompt never sent before."))
    await replay.aclose()


async def test_limiter_caps_concurrency_and_paces_rpm(make_model: MakeModel) -> None:
    async with FakeOpenAIServer(latency_ms=50) as server:
        limiter = Limiter(concurrency=2)
        capped = RemoteModel(ModelProfile(model="openai/fake", api_base=server.base_url),
                              limiter=limiter)
        await asyncio.gather(*(capped.complete(request(f"call {i}")) for i in range(6)))
        assert server.max_in_flight == 2

        paced = RemoteModel(ModelProfile(model="openai/paced", api_base=server.base_url,
                                          rpm=600), limiter=limiter)  # one call per 0.1 s
        started = time.perf_counter()
        await asyncio.gather(*(paced.complete(request(f"paced {i}")) for i in range(4)))
        assert time.perf_counter() - started >= 0.3
        await capped.aclose()


def test_json_object_when_provider_lacks_schema_support() -> None:
    # No network: only the arguments litellm would receive are inspected.
    model = RemoteModel(ModelProfile(model="ollama/llama3.1"))
    kwargs = model._kwargs(model.profile, request())
    assert kwargs["response_format"] == {"type": "json_object"}
    assert kwargs["max_retries"] == 0 and "api_key" not in kwargs


class _HeaderError(Exception):
    def __init__(self, headers: dict[str, str]):
        self.litellm_response_headers = headers


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: go now
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    from flowkit.llm.remote import _retry_after

    assert _retry_after(_HeaderError(headers)) == expected
