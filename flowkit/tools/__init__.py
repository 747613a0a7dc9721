"""Python tools agents call through the model's tool-calling interface.

A tool reads only the decision's as-of view (no look-ahead by construction). Tools are named:
flowkit's own and installed packages' through the `flowkit.tools` entry points (a function
`f(view, **kwargs)` or a `Tool`), or in-process with `@tool`; an unregistered function is
`module.path:function` in YAML."""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable

from flowkit.errors import FlowkitError, PluginError
from flowkit.plugins import TOOLS


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]       # JSON Schema of the keyword arguments
    func: Callable[..., Any]

    @property
    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def invoke(self, arguments: str, view: Any) -> Any:
        """Run with the model's JSON arguments; bad input comes back as an error the model reads."""
        try:
            kwargs = json.loads(arguments or "{}")
            if not isinstance(kwargs, dict):
                raise ValueError("arguments must be a JSON object")
            allowed = set(self.parameters.get("properties", {}))
            unknown = set(kwargs) - allowed
            if unknown:
                raise ValueError(f"unknown arguments {sorted(unknown)}")
            return self.func(view, **kwargs)
        except Exception as exc:  # the model made the mistake; it gets to see it and retry
            return {"error": f"{type(exc).__name__}: {exc}"}


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def as_tool(name: str, obj: Any) -> Tool:
    """What a `flowkit.tools` entry point names, as a Tool (the TOOLS registry's contract)."""
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return _make(name, obj, None)
    raise PluginError(f"tool '{name}' names {obj!r}: expected a function f(view, **kwargs) or a "
                      f"flowkit.tools.Tool")



def tool(name: str | None = None, description: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `func(view, **kwargs)` in this process; keyword parameters with int/float/str/bool
    hints become the tool's JSON Schema."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        TOOLS.register(name or func.__name__, _make(name or func.__name__, func, description))
        return func

    return wrap


def _make(name: str, func: Callable[..., Any], description: str | None) -> Tool:
    props, required = {}, []
    for p in list(inspect.signature(func).parameters.values())[1:]:
        props[p.name] = {"type": _JSON_TYPES.get(p.annotation if not isinstance(p.annotation, str)
                                                 else {"int": int, "float": float, "str": str,
                                                       "bool": bool}.get(p.annotation, str), "string")}
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    params = {"type": "object", "properties": props, "required": required,
              "additionalProperties": False}
    return Tool(name, description or (inspect.getdoc(func) or name).splitlines()[0], params, func)


def get(name: str) -> Tool:
    """A registered tool by name, or `module.path:function` imported on the spot."""
    if ":" not in name:
        return TOOLS[name]
    module, _, attr = name.partition(":")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise FlowkitError(f"tool '{name}' cannot be imported: {exc}") from None
    return _make(attr, func, None)
