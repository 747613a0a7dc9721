"""Cache keys and the cache wrapper, around a stub model (no litellm, no network)."""

from __future__ import annotations

import json

import pytest

from flowkit.errors import CacheMiss, ModelError
from flowkit.llm.base import Attempt, ModelRequest, ModelResponse, ToolCall
from flowkit.llm.cache import CachedModel, MemoryCacheStore, cache_key, request_params
from flowkit.llm.remote import RemoteModel
from flowkit.spec.models import ModelProfile

SCHEMA = {"type": "object", "properties": {"action": {"enum": ["BUY", "SELL"]}}}


class StubModel:
    name = "stub/model"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        calls = [ToolCall(id="c1", name="get_price", arguments='{"symbol": "AAPL"}')]
        content = "" if request.tools else '{"action":"BUY"}'
        return ModelResponse(model="stub/model", content=content,
                             tool_calls=calls if request.tools else [], prompt_tokens=10,
                             completion_tokens=5, cost_usd=0.25, latency_ms=800,
                             attempts=[Attempt(model="stub/model", latency_ms=800, cost_usd=0.25)])

    async def aclose(self) -> None:
        pass


def request(text: str = "hi", **overrides: object) -> ModelRequest:
    fields: dict = dict(agent="bull", role="bull_researcher",
                        messages=[{"role": "user", "content": text}], output_name="out",
                        output_schema=SCHEMA)
    return ModelRequest(**{**fields, **overrides})


def test_cache_key_is_canonical_and_sensitive() -> None:
    messages = [{"role": "user", "content": "hi"}]
    base = cache_key("m", messages, {"a": 1, "b": {"x": 1, "y": 2}})
    reordered = cache_key("m", [{"content": "hi", "role": "user"}], {"b": {"y": 2, "x": 1}, "a": 1})
    assert base == reordered
    assert len(base) == 64
    assert base != cache_key("other", messages, {"a": 1, "b": {"x": 1, "y": 2}})
    assert base != cache_key("m", messages, {"a": 2, "b": {"x": 1, "y": 2}})


def test_request_params_cover_what_shapes_the_answer() -> None:
    keys = {name: cache_key("m", [], request_params(request(**{name: value})))
            for name, value in [("temperature", 0.5), ("max_tokens", 9), ("seed", 1),
                                ("tools", [{"type": "function"}]), ("output_schema", {})]}
    keys["plain"] = cache_key("m", [], request_params(request()))
    assert len(set(keys.values())) == len(keys)
    # context and timeout never reach the model: they must not split the cache
    assert cache_key("m", [], request_params(request(timeout=3, context={"x": 1}))) == keys["plain"]


def test_profile_defaults_enter_the_key() -> None:
    cold, warm = (RemoteModel(ModelProfile(model="openai/x", temperature=t)) for t in (0.0, 0.7))
    assert cold.cache_params(request()) != warm.cache_params(request())
    assert cold.cache_params(request())["max_tokens"] == 1024


async def test_read_write_hit_is_free_and_marked() -> None:
    inner, store = StubModel(), MemoryCacheStore()
    model = CachedModel(inner, store, "read_write")
    first = await model.complete(request())
    hit = await model.complete(request())

    assert inner.calls == 1 and len(store.entries) == 1
    assert not first.cached and first.cache_key == hit.cache_key
    assert hit.cached and hit.cost_usd == 0 and hit.latency_ms < 50
    assert (hit.content, hit.model, hit.prompt_tokens) == (first.content, first.model, 10)
    [attempt] = hit.attempts
    assert attempt.cached and attempt.cost_usd == 0 and attempt.response == hit.content
    assert json.loads(json.dumps(store.entries[hit.cache_key]))  # storable as JSON text


async def test_tool_calls_round_trip() -> None:
    model = CachedModel(StubModel(), MemoryCacheStore(), "read_write")
    tools = [{"type": "function", "function": {"name": "get_price"}}]
    first = await model.complete(request(tools=tools))
    hit = await model.complete(request(tools=tools))
    assert hit.cached and hit.tool_calls == first.tool_calls
    assert json.loads(hit.attempts[0].response)[0]["name"] == "get_price"


async def test_replay_answers_from_store_and_misses_loudly() -> None:
    store = MemoryCacheStore()
    await CachedModel(StubModel(), store, "read_write").complete(request())
    inner = StubModel()
    replay = CachedModel(inner, store, "replay")
    assert (await replay.complete(request())).cached
    with pytest.raises(CacheMiss, match="'bull'") as caught:
        await replay.complete(request("new prompt"))
    assert isinstance(caught.value, ModelError)
    assert inner.calls == 0


async def test_off_bypasses_the_store() -> None:
    inner, store = StubModel(), MemoryCacheStore()
    model = CachedModel(inner, store, "off")
    await model.complete(request())
    response = await model.complete(request())
    assert inner.calls == 2 and not store.entries and not response.cached
