"""`${env:NAME}` interpolation (where it may appear, how it resolves) and the scan of a
workflow's strings for pasted secrets."""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

from flowkit.errors import FlowkitError
from flowkit.secrets import key_shape
from flowkit.spec.yamlsrc import Located, Path_

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ENV_FIELDS = (("models", "*", "model"), ("models", "*", "api_base"), ("market", "path"),
              ("log", "db"))


def check_strings(doc: Located) -> list[FlowkitError]:
    """Pasted secrets and misplaced `${env:...}`. Run before the schema: when a value is a
    secret or an interpolation, that is the thing to say about it."""
    problems: list[FlowkitError] = []
    for path, text in _strings(doc.data, ()):
        if key_shape(text):
            problems.append(FlowkitError("this looks like an API key; never write keys in a "
                                         "workflow: put it in an environment variable and name "
                                         "that variable in api_key_env (e.g. OPENAI_API_KEY)",
                                         doc.at(path)))
        elif "${" in text:
            if not any(_matches(path, f) for f in ENV_FIELDS):
                problems.append(FlowkitError("${env:...} interpolation is only allowed in "
                                             "models.*.model, models.*.api_base, market.path "
                                             "and log.db", doc.at(path)))
            elif "${" in ENV_REF.sub("", text):
                problems.append(FlowkitError("malformed interpolation; write ${env:NAME} or "
                                             "${env:NAME:-default}", doc.at(path)))
    return problems


def _strings(node: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, path + (i,))
    elif isinstance(node, str):
        yield path, node


def _matches(path: Path_, pattern: Path_) -> bool:
    return len(path) == len(pattern) and all(p in ("*", x) for x, p in zip(path, pattern, strict=True))


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve ${env:NAME} / ${env:NAME:-default}; an unset variable without default is an error."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise FlowkitError(f"environment variable {name} is not set and has no default "
                           f"(write ${{env:{name}:-default}} to give one)")

    return ENV_REF.sub(sub, value)


def env_fields(data: dict[str, Any]) -> Iterator[tuple[Path_, str]]:
    """(path, value) of every string in a field where interpolation is allowed."""
    for pattern in ENV_FIELDS:
        yield from _expand(data, (), pattern)


def _expand(node: Any, path: Path_, pattern: Path_) -> Iterator[tuple[Path_, str]]:
    if not pattern:
        if isinstance(node, str):
            yield path, node
        return
    if not isinstance(node, dict):
        return
    keys = node.keys() if pattern[0] == "*" else [pattern[0]] if pattern[0] in node else []
    for k in keys:
        yield from _expand(node[k], path + (k,), pattern[1:])
