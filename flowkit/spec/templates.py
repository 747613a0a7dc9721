"""jinja2 in the immutable sandbox with StrictUndefined: prompts and `when:` conditions.

Templates come from YAML and prompt files a user may not fully trust, and they read data
(headlines) nobody controls, so they never get write access or attribute tricks."""

from __future__ import annotations

import functools
import importlib.util
import json
import marshal
import re
import string
import time
from collections.abc import Iterator
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any, Callable

import jinja2
import orjson
from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.filters import FILTERS as DEFAULT_FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace, generate_lorem_ipsum

from flowkit import _cache
from flowkit._paths import asset_dir
from flowkit.errors import FlowkitError
from flowkit.spec.models import TemplateLimits as Limits


def _num(value: Any, digits: int = 2) -> str:
    """Format a number for prompts; None (missing data) shows as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return fence(value)  # text where a number belongs came from a data file


def _tojson(value: Any, indent: int | None = None) -> str:
    """JSON for prompts: compact, via orjson (every later agent re-reads the earlier outputs,
    so this runs a dozen times per step); indented on request."""
    if indent is not None and not 0 <= int(indent) <= MAX_INDENT:
        raise SecurityError(f"tojson indent must be between 0 and {MAX_INDENT}")
    if indent is None:
        try:
            return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, ValueError):  # lone surrogates, huge ints: the stdlib copes
            pass
    separators = None if indent is not None else (",", ":")
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False, separators=separators)


# Third-party text must not open or close the fenced blocks prompts put it in (<news>...),
# nor start a line of its own that reads like the prompt's structure.
_FENCE = str.maketrans({"<": "‹", ">": "›", "\n": " ", "\r": " ", "\t": " ", "\u2028": " ",
                        "\u2029": " "})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def fence(value: Any) -> str:
    """Third-party text (a headline, source, url, any text read from a data file) as one inert
    line of data: no angle brackets, line breaks or control/bidi characters. The `fence`
    filter; every prompt passes every such field through it."""
    if value is None:
        return ""
    return _CONTROL.sub("", str(value).translate(_FENCE))


MAX_INDENT = 16           # widest indent |tojson may use
MAX_POWER = 1024          # largest exponent `**` may use in a template or condition
MAX_INT_BITS = 65_536     # largest integer `**` or `*` may build (about 20,000 digits)
MAX_REPEAT = 100_000      # longest string or list `*` may build


_limits: ContextVar[Limits] = ContextVar("flowkit_template_limits", default=Limits())


def use_limits(limits: Limits) -> None:
    """The limits renderings in this context (a run, and the tasks it starts) obey."""
    _limits.set(limits)


class _Budget:
    """What is left of the limits during one rendering."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.iterations = limits.iterations

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {self.limits.seconds:g} s "
                                f"(runtime.templates.seconds)")

    def check_size(self, size: int, what: str) -> None:
        if size > self.limits.output_chars:
            raise SecurityError(f"{what} would be {size:,} characters, more than "
                                f"{self.limits.output_chars:,} (runtime.templates.output_chars)")


_budget: ContextVar[_Budget | None] = ContextVar("flowkit_template_budget", default=None)


def _current() -> _Budget:
    return _budget.get() or _Budget(_limits.get())


def _counted(iterable: Any) -> Iterator[Any]:
    """Every `{% for %}` iterates through this (see _Sandbox._parse): loops are counted."""
    budget = _current()
    for item in iterable:
        budget.iterations -= 1
        if budget.iterations < 0:
            raise SecurityError(f"loops ran more than {budget.limits.iterations:,} iterations "
                                f"(runtime.templates.iterations)")
        budget.check_time()
        yield item


_PERCENT_SPEC = re.compile(r"%[#0\- +]*(\d+|\*)?(?:\.(\d+|\*))?")


def _check_percent_format(fmt: str) -> None:
    """`'%900000000s' % x` and `|format`: widths and precisions within the output bound."""
    for m in _PERCENT_SPEC.finditer(fmt):
        for n in m.groups():
            if n == "*":
                raise SecurityError("`*` widths are not allowed in template format strings")
            if n is not None:
                _current().check_size(int(n), "a formatted field")


