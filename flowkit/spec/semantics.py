"""Checks the schema cannot express: references, roles in pattern slots, ordering, cycles,
conditions and windows (where `${env:...}` may appear: flowkit.spec.interpolation). Works on the raw located data so
every problem points at the exact key or value.

The data may be structurally wrong (the schema reports that), so every check tolerates any
shape, and checks that would only echo a schema problem are skipped: `broken` holds the
paths the schema complained about, and a check runs only on parts outside them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from flowkit import patterns
from flowkit.domain.decision import order_problem
from flowkit.errors import FlowkitError, PluginError
from flowkit.patterns.base import Slot
from flowkit.roles.registry import BUILTIN_ROLES, DECISION_KINDS, OUTPUT_NAMES
from flowkit.spec.cycles import closed_paths
from flowkit.spec.messages import and_list, closest, suggest
from flowkit.spec.yamlsrc import Located, Path_

# Extra folders (os.pathsep-separated) prompt and data paths may point into.
ALLOW_PATHS_ENV = "FLOWKIT_ALLOW_PATHS"
# What a `when:` condition sees besides earlier agents (flowkit.graph.agent.condition_vars).
CONDITION_NAMES = frozenset({"outputs", "symbol", "market", "portfolio", "risk_state", "failures"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RESEARCH_SIDES = ("bull", "bear")


def readable_roots(base_dir: Path, prompt_dir: Path,
                   environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders a workflow may read prompts and data from: its own folder, flowkit's
    prompts, and what the user allowed in FLOWKIT_ALLOW_PATHS."""
    environ = os.environ if environ is None else environ
    extra = [Path(p).expanduser() for p in environ.get(ALLOW_PATHS_ENV, "").split(os.pathsep) if p]
    return [root.resolve() for root in (base_dir, prompt_dir, *extra)]


def outside(path: Path, roots: list[Path]) -> bool:
    """Whether `path` (symlinks resolved first) lies outside every root."""
    real = path.resolve()
    return not any(real.is_relative_to(root) for root in roots)


def check(doc: Located, base_dir: Path, prompt_dir: Path, broken: Iterable[Path_] = (),
          environ: Mapping[str, str] | None = None) -> list[FlowkitError]:
    if not isinstance(doc.data, dict):
        return []
    return _Checker(doc, base_dir, prompt_dir, broken, environ).run()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _section(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = data.get(name, {})
    return value if isinstance(value, dict) else None


def _strs(value: Any) -> list[tuple[int, str]]:
    """(index, item) of the string items of a list; anything else the schema reports."""
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)] if isinstance(
        value, list) else []


