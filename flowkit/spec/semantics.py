"""Checks the schema cannot express: references, roles in pattern slots, ordering, cycles,
conditions, windows and where `${env:...}` may appear. Works on the raw located data so
every problem points at the exact key or value."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Iterator

from flowkit.errors import FlowkitError
from flowkit.roles.registry import BUILTIN_ROLES, DECISION_KINDS, JUDGE_KINDS, MANAGER_KINDS, OUTPUT_NAMES
from flowkit.spec.models import PATTERN_KEYS
from flowkit.spec.yamlsrc import Located

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ENV_FIELDS = (("models", "*", "model"), ("models", "*", "api_base"), ("market", "path"),
               ("log", "db"))
_SECRET_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|xox[bp]-[A-Za-z0-9\-]{10,})")


class _Checker:
    def __init__(self, doc: Located, base_dir: Path, prompt_dir: Path):
        self.doc, self.base_dir, self.prompt_dir = doc, base_dir, prompt_dir
        self.data: dict[str, Any] = doc.data
        self.problems: list[FlowkitError] = []
        self.models: dict[str, Any] = self.data.get("models") or {}
        self.roles: dict[str, Any] = self.data.get("roles") or {}
        self.agents: dict[str, Any] = self.data.get("agents") or {}

    def fail(self, message: str, path: tuple, *, key: bool = False) -> None:
        self.problems.append(FlowkitError(message, self.doc.at(path, key=key)))

    def run(self) -> list[FlowkitError]:
        self.check_strings(self.data, ())
        self.check_models()
        self.check_roles()
        self.check_agents()
        before = self.check_pipeline()
        self.check_inputs(before)
        self.check_decision(before)
        self.check_windows()
        self.check_sources()
        return self.problems

    # -- every string: env interpolation only where allowed, no pasted secrets
    def check_strings(self, node: Any, path: tuple) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                self.check_strings(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.check_strings(v, path + (i,))
        elif isinstance(node, str):
            if _SECRET_LIKE.search(node):
                self.fail("this looks like a secret; keep keys in the environment and name "
                          "the variable with api_key_env", path)
            if "${" in node:
                if not any(_matches(path, f) for f in _ENV_FIELDS):
                    self.fail("${env:...} interpolation is only allowed in models.*.model, "
                              "models.*.api_base, market.path and log.db", path)
                elif ENV_REF.sub("", node).count("${"):
                    self.fail("malformed interpolation; write ${env:NAME} or "
                              "${env:NAME:-default}", path)

    def check_models(self) -> None:
        reported: set[frozenset[str]] = set()
        for name, profile in self.models.items():
            if not isinstance(profile, dict):
                continue
            for i, fb in enumerate(profile.get("fallbacks") or []):
                if isinstance(fb, str) and fb not in self.models:
                    self.fail(f"fallback '{fb}' is not a profile under models:"
                              f"{_hint(fb, self.models)}", ("models", name, "fallbacks", i))
            cycle = _cycle(name, lambda n: [f for f in (self.models.get(n) or {}).get("fallbacks") or []
                                            if isinstance(f, str) and f in self.models])
            if cycle and cycle[0] == name and frozenset(cycle) not in reported:
                reported.add(frozenset(cycle))
                self.fail("fallback cycle: " + " -> ".join(cycle), ("models", name, "fallbacks"))

    def role_kind(self, role: str) -> str | None:
        spec = self.roles.get(role)
        if isinstance(spec, dict) and spec.get("kind"):
            return spec["kind"]
        info = BUILTIN_ROLES.get(role)
        return info.kind if info else None

    def check_roles(self) -> None:
        for name, spec in self.roles.items():
            if not isinstance(spec, dict):
                continue
            if name not in BUILTIN_ROLES:
                for needed in ("kind", "prompt", "output"):
                    if spec.get(needed) is None:
                        self.fail(f"new role '{name}' needs '{needed}' (it does not override a "
                                  f"built-in role)", ("roles", name), key=True)
            self.check_prompt_and_output(spec, ("roles", name))

    def check_prompt_and_output(self, spec: dict[str, Any], path: tuple) -> None:
        prompt = spec.get("prompt")
        if isinstance(prompt, str) and not self.find_prompt(prompt):
            self.fail(f"prompt file '{prompt}' not found (looked next to the workflow and in "
                      f"prompts/)", path + ("prompt",))
        elif isinstance(prompt, dict) and isinstance(prompt.get("inline"), str):
            self.check_template(prompt["inline"], path + ("prompt", "inline"))
        output = spec.get("output")
        if isinstance(output, str) and output not in OUTPUT_NAMES:
            self.fail(f"unknown output schema '{output}'{_hint(output, OUTPUT_NAMES)}; use a "
                      f"built-in name or an inline JSON Schema", path + ("output",))
        elif isinstance(output, dict):
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(output)
            except SchemaError as exc:
                self.fail(f"inline output is not a valid JSON Schema: {exc.message}",
                          path + ("output",) + tuple(exc.path))
            if output.get("type", "object") != "object":
                self.fail("an inline output schema must describe an object (type: object)",
                          path + ("output",))

    def find_prompt(self, rel: str) -> Path | None:
        for base in (self.base_dir, self.prompt_dir, self.prompt_dir.parent):
            candidate = base / rel
            if candidate.is_file():
                return candidate
        return None

    def check_template(self, source: str, path: tuple) -> None:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            ImmutableSandboxedEnvironment().parse(source)
        except TemplateSyntaxError as exc:
            self.fail(f"template syntax error: {exc.message} (template line {exc.lineno})", path)

    def check_agents(self) -> None:
        for aid, spec in self.agents.items():
            if not isinstance(spec, dict):
                continue
            model = spec.get("model", "default")
            if isinstance(model, str) and model not in self.models:
                self.fail(f"agent '{aid}' uses undefined model profile '{model}'"
                          f"{_hint(model, self.models)}",
                          ("agents", aid, "model") if "model" in spec else ("agents", aid), key="model" not in spec)
            role = spec.get("role")
            if isinstance(role, str) and self.role_kind(role) is None:
                self.fail(f"unknown role '{role}'{_hint(role, list(BUILTIN_ROLES) + list(self.roles))}; "
                          f"define it under roles: or use a built-in role",
                          ("agents", aid, "role"))
            if role == "risk_debater" and not spec.get("stance"):
                self.fail(f"agent '{aid}' is a risk_debater and needs a stance "
                          f"(aggressive, conservative or neutral)", ("agents", aid), key=True)
            self.check_prompt_and_output(spec, ("agents", aid))

    # -- pipeline: references, slots, uniqueness; returns what is done before each agent
    def check_pipeline(self) -> dict[str, frozenset[str]]:
        self.placed: dict[str, tuple] = {}
        before: dict[str, frozenset[str]] = {}
        steps = self.data.get("pipeline")
        if isinstance(steps, list):
            self.walk_sequence(steps, ("pipeline",), frozenset(), before)
        return before

    def walk_sequence(self, steps: list, path: tuple, done: frozenset[str],
                      before: dict[str, frozenset[str]]) -> frozenset[str]:
        for i, step in enumerate(steps):
            done = done | self.walk(step, path + (i,), done, before)
        return done

    def walk(self, step: Any, path: tuple, done: frozenset[str],
             before: dict[str, frozenset[str]]) -> frozenset[str]:
        """Check one step; return the agents finished once it is done."""
        if isinstance(step, str):
            return self.place(step, path, done, before)
        if not isinstance(step, dict):
            return frozenset()
        if isinstance(step.get("when"), str):
            self.check_condition(step["when"], path + ("when",))
        kind = next((k for k in PATTERN_KEYS if k in step), None)
        body = step.get(kind)
        if kind == "agent":
            return self.place(body, path + ("agent",), done, before)
        if kind == "sequential" and isinstance(body, list):
            return self.walk_sequence(body, path + ("sequential",), done, before) - done
        if not isinstance(body, dict):
            return frozenset()
        bpath = path + (kind,)
        if kind == "parallel" and isinstance(body.get("steps"), list):
            out = frozenset()
            for i, child in enumerate(body["steps"]):
                out |= self.walk(child, bpath + ("steps", i), done, before)
            join = body.get("join", "all")
            if isinstance(join, str) and join.startswith("quorum:") and join[7:].isdigit():
                if int(join[7:]) > len(body["steps"]):
                    self.fail(f"quorum:{join[7:]} needs more branches than the "
                              f"{len(body['steps'])} listed", bpath + ("join",))
            return out
        if kind == "debate":
            parts = self.place_all(body.get("participants"), bpath + ("participants",), done, before)
            judge = self.place(body.get("judge"), bpath + ("judge",), done | parts, before,
                               slot=("judge", JUDGE_KINDS, "a judge (research_manager, "
                                     "portfolio_manager or a role of kind judge/decider)"))
            return parts | judge
        if kind == "hierarchical":
            manager = self.place(body.get("manager"), bpath + ("manager",), done, before,
                                 slot=("manager", MANAGER_KINDS, "a manager (role kind manager)"))
            workers = self.place_all(body.get("workers"), bpath + ("workers",), done | manager, before)
            return manager | workers
        if kind == "broadcast":
            return self.place_all(body.get("agents"), bpath + ("agents",), done, before)
        return frozenset()

    def place_all(self, ids: Any, path: tuple, done: frozenset[str],
                  before: dict[str, frozenset[str]]) -> frozenset[str]:
        out = frozenset()
        for i, aid in enumerate(ids if isinstance(ids, list) else []):
            out |= self.place(aid, path + (i,), done, before)
        return out

    def place(self, aid: Any, path: tuple, done: frozenset[str], before: dict[str, frozenset[str]],
              slot: tuple[str, frozenset[str], str] | None = None) -> frozenset[str]:
        if not isinstance(aid, str):
            return frozenset()
        if aid not in self.agents:
            self.fail(f"undefined agent '{aid}'{_hint(aid, self.agents)}", path)
            return frozenset()
        if aid in self.placed:
            first = self.doc.at(self.placed[aid])
            self.fail(f"agent '{aid}' already runs at line {first.line}; each agent has one "
                      f"place in the pipeline (define another agent with the same role)", path)
            return frozenset()
        self.placed[aid] = path
        before[aid] = done
        role = (self.agents[aid] or {}).get("role") if isinstance(self.agents[aid], dict) else None
        kind = self.role_kind(role) if isinstance(role, str) else None
        if slot and kind is not None and kind not in slot[1]:
            self.fail(f"agent '{aid}' (role {role}, kind {kind}) cannot be the {slot[0]} here; "
                      f"the {slot[0]} must be {slot[2]}", path)
        return frozenset({aid})

    def check_condition(self, source: str, path: tuple) -> None:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            ImmutableSandboxedEnvironment().compile_expression(source)
        except TemplateSyntaxError as exc:
            self.fail(f"invalid condition: {exc.message}", path)

    def check_inputs(self, before: dict[str, frozenset[str]]) -> None:
        graph = {aid: [x for x in (spec.get("inputs") or []) if isinstance(x, str)]
                 for aid, spec in self.agents.items() if isinstance(spec, dict)}
        reported: set[frozenset[str]] = set()
        for aid, inputs in graph.items():
            for i, src in enumerate(inputs):
                path = ("agents", aid, "inputs", i)
                if src not in self.agents:
                    self.fail(f"agent '{aid}' reads undefined agent '{src}'"
                              f"{_hint(src, self.agents)}", path)
                    continue
                cycle = _cycle(aid, lambda n: [x for x in graph.get(n, []) if x in graph])
                if cycle and cycle[0] == aid:
                    members = frozenset(cycle)
                    if members not in reported:
                        reported.add(members)
                        self.fail("input cycle: " + " -> ".join(cycle), ("agents", aid, "inputs"))
                    continue
                if aid in before and src not in before[aid]:
                    where = "is not in the pipeline" if src not in before else "does not finish before it"
                    self.fail(f"agent '{aid}' reads '{src}', which {where}", path)

    def check_decision(self, before: dict[str, frozenset[str]]) -> None:
        decision = self.data.get("decision")
        deciders = [a for a in self.placed if self.role_kind(self.agents[a].get("role", "")) in DECISION_KINDS]
        if isinstance(decision, str):
            if decision not in self.agents:
                self.fail(f"undefined agent '{decision}'{_hint(decision, self.agents)}", ("decision",))
            elif decision not in self.placed:
                self.fail(f"decision agent '{decision}' is not in the pipeline", ("decision",))
            elif decision not in deciders:
                self.fail(f"agent '{decision}' cannot make the decision; it must be a trader, "
                          f"portfolio_manager, manager or a role of kind trader/decider/manager",
                          ("decision",))
        elif self.placed and not deciders:
            self.fail("no agent in the pipeline makes a decision; add a trader, "
                      "portfolio_manager or manager", ("pipeline",), key=True)

    def check_windows(self) -> None:
        bt = self.data.get("backtest") or {}
        if isinstance(bt, dict) and isinstance(bt.get("start"), str) and isinstance(bt.get("end"), str):
            if bt["start"] > bt["end"]:
                self.fail(f"backtest.start {bt['start']} is after backtest.end {bt['end']}",
                          ("backtest", "end"))
        train = ((self.data.get("learning") or {}).get("train") or {}) if isinstance(
            self.data.get("learning"), dict) else {}
        if isinstance(train, dict) and isinstance(train.get("start"), str) and isinstance(train.get("end"), str):
            if train["start"] > train["end"]:
                self.fail(f"learning.train.start {train['start']} is after its end {train['end']}",
                          ("learning", "train", "end"))
            if isinstance(bt, dict) and isinstance(bt.get("start"), str) and train["end"] >= bt["start"]:
                self.fail(f"the training window must end before the test window starts "
                          f"(train ends {train['end']}, backtest starts {bt['start']})",
                          ("learning", "train", "end"))

    def check_sources(self) -> None:
        market = self.data.get("market")
        if isinstance(market, dict):
            if market.get("source") == "csv" and not market.get("path"):
                self.fail("market.source csv needs market.path (the folder holding ohlcv/)",
                          ("market", "source"))
            if market.get("source") == "ccxt" and not market.get("exchange"):
                self.fail("market.source ccxt needs market.exchange (e.g. binance)",
                          ("market", "source"))
        portfolio = self.data.get("portfolio")
        if isinstance(portfolio, dict) and portfolio.get("broker") == "ccxt" and not portfolio.get("exchange"):
            self.fail("portfolio.broker ccxt needs portfolio.exchange", ("portfolio", "broker"))


def check(doc: Located, base_dir: Path, prompt_dir: Path) -> list[FlowkitError]:
    if not isinstance(doc.data, dict):
        return []
    return _Checker(doc, base_dir, prompt_dir).run()


def _matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == x for x, p in zip(path, pattern))


def _hint(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _cycle(start: str, edges: Any) -> list[str] | None:
    """The first cycle reachable from `start` (as a closed path), or None."""
    stack: list[str] = []
    on_stack: set[str] = set()
    seen: set[str] = set()

    def visit(n: str) -> list[str] | None:
        stack.append(n)
        on_stack.add(n)
        for m in edges(n):
            if m in on_stack:
                return stack[stack.index(m):] + [m]
            if m not in seen:
                seen.add(m)
                found = visit(m)
                if found:
                    return found
        on_stack.discard(stack.pop())
        return None

    return visit(start)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Resolve ${env:NAME} / ${env:NAME:-default}; an unset variable without default is an error."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise FlowkitError(f"environment variable {name} is not set and has no default")

    return ENV_REF.sub(sub, value)


def env_fields(data: dict[str, Any]) -> Iterator[tuple[tuple, str]]:
    """(path, value) of every string in a field where interpolation is allowed."""
    for pattern in _ENV_FIELDS:
        yield from _expand(data, (), pattern)


def _expand(node: Any, path: tuple, pattern: tuple) -> Iterator[tuple[tuple, str]]:
    if not pattern:
        if isinstance(node, str):
            yield path, node
        return
    if not isinstance(node, dict):
        return
    keys = node.keys() if pattern[0] == "*" else [pattern[0]] if pattern[0] in node else []
    for k in keys:
        yield from _expand(node[k], path + (k,), pattern[1:])
