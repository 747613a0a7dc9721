"""The JSON Schema contract: generated from the pydantic models, checked in at
schemas/workflow.schema.json, and used to report located errors before pydantic runs.

`python -m flowkit.spec.schema --write` regenerates the file."""

from __future__ import annotations

import json
import math
import re
import sys
from functools import cache
from typing import Any, Iterator

from flowkit._paths import asset_dir
from flowkit.errors import FlowkitError
from flowkit.spec.messages import and_list, closest, describe, dotted, suggest
from flowkit.spec.yamlsrc import Located, Path_

SCHEMA_ID = "https://flowkit.dev/schemas/workflow.schema.json"
# Keys that bound a loop: say why they cannot be left out.
_REQUIRED_WHY = {"rounds": " (every loop is bounded: say how many rounds)",
                 "max_rounds": " (every loop is bounded: say how many rounds at most)"}
_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "array": "a list", "object": "a mapping",
               "null": "null"}


def generate() -> dict[str, Any]:
    """Build the schema from the pydantic models (imports pydantic's schema machinery)."""
    from flowkit.spec.models import Workflow

    return contract(Workflow, SCHEMA_ID, "flowkit workflow")


def contract(model: Any, schema_id: str, title: str) -> dict[str, Any]:
    """The draft 2020-12 schema of a pydantic model, as flowkit checks in its contracts."""
    schema = model.model_json_schema(mode="validation")
    _tidy(schema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id,
            "title": title, **schema}


def _tidy(node: Any) -> None:
    """Drop pydantic's auto titles (noise for editors); keep descriptions. Say what pydantic
    means by `dict[Id, X]`: every key must match, while `patternProperties` alone would let
    any other key through unchecked."""
    if isinstance(node, dict):
        if isinstance(node.get("title"), str):  # a schema's title, not a property named title
            del node["title"]
        if len(node.get("patternProperties", ())) == 1 and "additionalProperties" not in node:
            [(pattern, values)] = node.pop("patternProperties").items()
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = values
        for key, sub in node.items():
            _tidy(list(sub.values()) if key == "properties" else sub)
    elif isinstance(node, list):
        for sub in node:
            _tidy(sub)


@cache
def load() -> dict[str, Any]:
    """The checked-in schema; generated instead when a pattern from another package extends
    the language (the checked-in file describes the built-in patterns only)."""
    from flowkit.patterns import BUILTIN, pattern_keys

    if pattern_keys() != BUILTIN:
        return generate()
    return json.loads((asset_dir("schemas") / "workflow.schema.json").read_text())


@cache
def _validator() -> Any:
    return validator_for(load())


