"""jinja2 in the immutable sandbox with StrictUndefined: prompts and `when:` conditions.

Templates come from YAML and prompt files a user may not fully trust, and they read data
(headlines) nobody controls, so they never get write access or attribute tricks."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

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
    return json.dumps(value, indent=indent, default=str, ensure_ascii=False)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                        trim_blocks=True, lstrip_blocks=True,
                                        keep_trailing_newline=False)
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


@lru_cache(maxsize=256)
def condition(source: str) -> Callable[..., Any]:
    """A `when:` expression compiled once; evaluating it cannot run arbitrary code."""
    return environment().compile_expression(source, undefined_to_none=False)


def holds(source: str, variables: dict[str, Any]) -> bool:
    try:
        return bool(condition(source)(**variables))
    except TemplateError as exc:
        raise FlowkitError(f"condition `{source}` could not be evaluated: {exc}") from None
