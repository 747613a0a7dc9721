"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for litellm's real client
path. By default every request gets a valid answer: for a `json_schema` response_format, a
minimal instance of the schema, so a whole firm runs against it. Tests script failures:

    with FakeOpenAIServer(latency_ms=5) as srv:          # background thread
        srv.script(RateLimited(retry_after=0.2), Fail(500))  # next two requests, any model
        srv.default(Fail(503), model="primary")          # every request for model "primary"
        ...  api_base=srv.base_url, model="openai/primary" ...
        srv.requests[-1].response_format

    async with FakeOpenAIServer() as srv: ...            # on the running event loop

Models are matched by the name the server receives (litellm strips the `openai/` prefix).
Only loopback is ever bound.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
_Reply = tuple[int, dict[str, str], Any]  # status, extra headers, JSON body


@dataclass
class FakeRequest:
    """One request the server received, for tests to assert on."""

    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    body: dict[str, Any]
    headers: dict[str, str]  # lower-cased names
    received_at: float  # time.monotonic() when the request arrived
    handled_ms: float = 0.0  # the server's own time for this request, latency included

    @property
    def schema(self) -> dict[str, Any] | None:
        """The schema asked for: json_schema's, json_object's `schema` (llama.cpp's form), or
        the parameters of a forced answer tool."""
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            return (rf.get("json_schema") or {}).get("schema")
        if rf.get("type") == "json_object":
            return rf.get("schema")
        forced = (self.body.get("tool_choice") or {}) if isinstance(
            self.body.get("tool_choice"), dict) else {}
        name = (forced.get("function") or {}).get("name")
        for tool in self.tools or []:
            if name and tool.get("function", {}).get("name") == name:
                return tool["function"].get("parameters")
        return None

    @property
    def mode(self) -> str:
        """How the output was asked for: json_schema, json_object, tools or prompt."""
        if self.response_format:
            return str(self.response_format.get("type"))
        return "tools" if self.body.get("tool_choice") else "prompt"


# ---------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Answer:
    """A normal answer. content None: a minimal valid instance of the requested schema (or
    `{}` for json_object, or short text); a dict is sent as JSON text."""

    content: str | dict[str, Any] | None = None
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        if self.content is None:
            return _completion(req, _default_content(req))
        text = self.content if isinstance(self.content, str) else json.dumps(self.content)
        return _completion(req, text)