def _check_brace_format(fmt: str) -> None:
    """`'{:>900000000}'.format(x)`: the same for str.format specs (nested fields refused)."""
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is not None and spec:
            if "{" in spec:
                raise SecurityError("nested fields in format specs are not allowed in templates")
            for n in re.findall(r"\d+", spec):
                _current().check_size(int(n), "a formatted field")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _sized(name: str, estimate: Callable[..., int]) -> Callable[..., Any]:
    """Filter `name`, refused when `estimate(args...)` of its output exceeds the bound."""
    inner = DEFAULT_FILTERS[name]

    @functools.wraps(inner)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        # pass_environment/pass_eval_context filters get that object first: skip it
        skip = 1 if getattr(inner, "jinja_pass_arg", None) else 0
        value, *rest = args[skip:]
        if isinstance(value, Iterator):  # a generator (|map...): iterate it once, for both
            value = list(value)
        _current().check_size(estimate(value, *rest, **kwargs), f"the output of |{name}")
        return inner(*args[:skip], value, *rest, **kwargs)

    return bounded


def _lines(s: Any) -> int:
    return str(s).count("\n") + 1


_ESTIMATES: dict[str, Callable[..., int]] = {
    "center": lambda s, width=80, **_: max(len(str(s)), int(width)),
    "indent": lambda s, width=4, *a, **k: len(str(s)) + _lines(s) * (
        len(width) if isinstance(width, str) else int(width)),
    "replace": lambda s, old, new, count=None, **_: len(str(s)) + (
        (str(s).count(str(old)) if old else len(str(s)) + 1) * len(str(new))),
    "wordwrap": lambda s, width=79, break_long_words=True, wrapstring=None, **_: len(str(s)) * (
        1 + len(wrapstring or "\n")),
    "join": lambda value, d="", attribute=None: _join_size(value, d),
    "batch": lambda value, linecount, fill_with=None: max(_size(value), int(linecount)),
    "slice": lambda value, slices, fill_with=None: max(_size(value), int(slices)),
    "format": lambda value, *args, **kwargs: _format_size(str(value)),
    "truncate": lambda s, length=255, *a, **k: len(str(s)),
}


def _format_size(fmt: str) -> int:
    _check_percent_format(fmt)  # the widths are what can grow; the rest is about len(fmt)
    return len(fmt)


