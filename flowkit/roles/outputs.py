"""Typed outputs of the built-in roles, and validators for built-in or inline output schemas.

Every agent answers with one JSON object. A built-in output name maps to a pydantic model here;
a role may instead give an inline JSON Schema in YAML. Either way `validator_for(output)`
returns an `OutputValidator` whose `.validate(answer)` takes the model's text (or a parsed
object) and returns a plain dict, or raises `OutputInvalid` listing every problem, worded so the
runtime can show it to the model and ask again."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowkit.errors import FlowkitError

Action = Literal["BUY", "SELL", "HOLD"]


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _confidence() -> Any:
    return Field(ge=0, le=1, description="How sure the agent is, 0 (guess) to 1 (certain).")


def _size(description: str) -> Any:
    return Field(ge=0, le=100, description=description)


def _price(description: str) -> Any:
    return Field(None, gt=0, description=description)


class AnalystReport(_Output):
    """One analyst's reading of one symbol."""

    signal: Literal["bullish", "bearish", "neutral"] = Field(description="Direction the evidence points.")
    score: float = Field(ge=-1, le=1, description="Strength and direction: -1 strongly bearish, "
                         "0 neutral, +1 strongly bullish.")
    confidence: float = _confidence()
    summary: str = Field(min_length=1, description="Two or three sentences citing the numbers.")
    key_points: list[str] = Field(default_factory=list, description="The evidence, one fact per item.")


class ResearchArgument(_Output):
    """One turn of the bull/bear research debate."""

    stance: Literal["bull", "bear"] = Field(description="The side this turn argues.")
    argument: str = Field(min_length=1, description="The case, in a short paragraph.")
    points: list[str] = Field(default_factory=list, description="Supporting points, strongest first.")
    rebuttal: str | None = Field(None, description="Answer to the other side's last argument, "
                                 "quoting it; null when the other side has not spoken yet.")
    conviction: float = Field(ge=0, le=1, description="Strength of the case after hearing the "
                              "other side, 0 to 1.")


class ResearchVerdict(_Output):
    """The research manager's ruling on the debate."""

    recommendation: Action = Field(description="What the firm should do.")
    winner: Literal["bull", "bear", "tie"] = Field(description="Which side argued better.")
    confidence: float = _confidence()
    score: float = Field(ge=-1, le=1, description="Net view: -1 strong sell to +1 strong buy.")
    rationale: str = Field(min_length=1, description="Why, citing the decisive arguments.")
    plan: str = Field(min_length=1, description="Investment plan for the trader: entry, "
                      "sizing stance, what would change the view.")


class TradeProposal(_Output):
    """A sized order: the trader's proposal or the portfolio manager's final decision."""

    action: Action = Field(description="BUY adds to the position, SELL reduces it (or shorts "
                           "when allowed), HOLD leaves it.")
    size_pct: float = _size("Size of this trade as % of equity; 0 for HOLD.")
    entry: float | None = _price("Reference entry price; null for HOLD.")
    stop_loss: float | None = _price("Protective stop price, or null.")
    take_profit: float | None = _price("Take-profit price, or null.")
    confidence: float = _confidence()
    reasoning: str = Field(min_length=1, description="Why this action and size.")


class RiskArgument(_Output):
    """One turn of the risk debate."""

    stance: Literal["aggressive", "conservative", "neutral"] = Field(description="The risk stance argued.")
    argument: str = Field(min_length=1, description="The case for this stance on the proposal.")
    recommended_size_pct: float = _size("Size this stance would trade, % of equity.")
    concerns: list[str] = Field(default_factory=list, description="Risks this stance sees.")


class RiskAssessment(_Output):
    """Advice on a proposal's risk. The rule engine has the last word."""

    approve: bool = Field(description="Whether the trade should go ahead (at most max_size_pct).")
    max_size_pct: float = _size("Largest size this reviewer accepts, % of equity.")
    concerns: list[str] = Field(default_factory=list, description="Material risks found.")
    reasoning: str = Field(min_length=1, description="Why.")


class Assignment(_Output):
    worker: str = Field(min_length=1, description="Worker agent id, one of those offered.")
    instruction: str = Field(min_length=1, description="What the worker should look at and report.")


class ManagerPlan(_Output):
    """FinCon manager: assign workers (non-empty assignments) or decide (empty assignments)."""

    assignments: list[Assignment] = Field(default_factory=list, description="Workers to run and "
                                          "report back; empty when this answer is the decision.")
    action: Action = Field(description="Decision; HOLD while still assigning work.")
    size_pct: float = _size("Size of the trade as % of equity; 0 for HOLD.")
    stop_loss: float | None = _price("Protective stop price, or null.")
    take_profit: float | None = _price("Take-profit price, or null.")
    confidence: float = _confidence()
    reasoning: str = Field(min_length=1, description="Why: the reports and beliefs that decided it.")
    beliefs_applied: list[str] = Field(default_factory=list, description="Learned beliefs that "
                                       "shaped this decision, quoted.")