@dataclass(frozen=True)
class CallTools:
    """A tool-call answer. calls: (name, arguments) pairs; empty: call the request's first tool
    with a minimal instance of its parameters schema."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        calls = self.calls
        if not calls:
            fn = (req.tools or [{}])[0].get("function", {})
            params = fn.get("parameters") or {"type": "object"}
            calls = ((fn.get("name", "tool"), instance(params)),)
        tool_calls = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]
        return _completion(req, None, tool_calls)


@dataclass(frozen=True)
class RateLimited:
    """429 with a Retry-After header (seconds; None sends no header)."""

    retry_after: float | None = 1.0
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        return 429, headers, _error("Rate limit reached", "rate_limit_exceeded")


@dataclass(frozen=True)
class Fail:
    """An HTTP error status (500 by default)."""

    status: int = 500
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return self.status, {}, _error(f"fake server error {self.status}", "server_error")


@dataclass(frozen=True)
class Hang:
    """Hold the request for `delay` seconds (past any sane client timeout), then answer."""

    delay: float = 3600.0

    def reply(self, req: FakeRequest) -> _Reply:
        return Answer().reply(req)


@dataclass(frozen=True)
class Malformed:
    """Content that is not JSON at all (a truncated object)."""

    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return _completion(req, _default_content(req)[:-1] + ', "oops": ')


@dataclass(frozen=True)
class Violating:
    """Valid JSON that breaks the schema: the first required (else first) property gets a value
    of the wrong type; without properties, an array where an object is expected."""

    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        schema = req.schema or {}
        obj = instance(schema) if schema else {}
        props = list(schema.get("properties", {}))
        key = next(iter(schema.get("required", [])), props[0] if props else None)
        if key is None:
            return _completion(req, "[]")
        wrong = 12345 if isinstance(obj.get(key), str) else "not what the schema asked for"
        return _completion(req, json.dumps({**obj, key: wrong}))


@dataclass(frozen=True)
class EmptyChoices:
    """A 200 completion whose `choices` list is empty."""

    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        status, headers, body = _completion(req, "{}")
        return status, headers, {**body, "choices": []}


@dataclass(frozen=True)
class Refusal:
    """The model refuses (OpenAI's `refusal` field, no content)."""

    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        status, headers, body = _completion(req, None)
        body["choices"][0]["message"]["refusal"] = "I can't help with trading decisions."
        return status, headers, body


@dataclass(frozen=True)
class Garbage:
    """A 200 whose body is not JSON at all (a proxy's HTML page, or a body cut short)."""

    body: str = "<html><body>502 Bad Gateway</body></html>"
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return 200, {}, RawBody(self.body)


@dataclass(frozen=True)
class Drip:
    """A valid answer sent a few bytes at a time, `interval` seconds apart: each read is quick,
    the whole answer slow (a client timeout that restarts per read never fires)."""

    interval: float = 0.5
    chunk: int = 8
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return _sent_as(req, "x-drip", f"{self.interval}:{self.chunk}")


@dataclass(frozen=True)
class Chunked:
    """A valid answer sent with `Transfer-Encoding: chunked` (no Content-Length), in pieces of
    `chunk` bytes, as proxies and streaming servers send bodies."""

    chunk: int = 64
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return _sent_as(req, "x-chunked", str(self.chunk))


@dataclass(frozen=True)
class Truncated:
    """A valid answer cut after `keep` bytes of the body its Content-Length announces; then the
    server hangs up."""

    keep: int = 40
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return _sent_as(req, "x-truncate", str(self.keep))


@dataclass(frozen=True)
class Reset:
    """Close the connection without answering."""

    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return 0, {}, None


@dataclass(frozen=True)
class Say:
    """An answer whose text is made from the request (e.g. the schema's minimal instance with a
    field out of bounds): `make(request) -> str`."""

    make: Any
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        return _completion(req, self.make(req))


class Wordy:
    """A valid answer whose free-text fields (no enum or const) are long prose drawn, seeded,
    from `texts`: prompts then grow turn after turn as they do with a real model."""

    def __init__(self, texts: list[str], seed: int = 0) -> None:
        import random

        self.texts, self.delay, self._random = texts, 0.0, random.Random(seed)

    def reply(self, req: FakeRequest) -> _Reply:
        schema, rng = req.schema or {}, self._random
        answer = instance(schema) if schema else {}
        for key, value in list(answer.items()):
            prop = schema.get("properties", {}).get(key, {})
            if isinstance(value, str) and not {"enum", "const", "anyOf"} & set(prop):
                answer[key] = " ".join(rng.choice(self.texts)[:rng.randrange(150, 400)]
                                       for _ in range(rng.randrange(1, 4)))
        return _completion(req, json.dumps(answer))


class FaultStorm:
    """A seeded mix: each request fails with probability `rate`, the fault drawn from `faults`;
    otherwise a normal answer. Same seed, same sequence of draws."""

    def __init__(self, rate: float, seed: int = 0,
                 faults: tuple[Any, ...] | None = None) -> None:
        import random

        self.rate = rate
        self.faults = faults or (Fail(500), Fail(503), RateLimited(retry_after=0.01),
                                 EmptyChoices(), Malformed(), Garbage(), Reset(), Violating())
        self._random = random.Random(seed)
        self.delay = 0.0
        self.drawn: list[str] = []

    def reply(self, req: FakeRequest) -> _Reply:
        fault = self.faults[self._random.randrange(len(self.faults))] \
            if self._random.random() < self.rate else Answer()
        self.drawn.append(type(fault).__name__)
        return fault.reply(req)


@dataclass(frozen=True)
class RawBody:
    """A body sent as it is, not as JSON."""

    text: str


Behaviour = (Answer | CallTools | RateLimited | Fail | Hang | Malformed | Violating | EmptyChoices
             | Refusal | Garbage | Drip | Chunked | Truncated | Reset | Say | Wordy
             | FaultStorm)


class _Rejected:
    """What llama-cpp-python's server answers to a response_format it does not take: HTTP 500
    carrying the request validation error."""

    delay = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        detail = {"type": "literal_error", "loc": ("body", "response_format", "type"),
                  "msg": "Input should be 'text' or 'json_object'", "input": req.mode}
        return 500, {}, _error(f"1 validation error: {detail}\n  File \"llama_cpp/server/app.py\""
                               f", line 376, in create_chat_completion", "internal_server_error")


@dataclass(frozen=True)
class _Overflow:
    """OpenAI's answer to a prompt and completion longer than the model's context."""

    window: int
    asked: int
    delay: float = 0.0

    def reply(self, req: FakeRequest) -> _Reply:
        body = _error(f"This model's maximum context length is {self.window} tokens. However, "
                      f"you requested {self.asked} tokens. Please reduce the length of the "
                      f"messages or completion.", "context_length_exceeded")
        body["error"]["type"] = "invalid_request_error"
        return 400, {}, body


def _sent_as(req: FakeRequest, how: str, value: str) -> _Reply:
    """A normal answer with an instruction to `_write` on how to send it (x-drip, x-chunked,
    x-truncate; never sent as a header)."""
    status, headers, body = Answer().reply(req)
    return status, {**headers, how: value}, body


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "code": code}}


