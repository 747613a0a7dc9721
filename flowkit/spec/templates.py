"""jinja2 in the immutable sandbox with StrictUndefined: prompts and `when:` conditions.

Templates come from YAML and prompt files a user may not fully trust, and they read data
(headlines) nobody controls, so they never get write access or attribute tricks."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import orjson
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from flowkit._paths import asset_dir
from flowkit.errors import FlowkitError


def _num(value: Any, digits: int = 2) -> str:
    """Format a number for prompts; None (missing data) shows as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def _tojson(value: Any, indent: int | None = None) -> str:
    """JSON for prompts: compact, via orjson (every later agent re-reads the earlier outputs,
    so this runs a dozen times per step); indented on request."""
    if indent is None:
        try:
            return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, ValueError):  # lone surrogates, huge ints: the stdlib copes
            pass
    separators = None if indent is not None else (",", ":")
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False, separators=separators)



MAX_POWER = 1024          # largest exponent `**` may use in a template or condition
MAX_REPEAT = 100_000      # longest string or list `*` may build


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus bounds on `**` and `*` so a template cannot stall or exhaust
    memory (`2**99999999`, `'x' * 10**12`)."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponent {right} is larger than {MAX_POWER}")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                        and len(seq) * n > MAX_REPEAT:
                    raise SecurityError(f"`*` would build a sequence longer than {MAX_REPEAT}")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["num"] = _num
    env.filters["tojson"] = _tojson
    return env


@lru_cache(maxsize=512)
def _compile_source(source: str, name: str) -> Any:
    try:
        return environment().from_string(source)
    except TemplateError as exc:
        raise FlowkitError(f"template {name}: {exc}") from None


def template(prompt: Any, role_prompt_file: str | None, base_dir: Path) -> Any:
    """Compile the agent's prompt: {inline: ...}, a file path, or the role's default file."""
    if prompt is not None and hasattr(prompt, "inline"):
        return _compile_source(prompt.inline, "inline prompt")
    rel = prompt if isinstance(prompt, str) else role_prompt_file
    if rel is None:
        raise FlowkitError("the role has no prompt; give the agent or its role a `prompt:`")
    for base in (base_dir, asset_dir("prompts"), asset_dir("prompts").parent):
        path = base / rel
        if path.is_file():
            return _compile_source(path.read_text(encoding="utf-8"), str(rel))
    raise FlowkitError(f"prompt file '{rel}' not found")


def render(compiled: Any, variables: dict[str, Any], name: str) -> str:
    try:
        return compiled.render(variables)
    except TemplateError as exc:
        raise FlowkitError(f"prompt of agent '{name}' failed to render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - 1/0, 'a' > 1 ... in a user's template
        raise FlowkitError(f"prompt of agent '{name}' failed to render: "
                           f"{type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=256)
def condition(source: str) -> Callable[..., Any]:
    """A `when:` expression compiled once; evaluating it cannot run arbitrary code."""
    return environment().compile_expression(source, undefined_to_none=False)


def holds(source: str, variables: dict[str, Any]) -> bool:
    try:
        return bool(condition(source)(**variables))
    except TemplateError as exc:
        raise FlowkitError(f"condition `{source}` could not be evaluated: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - 1/0, 'a' > 1 ... the user's expression is wrong
        raise FlowkitError(f"condition `{source}` could not be evaluated: "
                           f"{type(exc).__name__}: {exc}") from None