class _Checker:
    def __init__(self, doc: Located, base_dir: Path, prompt_dir: Path, broken: Iterable[Path_],
                 environ: Mapping[str, str] | None = None):
        self.doc, self.base_dir, self.prompt_dir = doc, base_dir, prompt_dir
        self.broken = [tuple(p) for p in broken]
        self.data: dict[str, Any] = doc.data
        self.problems: list[FlowkitError] = []
        # A section that is not a mapping is None: every reference into it would be reported
        # as undefined, repeating the schema's one message, so those checks are skipped.
        self.models = _section(self.data, "models")
        self.roles = _section(self.data, "roles")
        self.agents = _section(self.data, "agents")
        self.placed: dict[str, Path_] = {}   # agent id -> where it runs in the pipeline
        self.before: dict[str, frozenset[str]] = {}  # agent id -> agents finished before it
        self.misfits: set[str] = set()  # agents placed in a slot their role cannot fill
        self.roots = readable_roots(base_dir, prompt_dir, environ)
        self.limits = _template_limits(self.data)

    def clean(self, path: Path_) -> bool:
        """Whether the schema found nothing at, inside or above `path`."""
        n = len(path)
        return not any(b[:n] == path or path[:len(b)] == b for b in self.broken)

    def intact(self, path: Path_) -> bool:
        """Whether the schema found nothing at or above `path`: the mapping there is read, and
        each check of a key in it skips what the schema said (the loader keeps one message
        per spot), so one defect in an agent does not hide another."""
        return not any(path[:len(b)] == b for b in self.broken)

    def fail(self, message: str, path: Path_, *, key: bool = False) -> None:
        self.problems.append(FlowkitError(message, self.doc.at(path, key=key)))

    def run(self) -> list[FlowkitError]:
        self.check_models()
        self.check_roles()
        if self.agents is not None:
            self.check_agents()
            self.check_pipeline()
            self.check_inputs()
            self.check_decision()
            self.check_decision_output()
            self.check_stances()
        self.check_windows()
        self.check_sources()
        self.check_registered()
        return self.problems

    def check_models(self) -> None:
        models = self.models or {}
        graph = {name: [f for _, f in _strs(_mapping(profile).get("fallbacks"))]
                 for name, profile in models.items()}
        for name, fallbacks in graph.items():
            for i, fb in enumerate(fallbacks):
                if fb not in models:
                    self.fail(f"fallback '{fb}' is not a model profile{suggest(fb, models)}",
                              ("models", name, "fallbacks", i))
        for cycle in closed_paths(graph):
            self.fail("fallback cycle: " + " -> ".join(cycle), ("models", cycle[0], "fallbacks"))

    def role_kind(self, role: Any) -> str | None:
        if not isinstance(role, str):
            return None
        kind = _mapping((self.roles or {}).get(role)).get("kind")
        if isinstance(kind, str):
            return kind
        try:
            info = BUILTIN_ROLES.get(role)
        except PluginError:  # reported, located, by check_registered
            return None
        return info.kind if info else None

    def agent_kind(self, aid: str) -> str | None:
        return self.role_kind(_mapping((self.agents or {}).get(aid)).get("role"))

    def check_roles(self) -> None:
        for name, spec in (self.roles or {}).items():
            if not isinstance(spec, dict) or not self.intact(("roles", name)):
                continue
            if name not in BUILTIN_ROLES:
                missing = [k for k in ("kind", "prompt", "output") if spec.get(k) is None]
                if missing:
                    self.fail(f"new role '{name}' needs {and_list(missing)} (it does not override a "
                              f"built-in role)", ("roles", name), key=True)
            self.check_prompt_and_output(spec, ("roles", name))

    def check_prompt_and_output(self, spec: dict[str, Any], path: Path_) -> None:
        prompt = spec.get("prompt")
        found = self.find_prompt(prompt) if isinstance(prompt, str) else None
        if isinstance(prompt, str) and not found:
            self.fail(f"prompt file '{prompt}' not found (looked next to the workflow and in "
                      f"prompts/)", path + ("prompt",))
        elif found and outside(found, self.roots):
            self.fail(f"prompt file '{prompt}' is outside the workflow's folder and flowkit's "
                      f"prompts ({found.resolve()}); a workflow may not read it unless you allow "
                      f"its folder in {ALLOW_PATHS_ENV}", path + ("prompt",))
        elif found:
            try:
                self.check_template(found.read_text(encoding="utf-8"), path + ("prompt",))
            except (OSError, UnicodeDecodeError) as exc:
                self.fail(f"prompt file '{prompt}' cannot be read: {exc}", path + ("prompt",))
        elif isinstance(prompt, dict) and isinstance(prompt.get("inline"), str):
            self.check_template(prompt["inline"], path + ("prompt", "inline"))
        output = spec.get("output")
        if isinstance(output, str) and output not in OUTPUT_NAMES:
            self.fail(f"unknown output schema '{output}'{suggest(output, OUTPUT_NAMES)}; use a "
                      f"built-in name or an inline JSON Schema", path + ("output",))
        elif isinstance(output, dict):
            self.check_output_schema(output, path + ("output",))

    def check_output_schema(self, output: dict[str, Any], path: Path_) -> None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(output)
        except SchemaError as exc:
            self.fail(f"inline output is not a valid JSON Schema: {exc.message}",
                      path + tuple(exc.path))
            return
        if output.get("type", "object") != "object":
            self.fail("an inline output schema must describe an object (type: object)", path)

    def find_prompt(self, rel: str) -> Path | None:
        for base in (self.base_dir, self.prompt_dir, self.prompt_dir.parent):
            try:
                candidate = base / rel
                if candidate.is_file():
                    return candidate
            except (OSError, ValueError):  # a name no file system accepts (NUL, too long)
                return None
        return None

    def check_template(self, source: str, path: Path_) -> None:
        from jinja2 import TemplateSyntaxError

        from flowkit.spec.templates import environment, static_problems

        try:
            tree = environment().parse(source)
        except TemplateSyntaxError as exc:
            self.fail(f"template syntax error: {exc.message} (template line {exc.lineno})", path)
            return
        for problem in static_problems(tree, self.limits):
            self.fail(f"template: {problem}", path)

    def check_agents(self) -> None:
        for aid, spec in (self.agents or {}).items():
            if not isinstance(spec, dict) or not self.intact(("agents", aid)):
                continue
            model = spec.get("model", "default")
            if isinstance(model, str) and self.models is not None and model not in self.models:
                if "model" in spec:
                    self.fail(f"agent '{aid}' uses undefined model profile '{model}'"
                              f"{suggest(model, self.models)}", ("agents", aid, "model"))
                else:
                    self.fail(f"agent '{aid}' names no model, and there is no profile 'default' "
                              f"under models: to fall back on", ("agents", aid), key=True)
            role = spec.get("role")
            if (isinstance(role, str) and self.roles is not None and role not in self.roles
                    and role not in BUILTIN_ROLES):
                self.fail(f"unknown role '{role}'"
                          f"{suggest(role, list(BUILTIN_ROLES) + list(self.roles))}; define it "
                          f"under roles: or use a built-in role", ("agents", aid, "role"))
            if role == "risk_debater" and not spec.get("stance"):
                self.fail(f"agent '{aid}' is a risk_debater and needs a stance "
                          f"(aggressive, conservative or neutral)", ("agents", aid), key=True)
            self.check_prompt_and_output(spec, ("agents", aid))

    # -- pipeline: references, slots, single placement, conditions
    def check_pipeline(self) -> None:
        steps = self.data.get("pipeline")
        if isinstance(steps, list):
            self.walk_sequence(steps, ("pipeline",), frozenset())

    def walk_sequence(self, steps: list[Any], path: Path_, done: frozenset[str]) -> frozenset[str]:
        for i, step in enumerate(steps):
            done = done | self.walk(step, path + (i,), done)
        return done

    def walk(self, step: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        """Check one step; return the agents finished once it is done."""
        if isinstance(step, str):
            return patterns.get("agent").check(self, step, path, done)
        if not isinstance(step, dict):
            return frozenset()
        if isinstance(step.get("when"), str):
            self.check_condition(step["when"], path + ("when",), done)
        kinds = [k for k in patterns.pattern_keys() if k in step]
        if len(kinds) != 1:
            return frozenset()  # the schema says which key is missing or extra
        return patterns.get(kinds[0]).check(self, step[kinds[0]], path + (kinds[0],), done)

    def place_all(self, ids: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        return frozenset().union(*(self.place(aid, path + (i,), done) for i, aid in _strs(ids)))

    def place(self, aid: Any, path: Path_, done: frozenset[str],
              slot: Slot | None = None) -> frozenset[str]:
        if not isinstance(aid, str) or self.agents is None:
            return frozenset()
        if aid not in self.agents:
            self.fail(f"undefined agent '{aid}'{suggest(aid, self.agents)}", path)
            return frozenset()
        if aid in self.placed:
            first = self.doc.at(self.placed[aid])
            self.fail(f"agent '{aid}' already runs at line {first.line}; each agent has one "
                      f"place in the pipeline (define another agent with the same role)", path)
            return frozenset()
        self.placed[aid] = path
        self.before[aid] = done
        kind = self.agent_kind(aid)
        if slot and kind is not None and kind not in slot[1]:
            self.misfits.add(aid)  # its output is not what the slot's readers expect either
            role = self.agents[aid]["role"]
            self.fail(f"agent '{aid}' (role {role}, kind {kind}) cannot be the {slot[0]}; the "
                      f"{slot[0]} must be {slot[2]}", path)
        return frozenset({aid})

    def check_condition(self, source: str, path: Path_, done: frozenset[str]) -> None:
        from jinja2 import TemplateSyntaxError, meta

        from flowkit.spec.templates import environment, static_problems

        env = environment()
        try:
            env.compile_expression(source)
            tree = env.parse("{{ (" + source + ") }}")
            names = meta.find_undeclared_variables(tree)
        except TemplateSyntaxError as exc:
            message = _jinja_message(exc.message or "", env)
            if message == "chunk after expression":  # jinja's words for `a = 1`, `a b`
                message = "unexpected text after the expression" + (
                    "; compare with ==" if re.search(r"(?<![=!<>])=(?!=)", source) else "")
            self.fail(f"invalid condition: {message}", path)
            return
        for problem in static_problems(tree, self.limits):
            self.fail(f"condition: {problem}", path)
        for name in sorted(names - done - CONDITION_NAMES - set(env.globals)):
            if name in (self.agents or {}):
                if self.clean(("pipeline",)):  # else what ran before is not known
                    self.fail(f"condition reads '{name}', which has not run before this step",
                              path)
            else:
                self.fail(f"condition reads unknown name '{name}'"
                          f"{suggest(name, list(done) + sorted(CONDITION_NAMES))}; it may read "
                          f"agents that ran before this step and {and_list(sorted(CONDITION_NAMES))}",
                          path)
        for agent, name in _field_reads(tree, done - self.misfits):
            fields, output = self.output_fields(agent)
            if fields is not None and name not in fields and name not in _MAPPING_METHODS \
                    and not name.startswith("_"):
                self.fail(f"condition reads '{agent}.{name}': the output of '{agent}' ({output}) "
                          f"has no field '{name}'{suggest(name, fields)}", path)

    def output_fields(self, aid: str) -> tuple[list[str] | None, str]:
        """The fields of an agent's output and what the output is called; None when the
        schema does not list them all (an inline schema open to more properties)."""
        spec = _mapping((self.agents or {}).get(aid))
        role = spec.get("role")
        info = BUILTIN_ROLES.get(role) if isinstance(role, str) else None
        output = (spec.get("output") or _mapping((self.roles or {}).get(role)).get("output")
                  or (info.output if info else None))
        if isinstance(output, str) and output in OUTPUT_NAMES:
            from flowkit.roles.outputs import OUTPUTS  # only when a condition reads a field

            return list(OUTPUTS[output].model_fields), output
        if (isinstance(output, dict) and isinstance(output.get("properties"), dict)
                and output.get("additionalProperties", False) is False):
            return [str(k) for k in output["properties"]], "inline schema"
        return None, ""

    def check_inputs(self) -> None:
        agents = self.agents or {}
        graph = {aid: [x for _, x in _strs(_mapping(spec).get("inputs"))] for aid, spec in agents.items()}
        cycles = closed_paths(graph)
        for cycle in cycles:
            self.fail("input cycle: " + " -> ".join(cycle), ("agents", cycle[0], "inputs"))
        in_cycle = {aid for cycle in cycles for aid in cycle}
        ordered = self.clean(("pipeline",))  # "runs before" needs a pipeline we could read
        for aid, spec in agents.items():
            for i, src in _strs(_mapping(spec).get("inputs")):
                path = ("agents", aid, "inputs", i)
                if src not in agents:
                    self.fail(f"agent '{aid}' reads undefined agent '{src}'"
                              f"{suggest(src, agents)}", path)
                elif ordered and aid in self.before and src not in self.before[aid] and not (
                        aid in in_cycle and src in in_cycle):
                    where = ("is not in the pipeline" if src not in self.placed
                             else "does not finish before it")
                    self.fail(f"agent '{aid}' reads '{src}', which {where}", path)

    def check_decision(self) -> None:
        decision = self.data.get("decision")
        if isinstance(decision, str) and decision not in (self.agents or {}):
            self.fail(f"undefined agent '{decision}'{suggest(decision, self.agents or {})}",
                      ("decision",))
            return
        if not self.clean(("pipeline",)):
            return  # which agents run is unknown
        deciders = [a for a in self.placed if self.agent_kind(a) in DECISION_KINDS]
        if isinstance(decision, str):
            if decision not in self.placed:
                self.fail(f"decision agent '{decision}' is not in the pipeline", ("decision",))
            elif decision not in deciders and self.agent_kind(decision) is not None:
                self.fail(f"agent '{decision}' (kind {self.agent_kind(decision)}) cannot make the "
                          f"decision; it must be a role of kind trader, decider or manager "
                          f"(trader, portfolio_manager, manager)", ("decision",))
        elif self.placed and not deciders and all(self.agent_kind(a) for a in self.placed):
            self.fail("no agent in the pipeline makes a decision; add a trader, "
                      "portfolio_manager or manager", ("pipeline",), key=True)

    def check_decision_output(self) -> None:
        """The decision agent's output becomes an order: it must carry `action` and `size_pct`,
        or the firm would silently hold forever."""
        if not self.clean(("pipeline",)) or not self.clean(("decision",)):
            return
        decision = self.data.get("decision")
        deciders = [a for a in self.placed if self.agent_kind(a) in DECISION_KINDS]
        aid = decision if decision in deciders else deciders[-1] if deciders and decision is None \
            else None
        if aid is None:
            return  # no decision agent, or one check_decision reports
        spec = _mapping(self.agents[aid])
        role = spec.get("role")
        path: Path_ = ("agents", aid, "output")
        output = spec.get("output")
        if output is None:
            path = ("roles", role, "output")
            output = _mapping(_mapping(self.roles).get(role)).get("output")
        if output is None:
            return  # a built-in role's own output: every decision role's carries an order
        if isinstance(output, str) and output in OUTPUT_NAMES:  # rare: skip the import otherwise
            from flowkit.roles.outputs import output_json_schema
            output = output_json_schema(output)
        if not isinstance(output, dict) or not self.clean(path):
            return
        problem = order_problem(output)
        if problem:
            self.fail(f"agent '{aid}' makes the decision, but its output {problem}; a decision "
                      f"needs action (BUY, SELL or HOLD) and size_pct (a number, % of equity), "
                      f"both required", path)

    def check_stances(self) -> None:
        """bull and bear are a researcher's sides, and a researcher argues one of them."""
        for aid, spec in (self.agents or {}).items():
            stance, kind = _mapping(spec).get("stance"), self.agent_kind(aid)
            if not isinstance(stance, str) or kind is None or not self.clean(("agents", aid)):
                continue
            if (stance in RESEARCH_SIDES) != (kind == "researcher"):
                expected = ("bull or bear" if kind == "researcher"
                            else "aggressive, conservative or neutral")
                self.fail(f"agent '{aid}' is of kind {kind}: its stance is {expected}, not "
                          f"'{stance}'", ("agents", aid, "stance"))

    def check_windows(self) -> None:
        bt = _mapping(self.data.get("backtest"))
        train = _mapping(_mapping(self.data.get("learning")).get("train"))
        if _dates(bt):
            if bt["start"] > bt["end"]:
                self.fail(f"backtest.start {bt['start']} is after backtest.end {bt['end']}",
                          ("backtest", "end"))
        if _dates(train):
            if train["start"] > train["end"]:
                self.fail(f"learning.train.start {train['start']} is after its end {train['end']}",
                          ("learning", "train", "end"))
            elif _dates(bt) and train["end"] >= bt["start"]:
                self.fail(f"the training window must end before the test window starts "
                          f"(train ends {train['end']}, backtest starts {bt['start']})",
                          ("learning", "train", "end"))

    def check_registered(self) -> None:
        """Every name an extension point resolves (data source, broker, model provider, tool)
        is one an installed package registers (unknown roles are reported with the agents; a
        role whose package fails to import is reported here)."""
        from flowkit.plugins import (
            BROKERS,
            DEFAULT_PROVIDER,
            PROVIDERS,
            SOURCES,
            TOOLS,
            provider_name,
        )

        for section, key, registry in (("market", "source", SOURCES),
                                       ("portfolio", "broker", BROKERS)):
            name = _mapping(self.data.get(section)).get(key)
            if isinstance(name, str) and self.clean((section, key)) and name not in registry:
                self.fail(registry.unknown(name), (section, key))
        for profile_name, profile in (self.models or {}).items():
            model = _mapping(profile).get("model")
            if not isinstance(model, str) or not self.clean(("models", profile_name, "model")):
                continue
            prefix = model.split("/", 1)[0]
            others = [p for p in PROVIDERS if p != DEFAULT_PROVIDER]
            # An id no provider claims goes to litellm; one a letter away from a provider's
            # name is a typo litellm would only report at the first call.
            if provider_name(model) == DEFAULT_PROVIDER and prefix != DEFAULT_PROVIDER \
                    and closest(prefix, others):
                self.fail(f"unknown model provider '{prefix}' in model '{model}'"
                          f"{suggest(prefix, others)}; an id starts with a registered provider "
                          f"({', '.join(others)}) or is a litellm model id",
                          ("models", profile_name, "model"))
        for aid, spec in (self.agents or {}).items():
            role = _mapping(spec).get("role")
            if isinstance(role, str) and role not in (self.roles or {}) and role in BUILTIN_ROLES:
                try:
                    BUILTIN_ROLES[role]
                except PluginError as exc:  # installed, but its package is broken
                    self.fail(exc.message, ("agents", aid, "role"))
            for i, name in _strs(_mapping(spec).get("tools")):
                if ":" not in name and name not in TOOLS and self.clean(("agents", aid, "tools", i)):
                    self.fail(TOOLS.unknown(name), ("agents", aid, "tools", i))

    def check_sources(self) -> None:
        market = _mapping(self.data.get("market"))
        if market.get("source") == "csv" and not market.get("path"):
            self.fail("market.source csv needs market.path (the folder holding ohlcv/)",
                      ("market", "source"))
        folder = market.get("path")
        if isinstance(folder, str) and "\0" not in folder:
            where = Path(folder).expanduser()
            if outside(where if where.is_absolute() else self.base_dir / where, self.roots):
                self.fail(f"market.path {folder} is outside the workflow's folder; a workflow may "
                          f"not read data there unless you allow it in {ALLOW_PATHS_ENV}",
                          ("market", "path"))
        if market.get("source") == "ccxt" and not market.get("exchange"):
            self.fail("market.source ccxt needs market.exchange (e.g. binance)", ("market", "source"))
        portfolio = _mapping(self.data.get("portfolio"))
        if portfolio.get("broker") == "ccxt" and not portfolio.get("exchange"):
            self.fail("portfolio.broker ccxt needs portfolio.exchange", ("portfolio", "broker"))


# Not fields: a mapping's own methods and private names (the sandbox refuses those at run time).
_MAPPING_METHODS = frozenset(dir(dict))


def _field_reads(tree: Any, done: frozenset[str]) -> list[tuple[str, str]]:
    """(agent, field) of every `agent.field`, `agent['field']` and `outputs.agent.field` a
    condition reads, for agents that ran before it."""
    from jinja2 import nodes

    def key(node: Any) -> str | None:
        if isinstance(node, nodes.Getattr):
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            return node.arg.value
        return None

    def agent(node: Any) -> str | None:
        if isinstance(node, nodes.Name):
            return node.name
        if key(node) is not None and isinstance(node.node, nodes.Name) and node.node.name == "outputs":
            return key(node)
        return None

    reads = [(agent(n.node), key(n)) for n in tree.find_all((nodes.Getattr, nodes.Getitem))]
    return sorted({(a, k) for a, k in reads if a in done and k is not None})


def _template_limits(data: dict[str, Any]) -> Any:
    """runtime.templates of the file when it is valid (the schema reports it otherwise)."""
    from pydantic import ValidationError

    from flowkit.spec.models import TemplateLimits

    try:
        return TemplateLimits.model_validate(_mapping(_mapping(data.get("runtime")).get("templates")))
    except ValidationError:
        return TemplateLimits()


def _jinja_message(message: str, env: Any) -> str:
    """jinja2's "No filter named 'lowercase'." in the voice of the other messages."""
    message = message.rstrip(".")
    message = message[:1].lower() + message[1:]
    unknown = re.fullmatch(r"no (filter|test) named '(\w+)'", message)
    if unknown:
        known = env.filters if unknown[1] == "filter" else env.tests
        message += suggest(unknown[2], known)
    return message


def _dates(window: dict[str, Any]) -> bool:
    """Both ends are well-formed dates (anything else is the schema's to report)."""
    return all(isinstance(window.get(k), str) and _DATE.fullmatch(window[k]) for k in ("start", "end"))
