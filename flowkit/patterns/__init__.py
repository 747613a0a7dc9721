"""Pipeline patterns, registered by their YAML key. Each implements `Pattern` (base.py) whole:
step model, semantic checks, compiled node (run and call plan), and drawing. Dispatch goes
through this registry and is exhaustive: a step no pattern owns, or a pattern missing a piece,
is an error naming it, never a fallthrough.

The workflow language is built from the registry once, when `flowkit.spec.models` is first
imported (pydantic cannot add a branch to a union later): a pattern from another package
registers before any workflow is loaded (see docs/extending-patterns.md)."""

from __future__ import annotations

import inspect
from importlib import import_module
from typing import Any, Union

from flowkit.errors import FlowkitError
from flowkit.patterns.base import Pattern, StepBase

# The built-in patterns, in the order the schema lists them; a new one is one more name here.
BUILTIN = ("agent", "sequential", "parallel", "hierarchical", "debate", "broadcast")

_REGISTRY: dict[str, Pattern] = {}
_FROZEN: list[Any] = []  # the Step union, once built
_PIECES = ("key", "step_model", "node", "check", "compile", "render")


def register(pattern: Pattern) -> None:
    """Add a pattern after the built-ins; every piece of the contract must be there."""
    _builtins()
    _add(pattern)


def _add(pattern: Pattern) -> None:
    key = getattr(pattern, "key", None) or type(pattern).__name__
    missing = [p for p in _PIECES if getattr(pattern, p, None) is None]
    missing += [f"{p} (still abstract)" for p in getattr(type(pattern), "__abstractmethods__", ())]
    node = getattr(pattern, "node", None)
    if inspect.isclass(node):
        missing += [f"node.{m}" for m in sorted(getattr(node, "__abstractmethods__", ()))]
    model = getattr(pattern, "step_model", None)
    if inspect.isclass(model) and not (issubclass(model, StepBase) and key in model.model_fields):
        missing.append(f"step_model (a StepBase with a '{key}' field)")
    if missing:
        raise FlowkitError(f"pattern '{key}' is incomplete: no {', '.join(missing)}")
    if _FROZEN:
        raise FlowkitError(f"pattern '{key}' registered after the workflow language was built; "
                           f"register patterns before loading a workflow")
    if key in _REGISTRY:
        raise FlowkitError(f"pattern '{key}' is already registered")
    _REGISTRY[key] = pattern


def _builtins() -> None:
    if not _REGISTRY:
        for name in BUILTIN:
            _add(import_module(f"flowkit.patterns.{name}").PATTERN)


def patterns() -> list[Pattern]:
    """Every registered pattern, built-ins first, in registration order."""
    _builtins()
    return list(_REGISTRY.values())


def pattern_keys() -> tuple[str, ...]:
    return tuple(p.key for p in patterns())


def get(key: str) -> Pattern:
    """The pattern registered under `key`."""
    _builtins()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise FlowkitError(f"no pattern '{key}' is registered (known: "
                           f"{', '.join(_REGISTRY)})") from None


def of(step: Any) -> Pattern:
    """The pattern that owns a validated step: an agent id, or a step model instance."""
    if isinstance(step, str):
        return get("agent")
    for pattern in patterns():
        if type(step) is pattern.step_model:
            return pattern
    raise FlowkitError(f"no pattern owns a step of type {type(step).__name__}")


def step_union() -> Any:
    """The pydantic type of one pipeline step: an agent id or any registered step model.
    Freezes the registry."""
    if not _FROZEN:
        from flowkit.fields import Id

        models = [p.step_model for p in patterns()]
        union = Union[(Id, *models)]  # type: ignore[valid-type]
        for model in models:  # bodies that nest steps name them "Step"
            model.model_rebuild(_types_namespace={"Step": union})
        _FROZEN.append(union)
    return _FROZEN[0]
