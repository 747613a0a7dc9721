"""The JSON Schema contract: generated from the pydantic models, checked in at
schemas/workflow.schema.json, and used to report located errors before pydantic runs.

`python -m flowkit.spec.schema --write` regenerates the file."""

from __future__ import annotations

import difflib
import json
import sys
from functools import cache
from typing import Any

from flowkit._paths import asset_dir
from flowkit.errors import FlowkitError
from flowkit.spec.yamlsrc import Located

SCHEMA_ID = "https://flowkit.dev/schemas/workflow.schema.json"
_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "null"}


def generate() -> dict[str, Any]:
    """Build the schema from the pydantic models (imports pydantic's schema machinery)."""
    from flowkit.spec.models import Workflow

    schema = Workflow.model_json_schema(mode="validation")
    _tidy(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "flowkit workflow", **schema}


def _tidy(node: Any) -> None:
    """Drop pydantic's auto titles (noise for editors); keep descriptions."""
    if isinstance(node, dict):
        props = node.get("properties")
        node.pop("title", None) if not isinstance(node.get("title"), dict) else None
        if isinstance(props, dict):
            for sub in props.values():
                _tidy(sub)
        for key, sub in node.items():
            if key != "properties":
                _tidy(sub)
    elif isinstance(node, list):
        for sub in node:
            _tidy(sub)


@cache
def load() -> dict[str, Any]:
    return json.loads((asset_dir("schemas") / "workflow.schema.json").read_text())


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    return Draft202012Validator(load(), format_checker=FormatChecker())


def check(doc: Located) -> list[FlowkitError]:
    """Every schema violation in `doc`, each at the location of the offending key or value."""
    validator = _validator()
    problems = []
    for error in validator.iter_errors(doc.data):
        problems.extend(_explain(error, doc, validator))
    return _dedupe(problems)


def _dedupe(problems: list[FlowkitError]) -> list[FlowkitError]:
    seen, out = set(), []
    for p in problems:
        key = (p.location, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _explain(error: Any, doc: Located, validator: Any) -> list[FlowkitError]:
    path = tuple(error.absolute_path)
    where = _dotted(path)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        return [FlowkitError(_unknown_key(k, allowed, where), doc.at(path + (k,), key=True))
                for k in extra]
    if kind == "anyOf" and _is_step_union(error.schema):
        return _explain_step(error, doc, validator, path)
    if kind in ("anyOf", "oneOf"):
        # Optional values (X | None): report against the non-null branch.
        branches = [b for b in error.context if b.validator != "type" or b.validator_value != "null"]
        deepest = [b for b in branches if len(b.absolute_path) > len(error.absolute_path)]
        if deepest:
            return [p for b in deepest for p in _explain(b, doc, validator)]
        if branches:
            return _explain(branches[0], doc, validator)
    loc = doc.at(path)
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [FlowkitError(f"{where or 'the workflow'}: missing required key '{missing}'",
                             doc.at(path, key=True))]
    if kind == "type":
        expected = error.validator_value
        names = [_TYPE_NAMES.get(t, t) for t in (expected if isinstance(expected, list) else [expected])]
        return [FlowkitError(f"{where}: expected {' or '.join(names)}, got "
                             f"{_describe(error.instance)}", loc)]
    if kind == "enum":
        choices = ", ".join(json.dumps(c) for c in error.validator_value)
        hint = _suggest(str(error.instance), [str(c) for c in error.validator_value])
        return [FlowkitError(f"{where}: {_describe(error.instance)} is not one of {choices}{hint}",
                             loc)]
    if kind == "const":
        return [FlowkitError(f"{where}: must be {json.dumps(error.validator_value)}, got "
                             f"{_describe(error.instance)}", loc)]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
              "exclusiveMaximum": "<"}[kind]
        return [FlowkitError(f"{where}: {error.instance} is out of range; must be "
                             f"{op} {error.validator_value}", loc)]
    if kind in ("minItems", "minProperties"):
        return [FlowkitError(f"{where}: needs at least {error.validator_value} "
                             f"{'item' if kind == 'minItems' else 'entry'}"
                             f"{'s' if error.validator_value != 1 else ''}", loc)]
    if kind == "minLength":
        return [FlowkitError(f"{where}: must not be empty", loc)]
    if kind == "pattern":
        return [FlowkitError(f"{where}: {_describe(error.instance)} does not match the expected "
                             f"form {error.validator_value}", loc)]
    if kind == "format":
        return [FlowkitError(f"{where}: {_describe(error.instance)} is not a valid "
                             f"{error.validator_value} (YYYY-MM-DD)", loc)]
    return [FlowkitError(f"{where}: {error.message}", loc)]


def _is_step_union(schema: dict[str, Any]) -> bool:
    refs = [b.get("$ref", "") for b in schema.get("anyOf", [])]
    return any(r.endswith("/DebateStep") for r in refs)


def _explain_step(error: Any, doc: Located, validator: Any, path: tuple) -> list[FlowkitError]:
    """A pipeline step failed every branch: pick the branch its pattern key names."""
    from flowkit.spec.models import PATTERN_KEYS

    step = error.instance
    where = _dotted(path)
    if not isinstance(step, dict):
        return [FlowkitError(f"{where}: a step is an agent id or a mapping with one of "
                             f"{', '.join(PATTERN_KEYS)}; got {_describe(step)}", doc.at(path))]
    keys = [k for k in PATTERN_KEYS if k in step]
    if len(keys) != 1:
        if keys:
            msg = f"{where}: a step has exactly one pattern key, found {', '.join(keys)}"
            return [FlowkitError(msg, doc.at(path + (keys[1],), key=True))]
        others = [k for k in step if k not in ("id", "when")]
        if others:
            return [FlowkitError(_unknown_key(others[0], list(PATTERN_KEYS), where) +
                                 f"; a step needs one of {', '.join(PATTERN_KEYS)}",
                                 doc.at(path + (others[0],), key=True))]
        return [FlowkitError(f"{where}: a step needs one of {', '.join(PATTERN_KEYS)}",
                             doc.at(path))]
    name = {"agent": "AgentStep"}.get(keys[0], keys[0].capitalize() + "Step")
    sub = validator.evolve(schema={"$ref": f"#/$defs/{name}", "$defs": load()["$defs"]})
    problems = []
    for sub_error in sub.iter_errors(step):
        sub_error.path.extendleft(reversed(path))  # make paths absolute for locations
        problems.extend(_explain(sub_error, doc, validator))
    return problems


def _unknown_key(key: str, allowed: list[str], where: str) -> str:
    place = f" in {where}" if where else ""
    return f"unknown key '{key}'{place}{_suggest(key, allowed)}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else f"'{value[:37]}...'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def main(argv: list[str]) -> int:
    text = json.dumps(generate(), indent=2) + "\n"
    target = asset_dir("schemas") / "workflow.schema.json"
    if "--write" in argv:
        target.write_text(text)
        print(f"wrote {target}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
