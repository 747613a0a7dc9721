"""The lean transport: `openai/<model>` at an `api_base`, straight over HTTP/1.1.

A call is one POST of JSON on a kept-alive connection, written in one piece (TCP_NODELAY) and
read with asyncio's streams: ~0.2 ms on loopback where httpx takes ~1.2 ms and litellm ~5 ms.
TLS is the standard library's (certifi's roots when installed, as httpx; SSL_CERT_FILE when
set); response bodies may be Content-Length, chunked or closed-delimited. An endpoint behind a
proxy from the environment (HTTP(S)_PROXY, NO_PROXY) goes through httpx instead, which speaks
proxies. The per-read timeout is the profile's, the total deadline the policy's (`RemoteModel`).
Errors are raised so that `flowkit.llm.faults` and `flowkit.llm.structured` read them exactly as
litellm's (see the contract in `flowkit.llm.transport`); prices come from litellm's model table
(`flowkit.llm.catalog`) without importing litellm.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import orjson

from flowkit.llm.transport import Completion, catalog_price, read, within

# What the request body may carry besides the model (the fields litellm's OpenAI client sends).
_BODY = ("messages", "max_tokens", "response_format", "seed", "temperature", "tool_choice",
         "tools")
# The class names litellm gives these statuses, so a row reads the same whichever path served.
_NAMES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
          404: "NotFoundError", 422: "UnprocessableEntityError",
          429: "RateLimitError", 500: "InternalServerError", 503: "ServiceUnavailableError"}
MAX_IDLE = 64  # kept-alive connections per endpoint


class APIError(Exception):
    """An HTTP error status: the server's message, `status_code` and `headers`."""

    def __init__(self, status: int, message: str, headers: dict[str, str]):
        super().__init__(message)
        self.status_code, self.headers = status, headers


class Timeout(APIError):
    """No byte within the profile's timeout, or HTTP 408 (litellm's name and status)."""


_CLASSES: dict[int, type[APIError]] = {
    **{status: type(name, (APIError,), {"__module__": __name__})
       for status, name in _NAMES.items()}, 408: Timeout}


# The names faults.py reads in an error's chain, as httpx raises them.
class ConnectError(ConnectionError):
    """The connection could not be made (refused, unknown host, TLS handshake)."""


class RemoteProtocolError(ConnectionError):
    """The server hung up before a whole answer, or did not speak HTTP/1.1."""


class ReadError(ConnectionError):
    """The connection failed while the answer was read."""


class OpenAICompatTransport:
    def __init__(self, model: str):
        self.model = model.partition("/")[2]  # the name the server knows
        self.price = catalog_price(model)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._httpx: Any = None  # httpx.AsyncClient, for an endpoint behind a proxy

    async def send(self, args: dict[str, Any]) -> Completion:
        body = {"model": self.model}
        body.update((k, args[k]) for k in _BODY if k in args)
        url = args["api_base"].rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {args['api_key']}",
                   "Content-Type": "application/json", "Accept": "application/json"}
        timeout = float(args["timeout"])
        post = self._via_proxy if _proxied(url) else self._post
        status, reply_headers, content = await post(url, orjson.dumps(body), headers, timeout)
        if status >= 400:
            raise _status_error(status, content, reply_headers)
        return read(orjson.loads(content), self.price)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        client, self._httpx = self._httpx, None
        if client is not None:
            await client.aclose()

    async def _post(self, url: str, body: bytes, headers: dict[str, str],
                    timeout: float) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(url)
        tls = split.scheme == "https"
        path = split.path + (f"?{split.query}" if split.query else "")
        head = "".join([f"POST {path or '/'} HTTP/1.1\r\nHost: {split.netloc}\r\n",
                        *(f"{k}: {v}\r\n" for k, v in headers.items()),
                        f"Content-Length: {len(body)}\r\n\r\n"])
        conn = self._reuse() or await _connect(split.hostname or "", split.port
                                               or (443 if tls else 80), tls, timeout)
        reader, writer = conn
        try:
            writer.write(head.encode("utf-8") + body)
            status, reply_headers, content, keep = await _response(reader, timeout)
        except BaseException:
            writer.close()
            raise
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            writer.close()
        return status, reply_headers, content

    def _reuse(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """An idle connection the server has not closed meanwhile (as httpcore checks)."""
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.transport.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _via_proxy(self, url: str, body: bytes, headers: dict[str, str],
                         timeout: float) -> tuple[int, dict[str, str], bytes]:
        import httpx

        if self._httpx is None:
            self._httpx = httpx.AsyncClient()
        try:
            reply = await self._httpx.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise Timeout(408, f"Timeout: no answer within {timeout:g} s "
                               f"({type(exc).__name__})", {}) from exc
        return reply.status_code, dict(reply.headers), reply.content


def _proxied(url: str) -> bool:
    split = urlsplit(url)
    return split.scheme in _proxies() and not urllib.request.proxy_bypass(split.hostname or "")


@functools.cache
def _proxies() -> dict[str, str]:
    return urllib.request.getproxies()  # the environment's, read once per process


@functools.cache
def _tls() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):  # the user's roots, as httpx honours them
        return ssl.create_default_context()
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