def _join_size(value: Any, d: Any) -> int:
    return sum(len(str(v)) for v in value) + len(str(d)) * max(0, len(value) - 1)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    _current().check_size(int(n) * int(max) * 12, "lipsum()")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class _Namespace(Namespace):
    """namespace() whose attributes cannot hold oversized strings or lists (doubling a string
    in a loop is the classic way to exhaust memory in jinja)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _current().check_size(_size(value), f"namespace attribute {name!r}")
        super().__setitem__(name, value)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded: every loop is counted, `**`, `*`, `+`, `%` and the
    filters that grow text check the size they would build, calls and loops check the clock."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "flowkit_counted", [], [], None, None,
                                     lineno=loop.iter.lineno)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _current()
        if operator == "**" and isinstance(right, (int, float)):
            if abs(right) > MAX_POWER:
                raise SecurityError(f"exponent {right} is larger than {MAX_POWER}")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() * right > MAX_INT_BITS:
                raise SecurityError(f"`**` would build an integer of more than {MAX_INT_BITS} bits")
        elif operator == "*":
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise SecurityError(f"`*` would build an integer of more than {MAX_INT_BITS} bits")
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                        and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"`*` would build a sequence longer than {MAX_REPEAT}")
        elif operator == "+":
            budget.check_size(_size(left) + _size(right), "`+`")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _current()
        budget.check_time()
        for arg in (*args, *kwargs.values()):  # a recursive macro doubling its argument
            budget.check_size(_size(arg), "an argument")
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_brace_format(value.__self__)
        return wrapped


def static_problems(tree: nodes.Node, limits: Limits) -> list[str]:
    """What `flowkit validate` can see will break the limits before anything runs: literal
    widths, sizes, exponents and loop counts beyond them."""
    problems: list[str] = []
    chars, iterations = limits.output_chars, limits.iterations

    const = _literal

    def arg(call: Any, index: int, name: str) -> Any:
        if len(call.args) > index:
            return const(call.args[index])
        return next((const(k.value) for k in call.kwargs if k.key == name), None)

    def big(value: Any, bound: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > bound

    def loops(node: nodes.Node, outer: int) -> None:  # nested literal ranges multiply
        for child in node.iter_child_nodes():
            total = outer * (_range_len(child.iter) or 1) if isinstance(child, nodes.For) else outer
            if total > iterations:
                problems.append(f"loops would run {total:,} iterations, more than {iterations:,} "
                                f"(runtime.templates.iterations)")
            else:
                loops(child, total)

    for call in tree.find_all(nodes.Call):
        fn = call.node.name if isinstance(call.node, nodes.Name) else None
        if fn == "range" and (n := _range_len(call)) is not None and n > iterations:
            problems.append(f"range() of {n:,} items is more than {iterations:,} "
                            f"(runtime.templates.iterations)")
        elif fn == "lipsum" and any(big(arg(call, i, k), 1000) for i, k in ((0, "n"), (3, "max"))):
            problems.append("lipsum() that large would exhaust memory")
        elif isinstance(call.node, nodes.Getattr) and call.node.attr == "format" \
                and isinstance(const(call.node.node), str):
            problems += _static_format(lambda: _check_brace_format(call.node.node.value), limits)
    for f in tree.find_all(nodes.Filter):
        name, first = f.name, 0
        if name == "map" and f.args and const(f.args[0]) in ("center", "indent", "batch", "slice"):
            name, first = const(f.args[0]), 1  # |map('center', n) applies |center(n)
        width = arg(f, first, "indent" if name == "tojson" else "width")
        if name in ("center", "indent", "batch", "slice") and big(width, chars):
            problems.append(f"|{name}({width:,}) would build more than {chars:,} characters "
                            f"(runtime.templates.output_chars)")
        elif f.name == "tojson" and big(width, MAX_INDENT):
            problems.append(f"tojson indent must be between 0 and {MAX_INDENT}")
        elif f.name == "format" and isinstance(const(f.node), str):
            problems += _static_format(lambda: _check_percent_format(f.node.value), limits)
    for op in tree.find_all(nodes.Mod):
        if isinstance(const(op.left), str):
            problems += _static_format(lambda: _check_percent_format(op.left.value), limits)
    for op in tree.find_all(nodes.Pow):
        base, exponent = const(op.left), const(op.right)
        if isinstance(exponent, int) and abs(exponent) > MAX_POWER:
            problems.append(f"exponent {exponent} is larger than {MAX_POWER}")
        elif isinstance(base, int) and isinstance(exponent, int) \
                and base.bit_length() * exponent > MAX_INT_BITS:
            problems.append(f"`**` would build an integer of more than {MAX_INT_BITS} bits")
    for op in tree.find_all(nodes.Mul):
        for seq, n in ((op.left, op.right), (op.right, op.left)):
            if isinstance(const(seq), (str, list, tuple)) and isinstance(const(n), int) \
                    and len(const(seq)) * const(n) > MAX_REPEAT:
                problems.append(f"`*` would build a sequence longer than {MAX_REPEAT}")
    loops(tree, 1)
    return problems


def _literal(node: Any) -> Any:
    """The value of a literal, or of integer arithmetic on literals small enough to compute
    (`10**9`, `9 * 100000000`); None when it is not one."""
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Neg):
        value = _literal(node.node)
        return -value if isinstance(value, int) else None
    if not isinstance(node, (nodes.Pow, nodes.Mul, nodes.Add, nodes.Sub)):
        return None
    left, right = _literal(node.left), _literal(node.right)
    if not (type(left) is int and type(right) is int):
        return None
    if isinstance(node, nodes.Pow):
        if not 0 <= right <= MAX_POWER or left.bit_length() * right > MAX_INT_BITS:
            return None
        return left ** right
    if isinstance(node, nodes.Mul):
        return left * right if left.bit_length() + right.bit_length() <= MAX_INT_BITS else None
    return left + right if isinstance(node, nodes.Add) else left - right


def _range_len(node: Any) -> int | None:
    """Length of `range(<literals>)` (counted or not), else None."""
    if isinstance(node, nodes.Filter) and node.name == "flowkit_counted":
        node = node.node
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name)
            and node.node.name == "range" and node.args and not node.kwargs
            and all(type(_literal(a)) is int for a in node.args)):
        return None
    try:
        return len(range(*(_literal(a) for a in node.args)))
    except (TypeError, ValueError, OverflowError):
        return None


def _static_format(check: Callable[[], None], limits: Limits) -> list[str]:
    token = _budget.set(_Budget(limits))
    try:
        check()
    except SecurityError as exc:
        return [str(exc)]
    finally:
        _budget.reset(token)
    return []


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["num"] = _num
    env.filters["tojson"] = _tojson
    env.filters["fence"] = fence
    env.filters["flowkit_counted"] = _counted
    for name, estimate in _ESTIMATES.items():
        env.filters[name] = _sized(name, estimate)
    env.globals["lipsum"] = _lipsum
    env.globals["namespace"] = _Namespace
    return env


# What the code jinja2 generates for a template depends on, besides the template's source.
_SETTINGS = ("block_start_string", "block_end_string", "variable_start_string",
             "variable_end_string", "comment_start_string", "comment_end_string",
             "line_statement_prefix", "line_comment_prefix", "trim_blocks", "lstrip_blocks",
             "newline_sequence", "keep_trailing_newline", "optimized", "is_async", "sandboxed",
             "autoescape", "finalize", "undefined")


@lru_cache(maxsize=1)
def _code_key() -> str:
    """The compiled-code cache's key for this environment: jinja2's and Python's versions, the
    environment's settings, filter and test names, and this module (the sandbox, `_parse`)."""
    env = environment()
    settings = {a: repr(getattr(env, a)) for a in _SETTINGS}
    settings.update(filters=sorted(env.filters), tests=sorted(env.tests),
                    extensions=sorted(env.extensions), binops=sorted(env.intercepted_binops),
                    unops=sorted(env.intercepted_unops), cls=type(env).__qualname__)
    return _cache.key(jinja2.__version__, importlib.util.MAGIC_NUMBER, json.dumps(settings),
                      Path(__file__).read_bytes())


