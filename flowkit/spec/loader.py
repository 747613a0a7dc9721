"""Load a firm file: YAML with locations → schema check → semantic checks → pydantic spec.

All problems are collected and raised together as one SpecError."""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowkit._paths import asset_dir
from flowkit.errors import ConfigError, FlowkitError, Location, SpecError
from flowkit.spec import schema, semantics
from flowkit.spec.yamlsrc import Located, parse


@dataclass(frozen=True)
class LoadedWorkflow:
    spec: Any            # flowkit.spec.models.Workflow
    path: Path
    text: str
    sha256: str
    data: dict[str, Any]  # the resolved plain data (after overrides and interpolation)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_workflow(path: str | os.PathLike[str], overrides: list[str] | None = None,
                  env: dict[str, str] | None = None) -> LoadedWorkflow:
    """Parse and check `path`; `overrides` are `dotted.path=value` strings (--set)."""
    file = Path(path)
    shown = str(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise FlowkitError(f"cannot read workflow: {exc.strerror or exc}",
                           Location(shown, 1, 1)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([FlowkitError(f"the file is not UTF-8 text (byte {exc.start})",
                                      Location(shown, 1, 1))]) from None
    doc = parse(text, shown)
    if doc.data is not None and not isinstance(doc.data, dict):
        doc.problems.append(FlowkitError("a workflow file is a mapping (version, name, models, "
                                         "agents, pipeline, market, ...)", doc.at(())))
    if doc.problems and doc.data is None or (doc.data is not None and not isinstance(doc.data, dict)):
        raise SpecError(doc.problems)
    for item in overrides or []:
        _apply_override(doc, item)
    problems = list(doc.problems)
    yaml_spots = {p.location for p in doc.problems}  # one message per spot: the YAML one says why
    problems += [p for p in schema.check(doc) if p.location not in yaml_spots]
    problems += semantics.check(doc, file.parent, asset_dir("prompts"))
    if problems:
        raise SpecError(problems)
    data = _interpolate(doc, os.environ if env is None else env)
    spec = _to_model(data, doc)
    return LoadedWorkflow(spec, file, text, hashlib.sha256(raw).hexdigest(), data)


def _apply_override(doc: Located, item: str) -> None:
    """--set a.b.c=value: the value is read as a YAML scalar or flow collection."""
    import yaml

    key, sep, value = item.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not sep or not parts:
        raise ConfigError(f"--set expects dotted.path=value, got '{item}'")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: cannot read value '{value}'") from None
    if hasattr(parsed, "isoformat"):
        parsed = parsed.isoformat()
    node: Any = doc.data
    path: tuple = ()
    for part in parts[:-1]:
        step: Any = int(part) if isinstance(node, list) and part.isdigit() else part
        if isinstance(node, dict):
            node = node.setdefault(step, {})
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
        else:
            raise ConfigError(f"--set {key}: '{part}' is not a mapping key or list index here")
        path += (step,)
    last: Any = int(parts[-1]) if isinstance(node, list) and parts[-1].isdigit() else parts[-1]
    if isinstance(node, dict):
        node[last] = parsed
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = parsed
    else:
        raise ConfigError(f"--set {key}: cannot set '{parts[-1]}' here")
    where = Location("--set " + key, 1, 1)
    doc.values[path + (last,)] = where


def _interpolate(doc: Located, env: Any) -> dict[str, Any]:
    data = copy.deepcopy(doc.data)
    problems = []
    for path, value in semantics.env_fields(data):
        try:
            resolved = semantics.interpolate(value, env)
        except FlowkitError as exc:
            problems.append(FlowkitError(exc.message, doc.at(path)))
            continue
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = resolved
    if problems:
        raise SpecError(problems)
    return data


def _to_model(data: dict[str, Any], doc: Located) -> Any:
    from pydantic import ValidationError

    from flowkit.spec.models import Workflow

    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:  # the schema should have caught it: still say where
        raise SpecError([FlowkitError(err["msg"], doc.at(_pydantic_path(err["loc"])))
                         for err in exc.errors()]) from None


def _pydantic_path(loc: tuple) -> tuple:
    # pydantic inserts union branch names (e.g. 'DebateStep', 'str') into locations.
    return tuple(p for p in loc if isinstance(p, int) or not (p[:1].isupper() or p in ("str",)))