async def _connect(host: str, port: int, tls: bool,
                   timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        reader, writer = await within(asyncio.open_connection(
            host, port, ssl=_tls() if tls else None, server_hostname=host if tls else None),
            timeout)
    except TimeoutError as exc:
        raise Timeout(408, f"Timeout: no connection within {timeout:g} s", {}) from exc
    except ConnectionRefusedError:
        raise
    except OSError as exc:  # an unknown host, an unreachable network, a failed handshake
        raise ConnectError(str(exc) or type(exc).__name__) from exc
    sock = writer.get_extra_info("socket")
    if sock is not None:  # the request goes out at once, not after a delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _response(reader: asyncio.StreamReader,
                    timeout: float) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers (lower-cased names), body, and whether the connection may be reused.
    Every read waits at most `timeout` (the client timeout that restarts with every byte)."""
    async def wait(awaitable: Any) -> Any:
        try:
            return await within(awaitable, timeout)
        except TimeoutError as exc:
            raise Timeout(408, f"Timeout: no answer within {timeout:g} s", {}) from exc
        except asyncio.IncompleteReadError:
            problem = "Server disconnected without sending a complete response."
        except asyncio.LimitOverrunError:
            problem = "the server's response line or headers are too long"
        except ConnectionResetError:
            raise
        except OSError as exc:  # a broken pipe, an unreachable peer...
            raise ReadError(str(exc) or type(exc).__name__) from exc
        raise RemoteProtocolError(problem)  # outside the except: the row names this, not asyncio's

    while True:
        head = (await wait(reader.readuntil(b"\r\n\r\n"))).decode("latin-1")
        line, *lines = head.split("\r\n")
        version, _, rest = line.partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise RemoteProtocolError(f"not an HTTP response: {line[:80]!r}") from None
        if status >= 200 or status == 101:
            break  # 1xx (100 Continue...) precede the real answer
    headers: dict[str, str] = {}
    for h in lines:
        name, _, value = h.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        return status, headers, b"", keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = await wait(reader.readuntil(b"\r\n"))
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise RemoteProtocolError("malformed chunked body") from None
            if size == 0:
                while (await wait(reader.readuntil(b"\r\n"))) != b"\r\n":
                    pass  # trailers
                return status, headers, b"".join(parts), keep
            parts.append((await wait(reader.readexactly(size + 2)))[:-2])
    if "content-length" in headers:
        try:
            remaining = int(headers["content-length"])
        except ValueError:
            raise RemoteProtocolError("malformed Content-Length") from None
        parts = []
        while remaining > 0:
            piece = await wait(reader.read(min(remaining, 1 << 16)))
            if not piece:
                got = sum(map(len, parts))
                raise RemoteProtocolError(f"peer closed connection without sending complete "
                                          f"message body: received {got} bytes, expected "
                                          f"{got + remaining}")
            parts.append(piece)
            remaining -= len(piece)
        return status, headers, b"".join(parts), keep
    parts = []  # delimited by the connection's end
    while piece := await wait(reader.read(1 << 16)):
        parts.append(piece)
    return status, headers, b"".join(parts), False


def _status_error(status: int, content: bytes, headers: dict[str, str]) -> APIError:
    text = content.decode("utf-8", errors="replace")
    try:  # OpenAI's form: {"error": {"message": ...}}; else the body as it came
        error = orjson.loads(content).get("error")
        text = str(error.get("message", error) if isinstance(error, dict) else error or text)
    except (ValueError, AttributeError):
        pass
    cls = _CLASSES.get(status, APIError)
    return cls(status, f"{cls.__name__}: {text}", headers)