@lru_cache(maxsize=512)
def _compile_source(source: str, name: str) -> Any:
    """`environment().from_string(source)`, with the compiled code kept in flowkit's cache
    (flowkit/_cache.py): compiling is most of a firm's start-up (~10 ms a prompt)."""
    env = environment()
    entry = _cache.key(_code_key(), source)
    code = _cached_code(entry)
    if code is None:
        try:
            code = env.compile(source)
        except TemplateError as exc:
            raise FlowkitError(f"template {name}: {exc}") from None
        _cache.write("templates", entry, marshal.dumps(code))
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _cached_code(entry: str) -> CodeType | None:
    data = _cache.read("templates", entry)
    if data is None:
        return None
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def template(prompt: Any, role_prompt_file: str | None, base_dir: Path) -> Any:
    """Compile the agent's prompt: {inline: ...}, a file path, or the role's default file."""
    if prompt is not None and hasattr(prompt, "inline"):
        return _compile_source(prompt.inline, "inline prompt")
    rel = prompt if isinstance(prompt, str) else role_prompt_file
    if rel is None:
        raise FlowkitError("the role has no prompt; give the agent or its role a `prompt:`")
    from flowkit.spec.semantics import outside, readable_roots

    for base in (base_dir, asset_dir("prompts"), asset_dir("prompts").parent):
        path = base / rel
        if path.is_file():
            # A path the workflow wrote is bounded; a registered role's own file (an installed
            # package's, given as an absolute path) is as trusted as the package's code.
            if isinstance(prompt, str) and outside(path, readable_roots(base_dir,
                                                                        asset_dir("prompts"))):
                raise FlowkitError(f"prompt file '{rel}' is outside the workflow's folder and "
                                   f"flowkit's prompts")
            return _compile_source(path.read_text(encoding="utf-8"), str(rel))
    raise FlowkitError(f"prompt file '{rel}' not found")


def render(compiled: Any, variables: dict[str, Any], name: str) -> str:
    """The prompt text, within the limits (time, size, loop iterations)."""
    budget = _Budget(_limits.get())
    token = _budget.set(budget)
    try:
        chunks, size = [], 0
        for chunk in compiled.generate(variables):
            size += len(chunk)
            budget.check_size(size, "the rendered prompt")
            budget.check_time()
            chunks.append(chunk)
        return "".join(chunks)
    except TemplateError as exc:
        raise FlowkitError(f"prompt of agent '{name}' failed to render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - 1/0, 'a' > 1 ... in a user's template
        raise FlowkitError(f"prompt of agent '{name}' failed to render: "
                           f"{type(exc).__name__}: {exc}") from None
    finally:
        _budget.reset(token)


@lru_cache(maxsize=256)
def condition(source: str) -> Callable[..., Any]:
    """A `when:` expression compiled once; evaluating it cannot run arbitrary code."""
    return environment().compile_expression(source, undefined_to_none=False)


def holds(source: str, variables: dict[str, Any]) -> bool:
    token = _budget.set(_Budget(_limits.get()))
    try:
        return bool(condition(source)(**variables))
    except TemplateError as exc:
        raise FlowkitError(f"condition `{source}` could not be evaluated: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - 1/0, 'a' > 1 ... the user's expression is wrong
        raise FlowkitError(f"condition `{source}` could not be evaluated: "
                           f"{type(exc).__name__}: {exc}") from None
    finally:
        _budget.reset(token)