def validator_for(contract: dict[str, Any]) -> Any:
    """A validator for any flowkit schema (workflow, sweep) with ECMA-262 patterns and dates."""
    from jsonschema import Draft202012Validator, FormatChecker, validators

    # JSON Schema patterns are ECMA-262, where `$` ends the text; Python's `$` also matches
    # before a final newline, which would let "trader\n" pass as an id.
    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
        from jsonschema.exceptions import ValidationError

        if validator.is_type(instance, "string") and not ecma(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    cls = validators.extend(Draft202012Validator, {"pattern": pattern})
    return cls(contract, format_checker=FormatChecker())


@cache
def ecma(patrn: str) -> re.Pattern[str]:
    """A JSON Schema (ECMA-262) pattern as Python reads it: `$` ends the text."""
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", patrn))


def check(doc: Located, validator: Any = None) -> tuple[list[FlowkitError], list[Path_]]:
    """Every schema violation in `doc` (against the workflow schema unless another
    `validator_for` is given), each at the location of the offending key or value, and the
    paths of the values that violate it (semantic checks leave those alone)."""
    validator = validator or _validator()
    errors = list(validator.iter_errors(doc.data))
    problems = [p for e in errors for p in _explain(e, doc, validator)]
    unique = {(p.location, p.message): p for p in problems}  # one per branch/sub-check
    return list(unique.values()), [p for e in errors for p in _broken(e)]


def _broken(error: Any) -> list[Path_]:
    """Where a violation is: an unknown or missing key is that key, not its whole mapping,
    so the semantic checks still read the mapping's other keys."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [path + (k,) for k in error.instance if k not in known]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [path + (k,) for k in error.validator_value if k not in error.instance]
    return [path]


def _explain(error: Any, doc: Located, validator: Any) -> list[FlowkitError]:
    path = tuple(error.absolute_path)
    where = dotted(path) or "the workflow"
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        return [FlowkitError(_unknown_key(k, allowed, path), doc.at(path + (k,), key=True))
                for k in extra]
    if kind == "anyOf" and _is_step_union(error.schema):
        return _explain_step(error, doc, validator, path)
    if kind in ("anyOf", "oneOf"):
        return _explain_union(error, doc, validator)
    loc = doc.at(path)
    if kind == "required":
        # jsonschema reports each missing key separately; say them all at once (the repeats
        # are then identical and dropped). A misspelt key is left to its "did you mean".
        allowed = list(error.schema.get("properties", {}))
        misspelt = {closest(k, allowed) for k in error.instance if k not in allowed}
        names = [k for k in error.validator_value if k not in error.instance and k not in misspelt]
        if not names:
            return []
        why = _REQUIRED_WHY.get(names[0], "") if len(names) == 1 else ""
        return [FlowkitError(f"{where}: missing required key{'s' if len(names) > 1 else ''} "
                             f"{and_list([repr(n) for n in names])}{why}", doc.at(path, key=True))]
    if kind == "type":
        return [FlowkitError(_expected(where, error.validator_value, error.instance), loc)]
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        hint = suggest(str(error.instance), [str(c) for c in error.validator_value])
        return [FlowkitError(f"{where}: {describe(error.instance)} is not one of {choices}{hint}",
                             loc)]
    if kind == "const":
        return [FlowkitError(f"{where}: must be {json.dumps(error.validator_value)}, got "
                             f"{describe(error.instance)}", loc)]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
              "exclusiveMaximum": "<"}[kind]
        return [FlowkitError(f"{where}: {describe(error.instance)} is out of range; must be "
                             f"{op} {describe(error.validator_value)}", loc)]
    if kind in ("minItems", "minProperties"):
        n = error.validator_value
        noun = ("item" if kind == "minItems" else "entry") if n == 1 else (
            "items" if kind == "minItems" else "entries")
        return [FlowkitError(f"{where}: needs at least {n} {noun}", loc)]
    if kind == "minLength":
        return [FlowkitError(f"{where}: must not be empty", loc)]
    if kind == "pattern":
        if "propertyNames" in error.absolute_schema_path:  # a key, e.g. an agent id
            return [FlowkitError(f"{where}: key {describe(error.instance)} is not "
                                 f"{_form(error.validator_value)}",
                                 doc.at(path + (error.instance,), key=True))]
        return [FlowkitError(f"{where}: {describe(error.instance)} is not "
                             f"{_form(error.validator_value)}", loc)]
    if kind == "format":
        return [FlowkitError(f"{where}: {describe(error.instance)} is not a valid "
                             f"{error.validator_value} (YYYY-MM-DD)", loc)]
    return [FlowkitError(f"{where}: {error.message}", loc)]


def _explain_union(error: Any, doc: Located, validator: Any) -> list[FlowkitError]:
    """A value failed every branch of `X | Y | None`. If it has the type of some branch, that
    branch's errors say what is wrong; otherwise name every type that would do."""
    failures: dict[int, list[Any]] = {}
    for sub in error.context:
        failures.setdefault(sub.relative_schema_path[0], []).append(sub)
    branches = error.validator_value
    wrong_type = [i for i, errs in failures.items()
                  if len(errs) == 1 and errs[0].validator == "type" and not errs[0].relative_path]
    fitting = [i for i in failures if i not in wrong_type]
    if fitting:
        return [p for i in fitting for e in failures[i] for p in _explain(e, doc, validator)]
    expected = [t for i in wrong_type
                for t in _as_list(failures[i][0].validator_value) if branches[i] != {"type": "null"}]
    return [FlowkitError(_expected(dotted(tuple(error.absolute_path)) or "the workflow",
                                   expected, error.instance), doc.at(tuple(error.absolute_path)))]


def _form(pattern: str) -> str:
    from flowkit.fields import PATTERN_NAMES

    return PATTERN_NAMES.get(pattern, f"of the form {pattern}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expected(where: str, types: Any, instance: Any) -> str:
    types = [t for t in _as_list(types) if t != "null"]
    names = list(dict.fromkeys(_TYPE_NAMES.get(t, t) for t in types))
    return (f"{where}: expected {' or '.join(names) or 'null'}, got {describe(instance)}"
            f"{'; remove the quotes' if _quoted(instance, types) else ''}")


def _quoted(instance: Any, types: list[str]) -> bool:
    """A quoted "false" or "5" where a boolean or number belongs."""
    if not isinstance(instance, str):
        return False
    if "boolean" in types and instance.lower() in ("true", "false"):
        return True
    try:
        number = float(instance)
    except ValueError:
        return False
    if not math.isfinite(number):  # "nan", "inf": no number without quotes either
        return False
    return "number" in types or "integer" in types and number.is_integer()


def _is_step_union(schema: dict[str, Any]) -> bool:
    from flowkit.patterns import patterns

    refs = {b.get("$ref", "") for b in schema.get("anyOf", [])}
    return all(f"#/$defs/{p.step_model.__name__}" in refs for p in patterns())


def _explain_step(error: Any, doc: Located, validator: Any, path: tuple) -> list[FlowkitError]:
    """A pipeline step failed every branch: pick the branch its pattern key names."""
    from flowkit.patterns import get, pattern_keys
    from flowkit.fields import ID_PATTERN

    keys_known = pattern_keys()
    step = error.instance
    where = dotted(path)
    needs = f"a step is an agent id or a mapping with one of {', '.join(keys_known)}"
    if isinstance(step, str):
        return [FlowkitError(f"{where}: {describe(step)} is not {_form(ID_PATTERN)}",
                             doc.at(path))]
    if not isinstance(step, dict):
        return [FlowkitError(f"{where}: {needs}; got {describe(step)}", doc.at(path))]
    keys = [k for k in keys_known if k in step]
    if len(keys) > 1:
        return [FlowkitError(f"{where}: a step has exactly one pattern key, found "
                             f"{' and '.join(keys)}", doc.at(path + (keys[1],), key=True))]
    if not keys:
        others = [k for k in step if k not in ("id", "when")]
        if others:
            message = _unknown_key(others[0], list(keys_known), path)
            if "did you mean" not in message:
                message += f"; {needs}"
            return [FlowkitError(message, doc.at(path + (others[0],), key=True))]
        return [FlowkitError(f"{where}: {needs}", doc.at(path))]
    name = get(keys[0]).step_model.__name__
    sub = validator.evolve(schema={"$ref": f"#/$defs/{name}", "$defs": load()["$defs"]})
    problems = []
    for sub_error in sub.iter_errors(step):
        sub_error.path.extendleft(reversed(path))  # make paths absolute for locations
        problems.extend(_explain(sub_error, doc, validator))
    return problems


def _unknown_key(key: str, allowed: list[str], path: tuple) -> str:
    place = f" in {dotted(path)}" if path else ""
    return f"unknown key '{key}'{place}{suggest(key, allowed)}"


def text() -> str:
    """The schema file's exact contents."""
    return json.dumps(generate(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    target = asset_dir("schemas") / "workflow.schema.json"
    if "--write" in argv:
        target.write_text(text())
        print(f"wrote {target}")
    else:
        sys.stdout.write(text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