def _prompt_tokens(req: FakeRequest) -> int:
    return max(1, len(json.dumps(req.messages)) // 4)


def _default_content(req: FakeRequest) -> str:
    if req.schema is not None:
        return json.dumps(instance(req.schema))
    return "{}" if req.mode == "json_object" else "fake answer"


def _completion(req: FakeRequest, content: str | None,
                tool_calls: list[dict[str, Any]] | None = None) -> _Reply:
    if req.mode == "tools" and not tool_calls and content is not None:
        # a forced answer tool: the answer comes as its call, like OpenAI's tool_choice
        name = req.body["tool_choice"]["function"]["name"]
        tool_calls = [{"id": "call_answer", "type": "function",
                       "function": {"name": name, "arguments": content}}]
        content = None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt_tokens = _prompt_tokens(req)
    completion_tokens = max(1, len(content or json.dumps(tool_calls)) // 4)
    return 200, {}, {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


# ---------------------------------------------------------------- schema instances


def instance(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A minimal valid instance of a JSON Schema: const/enum first value, default if given,
    numbers inside their bounds, short strings, every declared object property filled."""
    root = root if root is not None else schema
    if "$ref" in schema:
        return instance(_resolve(schema["$ref"], root), root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return instance(options[0], root)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if "$ref" in part else part
            merged = {**merged, **part,
                      "properties": {**merged.get("properties", {}), **part.get("properties", {})}}
        return instance(merged, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return {k: instance(v, root) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [instance(schema.get("items") or {}, root) for _ in range(schema.get("minItems", 0))]
    if kind in ("number", "integer"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _string(schema)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _number(schema: dict[str, Any], integer: bool) -> float | int:
    lo: float | None = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi: float | None = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float
    if lo is not None and hi is not None:
        value = (lo + hi) / 2
    elif lo is not None:
        value = lo + 1 if "exclusiveMinimum" in schema else lo
    elif hi is not None:
        value = min(0, hi - 1 if "exclusiveMaximum" in schema else hi)
    else:
        value = 0
    if integer:
        return math.ceil(value) if lo is not None else math.floor(value)
    return value


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-01-02"
    if fmt == "date-time":
        return "2024-01-02T00:00:00Z"
    text = "fake text"
    text = text.ljust(schema.get("minLength", 0), "x")
    return text[: schema.get("maxLength", len(text))]


# ---------------------------------------------------------------- the server


class FakeOpenAIServer:
    """Serves /v1/chat/completions (and /chat/completions) on 127.0.0.1:<ephemeral port>."""

    def __init__(self, latency_ms: float = 0.0, rejects: tuple[str, ...] = (),
                 context_window: int | None = None,
                 count_tokens: Any = None):
        """`rejects`: structured-output modes the endpoint refuses as llama-cpp-python's
        server refuses `json_schema` (HTTP 500 with the request's validation error).
        `context_window`: a request whose prompt tokens plus max_tokens exceed it gets OpenAI's
        400 `context_length_exceeded`; `count_tokens(request) -> int` counts the prompt (default:
        the usage figure it reports, JSON characters / 4)."""
        self.latency_ms = latency_ms
        self.rejects = rejects
        self.context_window = context_window
        self.count_tokens = count_tokens or _prompt_tokens
        self.port = 0
        self.requests: list[FakeRequest] = []
        self.max_in_flight = 0  # most requests handled at once, for concurrency tests
        self._in_flight = 0
        self._queues: dict[str | None, deque[Behaviour]] = {}
        self._defaults: dict[str | None, Behaviour] = {}
        self._lock = threading.Lock()  # tests script from their thread while the server reads
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def server_ms(self) -> float:
        """Total time the server spent handling requests (latency included)."""
        return sum(r.handled_ms for r in self.requests)

    # ---- scripting

    def script(self, *behaviours: Behaviour, model: str | None = None) -> None:
        """Queue one-shot behaviours, consumed one per request for `model` (None: any model)."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(behaviours)

    def default(self, behaviour: Behaviour, model: str | None = None) -> None:
        """What every request for `model` (None: any model) gets once its queue is empty."""
        with self._lock:
            self._defaults[model] = behaviour

    def _next(self, model: str) -> Behaviour:
        """The model's queue, then the shared queue, the model's default, the shared default,
        and finally a normal Answer."""
        with self._lock:
            for key in (model, None):
                if self._queues.get(key):
                    return self._queues[key].popleft()
            return self._defaults.get(model) or self._defaults.get(None) or Answer()

    # ---- lifecycle (async)

    async def start(self) -> FakeOpenAIServer:
        self._server = await asyncio.start_server(self._on_connect, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- lifecycle (background thread)

    def __enter__(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    # ---- HTTP

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        # Nagle + delayed ACK would add ~40 ms to every small response.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away (e.g. it timed out on a Hang), or stop() cancelled us
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        received_at, started = time.monotonic(), time.perf_counter()
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip()
                   for k, v in (h.split(":", 1) for h in header_lines if ":" in h)}
        raw = await reader.readexactly(int(headers.get("content-length", 0)))
        keep_alive = headers.get("connection", "").lower() != "close"

        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._write(writer, 404, {}, _error(f"no route {method} {path}", "not_found"))
            return keep_alive
        body = json.loads(raw or b"{}")
        req = FakeRequest(model=body.get("model", ""), messages=body.get("messages", []),
                          response_format=body.get("response_format"), tools=body.get("tools"),
                          body=body, headers=headers, received_at=received_at)
        self.requests.append(req)
        behaviour: Any = _Rejected() if req.mode in self.rejects else self._next(req.model)
        if self.context_window is not None:
            asked = self.count_tokens(req) + int(body.get("max_tokens") or 0)
            if asked > self.context_window:
                behaviour = _Overflow(self.context_window, asked)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            delay = self.latency_ms / 1000 + behaviour.delay
            if delay:
                await asyncio.sleep(delay)
            status, extra, payload = behaviour.reply(req)
            if status == 0:  # Reset: hang up without a word
                writer.transport.abort()
                return False
            if not await self._write(writer, status, extra, payload):
                writer.transport.abort()  # Truncated: the body was cut
                return False
        finally:
            self._in_flight -= 1
        req.handled_ms = (time.perf_counter() - started) * 1000
        return keep_alive

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, status: int, extra: dict[str, str],
                     payload: Any) -> bool:
        """Send a reply; False when the body was cut short on purpose (Truncated)."""
        data = payload.text.encode() if isinstance(payload, RawBody) else json.dumps(payload).encode()
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}.get(status, "Error")
        drip = extra.pop("x-drip", None)
        chunked = extra.pop("x-chunked", None)
        truncate = extra.pop("x-truncate", None)
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(data)}"
        lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", length,
                 *(f"{k}: {v}" for k, v in extra.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if drip:
            interval, chunk = drip.split(":")
            for i in range(0, len(data), int(chunk)):
                writer.write(data[i:i + int(chunk)])
                await writer.drain()
                await asyncio.sleep(float(interval))
            return True
        if chunked:
            size = int(chunked)
            for i in range(0, len(data), size):
                piece = data[i:i + size]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(data[:int(truncate)] if truncate else data)
        await writer.drain()
        return truncate is None
