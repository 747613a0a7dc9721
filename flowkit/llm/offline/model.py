"""The offline model: answers each built-in output with its strategy module, and any other
output schema by filling it (flowkit.llm.offline.schema)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flowkit.errors import ModelError
from flowkit.llm.base import ModelRequest, ModelResponse
from flowkit.llm.offline.analysts import analyst_report
from flowkit.llm.offline.manager import manager_plan
from flowkit.llm.offline.research import research_argument, research_verdict
from flowkit.llm.offline.risk import risk_argument, risk_assessment
from flowkit.llm.offline.schema import from_schema
from flowkit.llm.offline.trading import trade_proposal
from flowkit.llm.offline.view import View

_BUILDERS: dict[str, Callable[[View], dict[str, Any]]] = {
    "analyst_report": analyst_report,
    "research_argument": research_argument,
    "research_verdict": research_verdict,
    "trade_proposal": trade_proposal,
    "risk_argument": risk_argument,
    "risk_assessment": risk_assessment,
    "manager_plan": manager_plan,
}


def _chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(c) if isinstance(c := m.get("content"), str) else len(str(c or ""))
               for m in messages)


class OfflineModel:
    """ChatModel answering every role from the data in `request.context`; see flowkit.llm.offline."""

    name = "offline"

    def answer(self, request: ModelRequest) -> dict[str, Any]:
        """The structured answer, before serialisation."""
        try:
            view = View(request)
        except ValueError as exc:  # a malformed belief
            raise ModelError(f"offline model, agent '{request.agent}': {exc}") from None
        build = _BUILDERS.get(request.output_name)
        if build is not None:
            return build(view)
        if not request.output_schema:
            raise ModelError(f"offline model, agent '{request.agent}': output "
                             f"'{request.output_name}' is not built in and no schema was given")
        return from_schema(view, request.output_schema)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        content = json.dumps(self.answer(request), ensure_ascii=False, separators=(",", ":"))
        return ModelResponse(model=self.name, content=content,
                             prompt_tokens=_chars(request.messages) // 4,
                             completion_tokens=len(content) // 4, cost_usd=0.0,
                             latency_ms=(time.perf_counter() - start) * 1000)

    async def aclose(self) -> None:
        return None
