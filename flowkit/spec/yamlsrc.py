"""YAML → plain JSON-like data, keeping a file:line:col for every key and value.

PyYAML's `safe_load` silently accepts duplicate keys and YAML 1.1 coercions (`no` → False,
`12:30` → 750, `0755` → 493). We compose the node tree instead and build values ourselves,
so each of those is reported with its location instead of silently changing the meaning of
a firm. Building never raises: every problem lands in `Located.problems`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from flowkit.errors import FlowkitError, Location
from flowkit.spec.messages import describe, dotted

Path_ = tuple[Any, ...]  # JSON path: keys and list indexes

MAX_DEPTH = 64          # far beyond any real firm; keeps every later recursion shallow
MAX_VALUES = 50_000     # an alias that expands past this is a "billion laughs" bomb

_CORE = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_CORE + t for t in ("str", "map", "seq")}  # explicit tags that change nothing
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
_OCTAL_11 = re.compile(r"[-+]?0[0-7_]+")
# YAML 1.2 numbers that the YAML 1.1 resolver leaves as text (1e6, 1.5E-3): read as 1.2 does.
_FLOAT_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_LOADER = yaml.SafeLoader("")  # resolver and constructor for single scalars


@dataclass
class Located:
    """Parsed data plus where each path starts (value) and where each key is written."""

    data: Any
    file: str
    values: dict[Path_, Location] = field(default_factory=dict)
    keys: dict[Path_, Location] = field(default_factory=dict)
    problems: list[FlowkitError] = field(default_factory=list)

    def at(self, path: Path_, *, key: bool = False) -> Location:
        """The location of `path` (its key when `key`), or of its nearest existing ancestor."""
        p = tuple(path)
        while p:
            loc = (self.keys.get(p) if key else None) or self.values.get(p)
            if loc:
                return loc
            p = p[:-1]
        return self.values.get((), Location(self.file, 1, 1))


def parse(text: str, file: str) -> Located:
    """Compose `text`; syntax errors become one located FlowkitError in `problems`."""
    out = Located(None, file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        out.problems.append(_syntax_error(exc, file))
        return out
    except yaml.reader.ReaderError as exc:
        out.problems.append(FlowkitError(
            f"YAML syntax error: special character #x{exc.character:04x} is not allowed",
            _offset_location(text, exc.position, file)))
        return out
    except RecursionError:  # PyYAML composes recursively; find where nesting got too deep
        out.problems.append(FlowkitError(f"nesting deeper than {MAX_DEPTH} levels",
                                         _too_deep(text, file)))
        return out
    if node is None:
        out.problems.append(FlowkitError("the file holds no YAML document; expected a workflow "
                                         "mapping (version, name, models, ...)",
                                         Location(file, 1, 1)))
        return out
    out.data = _Builder(out).build(node, (), ())
    return out


# PyYAML's parser vocabulary ("<block end>", "simple key") in a user's words. Each entry:
# problem pattern, message ({ctx} is the line where the construct started, {0} the match's
# first group), and whether the construct's start is the better place to point at.
_HINTS = (
    (r"expected <block end>, but found", "bad indentation: this line does not line up with the "
     "block that starts at line {ctx}", False),
    (r"mapping values are not allowed here", "unexpected ':'; quote text that contains ': ', or "
     "check the indentation", False),
    (r"could not find expected ':'", "this key has no ':' after it", True),
    (r"found unexpected end of stream", "this quoted text is never closed", True),
    (r"expected ',' or '([}\]])', but got", "expected ',' or '{0}': is the bracket opened at "
     "line {ctx} closed, and are its items separated by commas?", False),
    (r"found character '\\t' that cannot start any token", "tab character; YAML indentation "
     "uses spaces", False),
    (r"found character '(.)' that cannot start any token", "'{0}' cannot start a value; quote "
     "the text", False),
    (r"expected the node content, but found '<stream end>'", "the file ends where a value "
     "should be; is a bracket left open?", False),
    (r"found undefined alias '(.*)'", "*{0} refers to no anchor &{0} written before it", False),
    (r"but found another document", "a second YAML document ('---'); a workflow file holds "
     "exactly one", False),
)
_SYNTAX_HINTS = [(re.compile(pattern), message, at_start) for pattern, message, at_start in _HINTS]


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> FlowkitError:
    mark = exc.problem_mark or exc.context_mark
    start = exc.context_mark or mark
    problem = exc.problem or exc.context or "invalid YAML"
    ctx = start.line + 1 if start else 1
    for pattern, message, at_start in _SYNTAX_HINTS:
        found = pattern.search(problem)
        if found:
            what = message.format(*found.groups(), ctx=ctx)
            mark = start if at_start and start else mark
            break
    else:
        what = f"{problem} ({exc.context} at line {ctx})" if exc.context and exc.problem else problem
    loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
    return FlowkitError(f"YAML syntax error: {what}", loc)


def _offset_location(text: str, offset: int, file: str) -> Location:
    line_start = text.rfind("\n", 0, offset) + 1
    return Location(file, text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _too_deep(text: str, file: str) -> Location:
    """Where nesting first passes MAX_DEPTH, found with the (iterative) event parser."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return Location(file, event.start_mark.line + 1, event.start_mark.column + 1)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return Location(file, 1, 1)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


