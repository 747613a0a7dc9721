"""The fake OpenAI server on its own: schema instances, scripted behaviours, recording.
Plain http.client against the threaded server (no proxies, loopback only)."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any

import jsonschema
import pytest

from flowkit.testing.fakeserver import (Answer, CallTools, Fail, FakeOpenAIServer, Malformed,
                                    RateLimited, Violating, instance)
from flowkit.roles.outputs import OUTPUTS

SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
        "size": {"type": "number", "minimum": 0, "maximum": 100},
        "reason": {"type": "string", "minLength": 20, "maxLength": 40},
    },
    "required": ["action", "size", "reason"],
}


def post(srv: FakeOpenAIServer, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    finally:
        conn.close()


def chat(model: str = "fake", schema: dict | None = SCHEMA, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    if schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "out", "schema": schema}}
    return {**body, **extra}


def content(payload: dict[str, Any]) -> str:
    return payload["choices"][0]["message"]["content"]


@pytest.fixture
def srv():
    with FakeOpenAIServer() as server:
        yield server


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_instance_validates_against_every_builtin_output(name: str) -> None:
    model = OUTPUTS[name]
    model.model_validate(instance(model.model_json_schema()))


def test_instance_rules() -> None:
    schema = {
        "$defs": {"Leg": {"type": "object", "properties": {"qty": {"type": "integer",
                                                                    "exclusiveMinimum": 0}}}},
        "type": "object",
        "properties": {
            "legs": {"type": "array", "items": {"$ref": "#/$defs/Leg"}, "minItems": 2},
            "note": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 3}]},
            "side": {"const": "long"},
            "level": {"type": "number", "maximum": -5},
            "day": {"type": "string", "format": "date"},
            "flag": {"type": ["null", "boolean"]},
        },
    }
    value = instance(schema)
    jsonschema.validate(value, schema)
    assert value["legs"] == [{"qty": 1}, {"qty": 1}]
    assert value["side"] == "long" and value["level"] == -5 and value["flag"] is False


def test_default_answer_is_a_valid_instance_with_usage(srv: FakeOpenAIServer) -> None:
    status, _, payload = post(srv, chat())
    assert status == 200
    answer = json.loads(content(payload))
    jsonschema.validate(answer, SCHEMA)
    assert answer["action"] == "BUY" and answer["size"] == 50
    usage = payload["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert srv.requests[0].schema == SCHEMA and srv.requests[0].model == "fake"


def test_without_schema_answers_text_or_empty_object(srv: FakeOpenAIServer) -> None:
    assert content(post(srv, chat(schema=None))[2]) == "fake answer"
    json_mode = chat(schema=None, response_format={"type": "json_object"})
    assert content(post(srv, json_mode)[2]) == "{}"


def test_errors_and_broken_answers(srv: FakeOpenAIServer) -> None:
    srv.script(RateLimited(retry_after=2.5), Fail(503), Malformed(), Violating())
    status, headers, body = post(srv, chat())
    assert (status, headers["retry-after"], body["error"]["code"]) == (429, "2.5",
                                                                       "rate_limit_exceeded")
    assert post(srv, chat())[0] == 503
    with pytest.raises(json.JSONDecodeError):
        json.loads(content(post(srv, chat())[2]))
    bad = json.loads(content(post(srv, chat())[2]))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    assert post(srv, chat())[0] == 200  # the script is used up: back to answering


def test_tool_calls_default_to_the_first_tool(srv: FakeOpenAIServer) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_price", "parameters": {"type": "object", "properties": {
            "symbol": {"type": "string"}, "days": {"type": "integer", "minimum": 5}}}}}]
    srv.script(CallTools(), CallTools(calls=(("a", {"x": 1}), ("b", {}))))
    first = post(srv, chat(tools=tools))[2]["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_price"
    assert json.loads(call["function"]["arguments"]) == {"symbol": "fake text", "days": 5}
    calls = post(srv, chat(tools=tools))[2]["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"]) for c in calls] == [("call_0", "a"), ("call_1", "b")]
    assert srv.requests[0].tools == tools


def test_per_model_script_and_default(srv: FakeOpenAIServer) -> None:
    srv.default(Fail(500), model="down")
    srv.script(Answer({"hello": "one"}), model="up")
    srv.script(Answer("any model"))
    assert content(post(srv, chat("up"))[2]) == '{"hello": "one"}'  # the model's queue first
    assert content(post(srv, chat("down"))[2]) == "any model"        # then the shared queue
    assert post(srv, chat("down"))[0] == 500                         # then the model's default
    assert post(srv, chat("down"))[0] == 500
    assert post(srv, chat("up"))[0] == 200                           # else the global default
    assert [r.model for r in srv.requests] == ["up", "down", "down", "down", "up"]


def test_unknown_route_is_404(srv: FakeOpenAIServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    conn.request("GET", "/v1/models")
    assert conn.getresponse().status == 404
    conn.close()


async def test_async_server_and_latency() -> None:
    async with FakeOpenAIServer(latency_ms=50) as server:
        started = time.perf_counter()
        status, _, _ = await asyncio.to_thread(post, server, chat())
        assert status == 200
        assert time.perf_counter() - started >= 0.05
        assert server.requests[0].handled_ms >= 50
