"""Roles: the built-in role library (`registry`) and the typed outputs agents answer with
(`outputs`). Output names resolve lazily so reading the registry (as `flowkit validate` does)
does not build the pydantic models."""

from __future__ import annotations

from typing import Any

from flowkit.roles.registry import BUILTIN_ROLES, OUTPUT_NAMES, RoleInfo

_LAZY = ("OUTPUTS", "OutputInvalid", "OutputValidator", "output_json_schema", "validator_for")

__all__ = ["BUILTIN_ROLES", "OUTPUT_NAMES", "RoleInfo", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from flowkit.roles import outputs
        return getattr(outputs, name)
    raise AttributeError(f"module 'flowkit.roles' has no attribute {name!r}")