def _implicit_tag(node: yaml.Node) -> str:
    """The tag PyYAML would give `node` had no tag been written."""
    if isinstance(node, yaml.ScalarNode):
        plain = node.style is None
        return _LOADER.resolve(yaml.ScalarNode, node.value, (plain, not plain))
    return _LOADER.resolve(type(node), None, (True, False))


class _Builder:
    def __init__(self, out: Located):
        self.out = out
        self.count = 0

    def problem(self, message: str, loc: Location) -> None:
        self.out.problems.append(FlowkitError(message, loc))

    def build(self, node: yaml.Node, path: Path_, stack: tuple[int, ...]) -> Any:
        loc = Location(self.out.file, node.start_mark.line + 1, node.start_mark.column + 1)
        self.out.values.setdefault(path, loc)
        self.count += 1
        if self.count == MAX_VALUES + 1:
            self.problem(f"the document expands to more than {MAX_VALUES} values (aliases "
                         f"repeating aliases?)", loc)
        if self.count > MAX_VALUES:
            return None
        if id(node) in stack:  # an alias inside its own anchor would expand forever
            self.problem("recursive alias: this node contains itself (an endless loop)", loc)
            return None
        if len(stack) >= MAX_DEPTH:
            self.problem(f"nesting deeper than {MAX_DEPTH} levels", loc)
            return None
        explicit = node.tag != _implicit_tag(node)
        if explicit and node.tag not in _PLAIN_TAGS:
            self.problem(f"YAML tag {_short_tag(node.tag)} is not supported; a workflow holds "
                         f"plain values", loc)
            return node.value if isinstance(node, yaml.ScalarNode) else None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, stack + (id(node),))
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), stack + (id(node),))
                    for i, item in enumerate(node.value)]
        return self.scalar(node, loc, explicit)

    def mapping(self, node: yaml.MappingNode, path: Path_, stack: tuple[int, ...]) -> dict:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_loc = Location(self.out.file, key_node.start_mark.line + 1,
                               key_node.start_mark.column + 1)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem("mapping keys must be plain strings", key_loc)
                continue
            if key_node.tag == _CORE + "merge":
                self.problem("merge keys (<<) are not supported; write the keys out", key_loc)
                continue
            key = key_node.value
            if key in result:
                first = self.out.keys[path + (key,)]
                place = f" in {dotted(path)}" if path else ""
                self.problem(f"duplicate key {describe(key)}{place} (first written at line "
                             f"{first.line})", key_loc)
                continue
            self.out.keys[path + (key,)] = key_loc
            result[key] = self.build(value_node, path + (key,), stack)
        return result

    def scalar(self, node: yaml.ScalarNode, loc: Location, explicit: bool) -> Any:
        value, tag = node.value, node.tag
        if tag == _CORE + "str":
            if node.style is None and not explicit and _FLOAT_12.fullmatch(value):
                return self.number(node, loc)
            return value
        if tag == _CORE + "null":
            return None
        if tag == _CORE + "bool":
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            self.problem(f"'{value}' is read as a boolean by YAML 1.1; write true/false, or "
                         f"quote it (\"{value}\") if you meant the text", loc)
            return value
        if tag in (_CORE + "int", _CORE + "float"):
            if _SEXAGESIMAL.fullmatch(value):
                self.problem(f"'{value}' is read as a base-60 number by YAML 1.1; quote it "
                             f"(\"{value}\")", loc)
                return value
            if _OCTAL_11.fullmatch(value):
                self.problem(f"'{value}' is read as an octal number by YAML 1.1; quote it "
                             f"(\"{value}\") or drop the leading zero", loc)
                return value
            return self.number(node, loc)
        if tag == _CORE + "timestamp":
            try:
                _LOADER.construct_yaml_timestamp(node)
            except (ValueError, OverflowError) as exc:
                self.problem(f"invalid date '{value}': {exc}", loc)
            # JSON Schema sees the text as written: a date stays YYYY-MM-DD, a date-time is
            # reported as written rather than as Python's isoformat of it.
            return value
        return value

    def number(self, node: yaml.ScalarNode, loc: Location) -> Any:
        try:
            if node.tag == _CORE + "int":
                number: Any = _LOADER.construct_yaml_int(node)
            elif node.tag == _CORE + "float":
                number = _LOADER.construct_yaml_float(node)
            else:  # a YAML 1.2 float that the 1.1 resolver left as text
                number = float(node.value)
        except ValueError:
            self.problem(f"'{node.value[:40]}' is not a valid number", loc)
            return node.value
        if isinstance(number, float) and not abs(number) < float("inf"):
            self.problem(f"'{node.value[:40]}' is not a finite number", loc)
            return node.value
        return number
