"""The lean transport: `openai/<model>` at an `api_base`, straight over httpx.

One `httpx.AsyncClient` per transport keeps its connections alive across calls (TLS, chunked
bodies, proxies from the environment as httpx does them); the per-read timeout is the
profile's, the total deadline the policy's (`RemoteModel`). Errors are raised so that
`flowkit.llm.faults` and `flowkit.llm.structured` read them exactly as litellm's (see the
contract in `flowkit.llm.transport`); prices come from litellm's model table
(`flowkit.llm.catalog`) without importing litellm.
"""

from __future__ import annotations

from typing import Any

import orjson

from flowkit.llm.transport import Completion, catalog_price, read

# What the request body may carry besides the model (the fields litellm's OpenAI client sends).
_BODY = ("messages", "max_tokens", "response_format", "seed", "temperature", "tool_choice",
         "tools")
# The class names litellm gives these statuses, so a row reads the same whichever path served.
_NAMES = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
          404: "NotFoundError", 422: "UnprocessableEntityError",
          429: "RateLimitError", 500: "InternalServerError", 503: "ServiceUnavailableError"}


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


class OpenAICompatTransport:
    def __init__(self, model: str):
        self.model = model.partition("/")[2]  # the name the server knows
        self.price = catalog_price(model)
        self._client: Any = None  # httpx.AsyncClient, opened on the first call

    async def send(self, args: dict[str, Any]) -> Completion:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64))
        body = {"model": self.model}
        body.update((k, args[k]) for k in _BODY if k in args)
        try:
            reply = await self._client.post(
                args["api_base"].rstrip("/") + "/chat/completions",
                content=orjson.dumps(body), timeout=args["timeout"],
                headers={"authorization": f"Bearer {args['api_key']}",
                         "content-type": "application/json", "accept": "application/json"})
        except httpx.TimeoutException as exc:
            raise Timeout(408, f"Timeout: no answer within {args['timeout']:g} s "
                               f"({type(exc).__name__})", {}) from exc
        if reply.status_code >= 400:
            raise _status_error(reply)
        return read(orjson.loads(reply.content), self.price)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _status_error(reply: Any) -> APIError:
    text = reply.text
    try:  # OpenAI's form: {"error": {"message": ...}}; else the body as it came
        error = orjson.loads(text).get("error")
        text = str(error.get("message", error) if isinstance(error, dict) else error or text)
    except (ValueError, AttributeError):
        pass
    status = reply.status_code
    cls = _CLASSES.get(status, APIError)
    return cls(status, f"{cls.__name__}: {text}", dict(reply.headers))
