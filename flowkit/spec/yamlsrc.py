"""YAML → plain JSON-like data, keeping a file:line:col for every key and value.

PyYAML's `safe_load` silently accepts duplicate keys and YAML 1.1 coercions (`no` → False,
`12:30` → 750). We compose the node tree instead and build values ourselves, so each of
those is reported with its location instead of silently changing the meaning of a firm."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from flowkit.errors import FlowkitError, Location

Path_ = tuple[Any, ...]  # JSON path: keys and list indexes

_BOOL_12 = {"true", "false"}
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")
_OCTAL_11 = re.compile(r"^[-+]?0[0-7_]+$")


@dataclass
class Located:
    """Parsed data plus where each path starts (value) and where each key is written."""

    data: Any
    file: str
    values: dict[Path_, Location] = field(default_factory=dict)
    keys: dict[Path_, Location] = field(default_factory=dict)
    problems: list[FlowkitError] = field(default_factory=list)

    def at(self, path: Path_, *, key: bool = False) -> Location:
        """The location of `path`, or of its nearest existing ancestor."""
        p = tuple(path)
        while p:
            loc = (self.keys if key else self.values).get(p) or self.values.get(p)
            if loc:
                return loc
            p = p[:-1]
        return self.values.get((), Location(self.file, 1, 1))


def _loc(file: str, mark: yaml.Mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def parse(text: str, file: str) -> Located:
    """Compose `text`; YAML syntax errors become one located FlowkitError in `problems`."""
    out = Located(None, file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = _loc(file, mark) if mark else Location(file, 1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        out.problems.append(FlowkitError(f"YAML syntax error: {what}", loc))
        return out
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        out.problems.append(FlowkitError(f"YAML error: {exc}", Location(file, 1, 1)))
        return out
    if node is None:
        out.problems.append(FlowkitError("the file is empty; expected a workflow mapping",
                                         Location(file, 1, 1)))
        return out
    out.data = _build(node, (), out, frozenset())
    return out


def _build(node: yaml.Node, path: Path_, out: Located, stack: frozenset[int]) -> Any:
    out.values.setdefault(path, _loc(out.file, node.start_mark))
    if id(node) in stack:  # an alias that contains itself would expand forever
        out.problems.append(FlowkitError("recursive alias: this node contains itself (an "
                                         "unbounded loop)", out.values[path]))
        return None
    if len(stack) > 64:
        out.problems.append(FlowkitError("nesting deeper than 64 levels", out.values[path]))
        return None
    stack = stack | {id(node)}
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(out.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                out.problems.append(FlowkitError("mapping keys must be plain strings", key_loc))
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                out.problems.append(FlowkitError("merge keys (<<) are not supported; write the "
                                                 "keys out", key_loc))
                continue
            key = key_node.value
            if key in result:
                first = out.keys[path + (key,)]
                out.problems.append(FlowkitError(
                    f"duplicate key '{key}' (first defined at line {first.line})", key_loc))
                continue
            out.keys[path + (key,)] = key_loc
            result[key] = _build(value_node, path + (key,), out, stack)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), out, stack) for i, item in enumerate(node.value)]
    return _scalar(node, out.values[path], out)


def _scalar(node: yaml.ScalarNode, loc: Location, out: Located) -> Any:
    value, tag = node.value, node.tag
    plain = node.style is None
    if not plain or tag == "tag:yaml.org,2002:str":
        return value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        if value.lower() in _BOOL_12:
            return value.lower() == "true"
        out.problems.append(FlowkitError(
            f"'{value}' is read as a boolean by YAML 1.1; write true/false, or quote it "
            f"(\"{value}\") if you meant the text", loc))
        return value
    if tag == "tag:yaml.org,2002:int":
        if _SEXAGESIMAL.match(value):
            out.problems.append(FlowkitError(
                f"'{value}' is read as a base-60 number by YAML 1.1; quote it (\"{value}\")", loc))
            return value
        if _OCTAL_11.match(value):
            out.problems.append(FlowkitError(
                f"'{value}' is read as an octal number by YAML 1.1; quote it or drop the "
                f"leading zero", loc))
            return value
        return yaml.SafeLoader.construct_yaml_int(_CONSTRUCTOR, node)
    if tag == "tag:yaml.org,2002:float":
        if _SEXAGESIMAL.match(value):
            out.problems.append(FlowkitError(
                f"'{value}' is read as a base-60 number by YAML 1.1; quote it (\"{value}\")", loc))
            return value
        number = yaml.SafeLoader.construct_yaml_float(_CONSTRUCTOR, node)
        if number != number or number in (float("inf"), float("-inf")):
            out.problems.append(FlowkitError(f"'{value}' is not a finite number", loc))
            return value
        return number
    if tag == "tag:yaml.org,2002:timestamp":
        try:
            stamp = yaml.SafeLoader.construct_yaml_timestamp(_CONSTRUCTOR, node)
        except ValueError as exc:
            out.problems.append(FlowkitError(f"invalid date '{value}': {exc}", loc))
            return value
        # JSON Schema sees ISO strings; dates written as YAML dates are accepted as dates.
        if isinstance(stamp, dt.datetime):
            return stamp.isoformat()
        return stamp.isoformat()
    return value


_CONSTRUCTOR = yaml.SafeLoader("")
