"""Content-addressed prompts: each line of a message is stored once, in `prompt_parts`.

A firm's prompts repeat themselves: the system prompt and output schema of an agent are the same
in every call, the recent-bars table slides by one line a day, and the reports of the analysts are
quoted in every later prompt of the same decision. So the event log stores a model call's
messages as references: each string `content` becomes `content_parts`, the ids of its lines
(keeping their line ends), and every line the file has not seen yet goes to `prompt_parts` once.
The view `model_calls_full` (views.sql) joins them back into the exact original messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

# Ids remembered per log to skip known lines; bounded so a long run's memory stays flat (a line
# forgotten here is written again and dropped by the insert's anti-join, see EventLog._write).
_KNOWN_MAX = 200_000


def part_id(text: str) -> str:
    """64-bit content hash: at a billion distinct lines a collision stays below 3%."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class PromptParts:
    """Splits requests into references; `emit(part_id, text)` receives each line new to it."""

    def __init__(self, emit: Callable[[str, str], None]):
        self._emit = emit
        self._known: set[str] = set()

    def lean(self, request: Any) -> Any:
        """`request` with each message's string content replaced by `content_parts`."""
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return request
        return {**request, "messages": [self._message(m) for m in request["messages"]]}

    def _message(self, message: Any) -> Any:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) \
                or not message["content"]:
            return message
        ids = []
        for line in message["content"].splitlines(keepends=True):
            key = part_id(line)
            if key not in self._known:
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()
                self._known.add(key)
                self._emit(key, line)
            ids.append(key)
        lean = {k: v for k, v in message.items() if k != "content"}
        lean["content_parts"] = ids
        return lean