OUTPUTS: dict[str, type[BaseModel]] = {
    "analyst_report": AnalystReport,
    "research_argument": ResearchArgument,
    "research_verdict": ResearchVerdict,
    "trade_proposal": TradeProposal,
    "risk_argument": RiskArgument,
    "risk_assessment": RiskAssessment,
    "manager_plan": ManagerPlan,
}


class OutputInvalid(FlowkitError):
    """An answer does not match its output schema. `problems` lists each one."""

    def __init__(self, schema: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"answer does not match output '{schema}':\n"
                         + "\n".join(f"- {p}" for p in problems))


@cache
def output_json_schema(name: str) -> dict[str, Any]:
    """JSON Schema of a built-in output, self-contained (no $ref). Shared: do not mutate."""
    try:
        model = OUTPUTS[name]
    except KeyError:
        raise FlowkitError(f"unknown output '{name}'; built-in outputs: {', '.join(sorted(OUTPUTS))}") from None
    schema = model.model_json_schema()
    return _compact(schema, schema.pop("$defs", {}))


def _compact(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and drop pydantic's titles: small local models follow a flat schema more
    reliably, and every token of it is sent with each call."""
    if isinstance(node, list):
        return [_compact(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _compact(defs[ref.rsplit("/", 1)[1]], defs)
    return {k: ({p: _compact(s, defs) for p, s in v.items()} if k == "properties" else _compact(v, defs))
            for k, v in node.items() if k != "title"}


class OutputValidator(Protocol):
    name: str
    schema: dict[str, Any]

    def validate(self, answer: Any) -> dict[str, Any]:
        """Return the answer as a plain dict, or raise OutputInvalid."""
        ...


def validator_for(output: str | Mapping[str, Any], name: str | None = None) -> OutputValidator:
    """A validator for a built-in output name or an inline JSON Schema (draft 2020-12).
    `name` labels an inline schema in errors (e.g. the role that declares it)."""
    if isinstance(output, str):
        return _builtin_validator(output)
    return _inline_validator(json.dumps(output, sort_keys=True, default=str), name or "inline schema")


class _Validator:
    def __init__(self, name: str, schema: dict[str, Any],
                 check: Callable[[Any], tuple[Any, list[str]]]):
        self.name, self.schema, self._check = name, schema, check

    def validate(self, answer: Any) -> dict[str, Any]:
        value, problems = self._check(parse_answer(answer, self.name))
        if problems:
            if len(problems) > _MAX_PROBLEMS:  # the first ones are enough for a re-ask
                problems = problems[:_MAX_PROBLEMS] + [f"... and {len(problems) - _MAX_PROBLEMS} more"]
            raise OutputInvalid(self.name, problems)
        return value

    def __repr__(self) -> str:
        return f"OutputValidator({self.name!r})"


@cache
def _builtin_validator(name: str) -> _Validator:
    schema, model = output_json_schema(name), OUTPUTS[name]

    def check(obj: Any) -> tuple[Any, list[str]]:
        try:
            return model.model_validate(obj).model_dump(mode="json"), []
        except ValidationError as exc:
            return None, [_problem(".".join(map(str, e["loc"])), e["msg"], e.get("input"))
                          for e in exc.errors(include_url=False)]

    return _Validator(name, schema, check)


@lru_cache(maxsize=256)
def _inline_validator(schema_json: str, name: str) -> _Validator:
    from jsonschema import (  # lazy: `flowkit validate` stays quick
        Draft202012Validator,
        SchemaError,
    )

    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise FlowkitError(f"{name}: not a valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise FlowkitError(f'{name}: an output schema must describe an object ("type": "object")')
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def check(obj: Any) -> tuple[Any, list[str]]:
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        return obj, [_problem(".".join(map(str, e.absolute_path)), e.message, None) for e in errors]

    return _Validator(name, schema, check)


_MAX_PROBLEMS = 20


def _problem(path: str, message: str, got: Any) -> str:
    text = f"{path or '(root)'}: {message}"
    if got is not None and not isinstance(got, (dict, list)):
        text += f" (got {_clip(repr(got), 60)})"
    return _clip(text, 300)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_answer(answer: Any, name: str = "output") -> Any:
    """Model text -> JSON value. Tolerates a ```json fence; anything else must be pure JSON."""
    if not isinstance(answer, str):
        return answer
    text = answer.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0].strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputInvalid(name, [f"not valid JSON: {exc.msg} at line {exc.lineno} column "
                                   f"{exc.colno}; reply with one JSON object only"]) from None
