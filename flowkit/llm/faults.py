"""What went wrong with one provider attempt, named for a person and classified for retries.

Each failure becomes one line (`describe`): a refused connection is "cannot connect to URL",
an empty `choices` list or a refusal is said as such, never a bare "HTTP 500" or a multi-line
server traceback. `retryable` says whether the same request may succeed if sent again: 408,
409, 429, 5xx, timeouts, dropped connections, empty or unreadable bodies; never another 4xx
(the request itself is wrong) or a refusal (the same prompt is refused again)."""

from __future__ import annotations

import re
from typing import Any

from flowkit import secrets

MAX_ERROR_CHARS = 300  # a server's traceback is cut here: the row and the message stay one line
# How endpoints say a prompt is longer than the model's context: OpenAI's code and message,
# litellm's ContextWindowExceededError, llama-cpp-python's and llama.cpp's servers, Anthropic.
_OVERFLOW = re.compile(r"context_length_exceeded|maximum context length|ContextWindowExceeded|"
                       r"exceeds? (the available )?context (size|window)|exceed_context_size|"
                       r"prompt is too long", re.IGNORECASE)


class ProviderFault(Exception):
    """A 200 answer flowkit cannot use: no choices, a refusal, a body that is not a completion."""

    def __init__(self, message: str, retryable: bool):
        super().__init__(message)
        self.retryable = retryable
        # what the provider billed for the unusable answer (set by `transport.read`)
        self.prompt_tokens = self.completion_tokens = 0
        self.cost_usd = 0.0


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProviderFault):
        return exc.retryable
    if _transport(exc) is not None or isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in (408, 409, 429) or status >= 500
    return False


def context_overflow(error: str | None) -> bool:
    """Does an attempt's error (as `describe` wrote it) say the prompt did not fit?"""
    return bool(error and _OVERFLOW.search(error))


def describe(exc: BaseException, api_base: str | None) -> str:
    """One line naming the failure; the provider's text cut and with secrets masked."""
    where = api_base or "the provider"
    transport = _transport(exc)
    if isinstance(exc, ProviderFault):
        text = str(exc)
    elif isinstance(exc, TimeoutError) or type(exc).__name__ == "Timeout":
        text = _first_line(exc)
        text = text if "Timeout" in text else f"Timeout: {text}"
    elif transport == "refused":
        text = f"cannot connect to {where}: connection refused"
    elif transport == "lost":
        text = f"connection to {where} lost before an answer: {_cut(_root_name(exc))}"
    elif transport == "body":
        text = f"unreadable answer from {where}: the body is not JSON"
    else:
        text = _first_line(exc)
        text = text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            text = f"HTTP {status}: {text}"
    return secrets.redact(text)


def field(obj: Any, name: str) -> Any:
    """`obj`'s `name`, whether a completion came as an SDK object or as its JSON dict."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def check_completion(raw: Any) -> Any:
    """The first choice's message of a parsed completion (an SDK object or the JSON dict), or
    ProviderFault saying why not."""
    choices = field(raw, "choices")
    if not choices or not isinstance(choices, list):
        raise ProviderFault("the provider answered with no choices", retryable=True)
    choice = choices[0]
    message = field(choice, "message")
    if not (isinstance(message, dict) or hasattr(message, "content")):
        raise ProviderFault("the provider's answer has no message", retryable=True)
    refusal = field(message, "refusal") or (
        field(message, "provider_specific_fields") or {}).get("refusal")
    if refusal or field(choice, "finish_reason") == "content_filter":
        raise ProviderFault(f"the model refused: {_cut(str(refusal or 'content filtered'))}",
                            retryable=False)
    return message


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and len(out) < 12:
        out.append(node)
        node = node.__cause__ or node.__context__
    return out


def _transport(exc: BaseException) -> str | None:
    """litellm wraps a refused or reset connection and an unreadable body alike as HTTP 500;
    the causes underneath tell them apart: refused | lost | body, or None."""
    names = [type(e).__name__ for e in _chain(exc)]
    if any(n in ("ConnectionRefusedError", "ConnectError", "ClientConnectorError")
           for n in names):
        return "refused"
    if any(n in ("ServerDisconnectedError", "ReadError", "RemoteProtocolError",
                 "ConnectionResetError", "ClientOSError", "APIConnectionError") for n in names) \
            and "Timeout" not in names and "APITimeoutError" not in names:
        return "lost"
    if "JSONDecodeError" in names:
        return "body"
    return None


def _root_name(exc: BaseException) -> str:
    root = _chain(exc)[-1]
    return f"{type(root).__name__}: {root}" if str(root) else type(root).__name__


def _first_line(exc: BaseException) -> str:
    return _cut(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"
