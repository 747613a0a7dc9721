"""Load a firm file: YAML with locations → schema check → semantic checks → pydantic spec.

All problems are collected and raised together as one SpecError."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from flowkit._paths import asset_dir
from flowkit.errors import ConfigError, FlowkitError, Location, SpecError
from flowkit.spec import interpolation, schema, semantics
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
                  env: Mapping[str, str] | None = None) -> LoadedWorkflow:
    """Parse and check `path`; `overrides` are `dotted.path=value` strings (--set).

    Raises SpecError listing every problem, each with its file:line:col (ConfigError for a
    malformed --set)."""
    file = Path(path)
    shown = str(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise SpecError([FlowkitError(f"cannot read workflow: {exc.strerror or exc}",
                                      Location(shown, 1, 1))]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        col = len(raw[line_start:exc.start].decode("utf-8", "replace")) + 1  # characters, not bytes
        raise SpecError([FlowkitError(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} here); save it as UTF-8",
            Location(shown, raw.count(b"\n", 0, exc.start) + 1, col))]) from None
    doc = parse(text, shown)
    if not isinstance(doc.data, dict):
        if doc.data is not None or not doc.problems:
            doc.problems.append(FlowkitError("a workflow file is a mapping (version, name, "
                                             "models, agents, pipeline, market, ...)", doc.at(())))
        raise SpecError(doc.problems)
    for item in overrides or []:
        _apply_override(doc, item)
    strings = interpolation.check_strings(doc)
    env = os.environ if env is None else env
    doc, unset = _interpolate(doc, env)
    shape, broken = schema.check(doc)
    rules = semantics.check(doc, file.parent, asset_dir("prompts"), broken, env)
    problems = _one_per_spot([doc.problems, strings, unset, shape, rules])
    if problems:
        raise SpecError(problems)
    return LoadedWorkflow(_to_model(doc), file, text, hashlib.sha256(raw).hexdigest(), doc.data)


def _one_per_spot(stages: list[list[FlowkitError]]) -> list[FlowkitError]:
    """One message per file position: the earliest stage says best what is wrong there
    (`no` read as a boolean, not "expected a string"; a pasted key, not "bad pattern")."""
    taken: set[Location | None] = set()
    out: list[FlowkitError] = []
    for stage in stages:
        fresh = [p for p in stage if p.location not in taken]
        taken.update(p.location for p in fresh)
        out.extend(fresh)
    return out


def _apply_override(doc: Located, item: str) -> None:
    """--set a.b.c=value: the value is read as YAML, by the same rules as the file."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set expects dotted.path=value, got '{item}'")
    where = f"--set {key.strip()}"
    parsed = parse(value, where) if value.strip() else Located("", where)
    if parsed.data is None and parsed.problems:  # unreadable: report it, keep the file's value
        doc.problems.extend(parsed.problems)
        return
    node: Any = doc.data
    path: tuple = ()
    for i, part in enumerate(parts):
        step: Any = int(part) if isinstance(node, list) and part.isdigit() else part
        if not (isinstance(node, dict) or isinstance(step, int) and step < len(node)):
            raise ConfigError(f"--set {key}: '{'.'.join(parts[:i])}' has no key or index '{part}'")
        path += (step,)
        if i == len(parts) - 1:
            node[step] = parsed.data
        else:
            if isinstance(node, dict) and step not in node:
                node[step] = {}
            node = node[step]
    # The value now comes from the command line: forget the file's locations under it.
    for table in (doc.values, doc.keys):
        for stale in [p for p in table if p[:len(path)] == path]:
            del table[stale]
    doc.keys[path] = Location(where, 1, 1)
    doc.values.update({path + p: loc for p, loc in parsed.values.items()})
    doc.keys.update({path + p: loc for p, loc in parsed.keys.items()})
    doc.values.setdefault(path, Location(where, 1, 1))
    doc.problems.extend(parsed.problems)


def _interpolate(doc: Located, env: Mapping[str, str]) -> tuple[Located, list[FlowkitError]]:
    """The document with ${env:...} resolved where allowed, and the variables that could not be."""
    data = copy.deepcopy(doc.data)
    problems = []
    for path, value in interpolation.env_fields(data):
        try:
            resolved = interpolation.interpolate(value, env)
        except FlowkitError as exc:
            problems.append(FlowkitError(exc.message, doc.at(path)))
            continue
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = resolved
    return dataclasses.replace(doc, data=data), problems


def _to_model(doc: Located) -> Any:
    from pydantic import ValidationError

    from flowkit.spec.models import Workflow

    try:
        return Workflow.model_validate(doc.data)
    except ValidationError as exc:  # the schema should have caught it: still say where
        raise SpecError([FlowkitError(err["msg"], doc.at(_pydantic_path(err["loc"])))
                         for err in exc.errors()]) from None


def _pydantic_path(loc: tuple) -> tuple:
    # pydantic inserts union branch names (e.g. 'DebateStep', 'str') into locations.
    return tuple(p for p in loc if isinstance(p, int) or not (p[:1].isupper() or p in ("str",)))
