"""Extension points: named implementations found through Python entry points.

Each kind has one entry point group, `flowkit.<kind>`; flowkit registers its own built-ins in
its pyproject.toml exactly as a third-party package would. Names come from the installed
packages' metadata, so listing or checking them imports nothing; an implementation is imported
the first time it is used. The contracts are in docs/extending.md.

- `flowkit.sources`: a `flowkit.market.DataSource` subclass, named by `market.source`
- `flowkit.brokers`: a `flowkit.broker.base.Broker` subclass, named by `portfolio.broker`
- `flowkit.providers`: a `flowkit.llm.base.ModelProvider`, named by a model id's prefix
- `flowkit.tools`: a function `f(view, **kwargs)` or a `flowkit.tools.Tool`, in `agents.*.tools`
- `flowkit.roles`: a `flowkit.roles.RoleInfo`, named by `agents.*.role`
- `flowkit.patterns`: reserved for patterns
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import Distribution, EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from flowkit.errors import PluginError

KINDS = ("sources", "brokers", "providers", "tools", "roles", "patterns")
T = TypeVar("T")


@functools.cache
def _scan() -> Any:
    return entry_points()  # one metadata scan per process serves every group


@functools.cache
def _installed(group: str) -> tuple[EntryPoint, ...]:
    """The installed distributions' entry points in `group`."""
    return tuple(_scan().select(group=group))


def _owner(ep: EntryPoint) -> str:
    return _dist_name(ep.dist) if ep.dist is not None else "an unknown package"


@functools.cache
def _dist_name(dist: Distribution) -> str:
    return dist.name  # parses the METADATA file each time: ~0.7 ms, for every check of a name


class Registry(Mapping[str, T], Generic[T]):
    """Implementations of one kind by name: the installed entry points of `flowkit.<kind>`
    plus anything `register`ed in this process (which wins). `adapt(name, obj)` checks a loaded
    object against the kind's contract and may wrap it; it raises PluginError when it cannot."""

    def __init__(self, kind: str, noun: str, adapt: Callable[[str, Any], T]):
        if kind not in KINDS:
            raise ValueError(f"unknown extension kind {kind!r}; kinds: {', '.join(KINDS)}")
        self.kind, self.noun, self.group = kind, noun, f"flowkit.{kind}"
        self.adapt = adapt
        self._loaded: dict[str, T] = {}

    def _entries(self) -> dict[str, list[EntryPoint]]:
        found = _installed(self.group)
        if not any(_owner(ep) == "flowkit" for ep in found):
            raise PluginError(f"flowkit's own {self.group} entry points are missing: the "
                              f"installed metadata is older than this source tree; reinstall "
                              f"flowkit (pip install -e . in a checkout)")
        by_name: dict[str, list[EntryPoint]] = {}
        for ep in found:
            by_name.setdefault(ep.name, []).append(ep)
        return by_name

    def builtin(self) -> list[str]:
        """The names flowkit itself registers, sorted."""
        return sorted({ep.name for eps in self._entries().values() for ep in eps
                       if _owner(ep) == "flowkit"})

    def register(self, name: str, obj: Any) -> None:
        """Add or replace `name` in this process only (notebooks, tests, `@tool`)."""
        self._loaded[name] = self.adapt(name, obj)

    def __getitem__(self, name: str) -> T:
        if name in self._loaded:
            return self._loaded[name]
        candidates = self._entries().get(name)
        if not candidates:
            raise PluginError(self.unknown(name))
        if len(candidates) > 1:
            raise PluginError(f"{self.noun} '{name}' is registered by more than one package: "
                              + ", ".join(f"{_owner(ep)} ({ep.value})" for ep in candidates))
        ep = candidates[0]
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not look like a flowkit bug
            raise PluginError(f"{self.noun} '{name}' ({ep.value}, from {_owner(ep)}) cannot be "
                              f"imported: {type(exc).__name__}: {exc}") from exc
        self._loaded[name] = self.adapt(name, obj)
        return self._loaded[name]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The implementation, or `default` when no package registers `name`; a plugin that
        fails to import still raises."""
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._loaded or name in self._entries())

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._entries(), *self._loaded}))

    def __len__(self) -> int:
        return len({*self._entries(), *self._loaded})

    def unknown(self, name: str) -> str:
        """`unknown <noun> 'x' (did you mean 'y'?); installed: a, b`."""
        names = list(self)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown {self.noun} '{name}'{hint}; installed: {', '.join(names)}"


def _resolve(base: Any) -> Any:
    """`base`, or what a "module:name" string names (imported on first use, so a registry can
    be declared without importing its contract)."""
    if not isinstance(base, str):
        return base
    module, _, attr = base.partition(":")
    return getattr(importlib.import_module(module), attr)


def subclass_of(base: type | str) -> Callable[[str, Any], Any]:
    """An `adapt` for kinds whose entry points name a class implementing `base`."""

    def adapt(name: str, obj: Any) -> Any:
        cls = _resolve(base)
        if not (isinstance(obj, type) and issubclass(obj, cls)):
            raise PluginError(f"'{name}' names {obj!r}, which is not a subclass of "
                              f"{cls.__module__}.{cls.__qualname__}")
        return obj

    return adapt


def instance_of(base: type | str) -> Callable[[str, Any], Any]:
    """An `adapt` for kinds whose entry points name an object implementing `base`."""

    def adapt(name: str, obj: Any) -> Any:
        cls = _resolve(base)
        if not isinstance(obj, cls):
            raise PluginError(f"'{name}' names {obj!r}, which is not a "
                              f"{cls.__module__}.{cls.__qualname__}")
        return obj

    return adapt


def adapter(path: str) -> Callable[[str, Any], Any]:
    """An `adapt` implemented by the function "module:name" names, imported on first use."""

    def adapt(name: str, obj: Any) -> Any:
        return _resolve(path)(name, obj)

    return adapt


# The registries (roles: flowkit.roles.registry.BUILTIN_ROLES). Contracts are named by path, so
# declaring and checking names imports no source, broker, model or tool: `flowkit validate`
# reads these, and nothing here imports back into the packages that implement them.
SOURCES: Registry[Any] = Registry("sources", "data source",
                                  subclass_of("flowkit.market.base:DataSource"))
BROKERS: Registry[Any] = Registry("brokers", "broker", subclass_of("flowkit.broker.base:Broker"))
PROVIDERS: Registry[Any] = Registry("providers", "model provider",
                                    instance_of("flowkit.llm.base:ModelProvider"))
TOOLS: Registry[Any] = Registry("tools", "tool", adapter("flowkit.tools:as_tool"))

DEFAULT_PROVIDER = "litellm"  # serves every model id no registered provider claims


def provider_name(model_id: str) -> str:
    """The provider that serves `model_id`: the one its prefix (`<name>` or `<name>/...`)
    names, otherwise litellm."""
    prefix = model_id.split("/", 1)[0]
    return prefix if prefix != DEFAULT_PROVIDER and prefix in PROVIDERS else DEFAULT_PROVIDER
