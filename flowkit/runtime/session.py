"""A run: the resolved workflow, its models, market data, compiled firm and event log.

`Session.decide` runs the firm for one symbol at one decision time and returns the typed
decision; the trading loop (flowkit.backtest.loop) turns decisions into risk-checked orders."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowkit._version import __version__
from flowkit.fields import API_BASE_PATTERN, PATTERN_NAMES, SYMBOL_PATTERN
from flowkit.domain.decision import Decision, decision_from_output
from flowkit.errors import ConfigError, FlowkitError, OutputNeverValid, RunAborted, StepError
from flowkit.graph.agent import RunContext
from flowkit.graph.compiler import Firm, compile_firm
from flowkit.llm.base import ChatModel
from flowkit.patterns.state import DecisionState, Scope
from flowkit.spec import models as m
from flowkit.spec.loader import LoadedWorkflow
from flowkit.spec.schema import ecma

if TYPE_CHECKING:
    from flowkit.llm.limits import Limiter
    from flowkit.store import EventSink


@dataclass
class RunOptions:
    db: str | None = None
    model: str | None = None          # overrides every profile's model
    api_base: str | None = None
    cache: str | None = None          # off | read_write | replay
    mode: str = "decide"              # decide | backtest | train | replay | live (app/live.py)
    parent_run_id: str | None = None
    run_id: str | None = None         # resume: continue this run
    seed: int | None = None
    symbols: list[str] | None = None  # --symbol: decide on these instead of market.symbols


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def resolve_db(loaded: LoadedWorkflow, option: str | None) -> str:
    """--db, then FLOWKIT_DB, then log.db (relative to the current directory)."""
    return option or os.environ.get("FLOWKIT_DB") or loaded.spec.log.db


def check_api_base(url: str) -> str:
    """--api-base as the workflow's `api_base` must be: an http(s) URL a call can reach."""
    if "${" in url or not ecma(API_BASE_PATTERN).search(url):  # not interpolated: a flag
        raise ConfigError(f"--api-base {url!r}: expected {PATTERN_NAMES[API_BASE_PATTERN]}")
    return url


def check_symbol(symbol: str) -> str:
    """--symbol as market.symbols must be: also what keeps a file-based source in its folder."""
    if not ecma(SYMBOL_PATTERN).search(symbol):
        raise ConfigError(f"--symbol {symbol!r}: expected {PATTERN_NAMES[SYMBOL_PATTERN]}")
    return symbol


def apply_overrides(spec: m.Workflow, options: RunOptions) -> m.Workflow:
    """--model / --api-base replace every profile's model and endpoint; --cache the cache mode."""
    profiles = {}
    for name, p in spec.models.items():
        update: dict[str, Any] = {}
        if options.model:
            update["model"] = options.model
            if options.model == "offline":
                update["fallbacks"] = []
        if options.api_base:
            update["api_base"] = check_api_base(options.api_base)
        profiles[name] = p.model_copy(update=update)
    runtime = spec.runtime
    if options.cache:
        runtime = runtime.model_copy(update={"cache": options.cache})
    if options.seed is not None:
        runtime = runtime.model_copy(update={"seed": options.seed})
    market = spec.market
    if options.symbols:
        symbols = list(dict.fromkeys(map(check_symbol, options.symbols)))
        market = market.model_copy(update={"symbols": symbols})
    return spec.model_copy(update={"models": profiles, "runtime": runtime, "market": market})


class Session:
    """`models` maps profile names to ChatModels that serve them instead of what the profile
    names (a custom Python model, or a test double); the other profiles are built as usual.
    `log` is the run's EventSink (flowkit.store): by default the DuckDB event log at the db path.
    `limiter` caps the model calls (by default a Limiter of the firm's runtime.concurrency; a
    sweep passes one shared by all its workers)."""

    def __init__(self, loaded: LoadedWorkflow, options: RunOptions | None = None,
                 log: EventSink | None = None, models: dict[str, ChatModel] | None = None,
                 limiter: Limiter | None = None):
        self.options = options or RunOptions()
        self.loaded = loaded
        self.spec = apply_overrides(loaded.spec, self.options)
        self.run_id = self.options.run_id or new_run_id()
        self.db_path = resolve_db(loaded, self.options.db)
        self.log = log if log is not None else _open_log(self.db_path)
        self.invocation: dict[str, Any] | None = None  # what the command line asked; kept for replay
        self.preset_beliefs: list[dict[str, Any]] | None = None  # training episodes set these
        self.beliefs_used: dict[str, Any] | None = None  # memory.beliefs_used, for runs.config
        self.last_memory: Any = None                              # the run's Memory, for training
        self.market = _load_market(self.spec, loaded.base_dir, self.db_path)
        from flowkit.llm.limits import Budget, Limiter

        rt = self.spec.runtime
        self.limiter = limiter or Limiter(rt.concurrency)
        unknown = sorted(set(models or {}) - set(self.spec.models))
        if unknown:
            raise ConfigError(f"no model profile {', '.join(unknown)}; profiles: "
                              f"{', '.join(self.spec.models)}")
        self.models = self._models(models or {})
        self.firm: Firm = compile_firm(self.spec, loaded.base_dir, self.models)
        self.decided = 0                       # decisions so far, and how many were invalid
        self.invalid = 0
        self.planned_decisions: int | None = None  # the loop sets it: the run's whole count
        self.ctx = RunContext(run_id=self.run_id, agents=self.firm.agents, log=self.log,
                              budget=Budget(rt.max_cost_usd, rt.max_tokens),
                              output_attempts=rt.output_attempts,
                              log_prompts=self.spec.log.prompts, seed=rt.seed)

    def _models(self, given: dict[str, ChatModel]) -> dict[str, ChatModel]:
        from flowkit.llm.cache import CachedModel
        from flowkit.plugins import PROVIDERS, provider_name

        built: dict[str, ChatModel] = {}
        for name, profile in self.spec.models.items():
            if name in given:
                built[name] = given[name]
                continue
            provider = PROVIDERS[provider_name(profile.model)]
            fallbacks = [self.spec.models[f] for f in profile.fallbacks]
            inner = provider.create(profile, fallbacks, self.limiter)
            store = SimpleNamespace(get=self.log.cache_get, put=self.log.cache_put)
            built[name] = CachedModel(inner, store, self.spec.runtime.cache) \
                if provider.cacheable and self.spec.runtime.cache != "off" else inner
        return built

    def start(self) -> None:
        """Record the run (status running) before any step logs."""
        self.log.append("runs", {
            "run_id": self.run_id, "workflow_name": self.spec.name,
            "workflow_path": str(self.loaded.path.resolve()), "workflow_hash": self.loaded.sha256,
            "mode": self.options.mode, "parent_run_id": self.options.parent_run_id,
            "status": "running", "started_at": _now(),
            "config": {"workflow": self.resolved_config(), "invocation": self.invocation,
                       "data": {"sha256": self.market.fingerprint},
                       "beliefs": self.beliefs_used},
            "flowkit_version": __version__})
        self.record_history("started")
        self.log.flush(wait=False)  # visible to `flowkit runs` soon; the run does not wait

    def record_history(self, event: str, *, reason: str | None = None, as_of: Any = None) -> None:
        """A run_history row: the run started, resumed or ended (kept when resumed past)."""
        self.log.append("run_history", {"run_id": self.run_id, "event": event, "time": _now(),
                                        "as_of": as_of, "reason": reason})

    def resolved_config(self) -> dict[str, Any]:
        """The workflow as run (overrides applied). Keys live only in the environment, so the
        spec holds none; api_key_env records the variable's name, never its value. A relative
        market.path is stored resolved against the workflow's folder, as the run read it, so
        replay and resume read the same files from any folder."""
        config = self.spec.model_dump(mode="json")
        path = config["market"].get("path")
        if path and not Path(path).expanduser().is_absolute():
            config["market"]["path"] = str((self.loaded.base_dir / path).resolve())
        return config

    def finish(self, status: str, error: str | None = None) -> None:
        self.record_history(status, reason=error)
        self.log.update_run(self.run_id, status=status, finished_at=_now(), error=error)
        self.log.flush(wait=False)  # committed soon; close() and any read wait for it

    async def decide(self, symbol: str, as_of: Any, *, portfolio: dict[str, Any] | None = None,
                     risk_state: dict[str, Any] | None = None,
                     beliefs: dict[str, list[dict[str, Any]]] | None = None,
                     lessons: dict[str, list[str]] | None = None) -> Decision:
        decision, _ = await self.deliberate(symbol, as_of, portfolio=portfolio,
                                            risk_state=risk_state, beliefs=beliefs,
                                            lessons=lessons)
        return decision

    async def deliberate(self, symbol: str, as_of: Any, *,
                         portfolio: dict[str, Any] | None = None,
                         risk_state: dict[str, Any] | None = None,
                         beliefs: dict[str, list[dict[str, Any]]] | None = None,
                         lessons: dict[str, list[str]] | None = None,
                         ) -> tuple[Decision, DecisionState]:
        """`decide`, also returning the DecisionState the firm worked on (transcripts, memory)."""
        view = self.market.asof(symbol, as_of)
        snapshot = view.snapshot()
        state = DecisionState(symbol=symbol, as_of=snapshot["as_of"], market=snapshot,
                              portfolio=portfolio or {}, risk=self.spec.risk.model_dump(mode="json"),
                              risk_state=risk_state or {}, beliefs=beliefs or {},
                              lessons=lessons or {}, view=view)
        try:
            for step in self.firm.root.steps:  # top-level stages, each reported as it finishes
                await step.run(self.ctx, state, Scope())
            decision = self._decision(state)
        except (StepError, OutputNeverValid) as exc:
            # held only when a model failed it; a template or data error is the user's to fix
            if not state.never_valid or self.spec.runtime.on_invalid == "fail":
                raise
            decision = Decision(symbol=state.symbol, as_of=state.as_of,
                                agent=self.firm.decision_agent, action="HOLD", confidence=0.0,
                                reasoning=f"invalid: {exc}", status="invalid")
        self._count(decision)  # past the invalid share the run stops: no decision is logged
        # The caller logs the `decisions` row once the risk engine has reviewed it.
        return decision, state

    def _count(self, decision: Decision) -> None:
        """A run fails once its invalid decisions pass `max_invalid_share` of all it will make
        (of those made so far when the total is not known)."""
        self.decided += 1
        self.invalid += decision.status == "invalid"
        share = self.spec.runtime.max_invalid_share
        total = max(self.planned_decisions or 0, self.decided)
        if decision.status == "invalid" and self.invalid > share * total:
            raise RunAborted(f"{self.invalid} of {total} decisions invalid, more than "
                             f"runtime.max_invalid_share {share:.0%}; last: {decision.symbol} "
                             f"{decision.as_of}: {decision.reasoning.removeprefix('invalid: ')}")

    def _decision(self, state: DecisionState) -> Decision:
        agent = self.firm.decision_agent
        out = state.outputs.get(agent)
        if out is None:
            why = state.failures.get(agent) or ("skipped by its condition" if any(
                p.endswith(agent) for p in state.skipped) else "did not run")
            invalid = bool(state.never_valid) and agent in state.failures
            return Decision(symbol=state.symbol, as_of=state.as_of, agent=agent, action="HOLD",
                            confidence=0.0,
                            reasoning=f"{'invalid' if invalid else 'no decision'}: {agent} {why}",
                            status="invalid" if invalid else "ok")
        try:
            return decision_from_output(out, symbol=state.symbol, as_of=state.as_of, agent=agent)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}"
                                 for e in exc.errors())
            raise StepError(f"decision agent '{agent}' answered no valid decision: "
                            f"{problems}") from None

    async def aclose(self) -> None:
        seen: set[int] = set()
        for model in self.models.values():
            if id(model) not in seen:
                seen.add(id(model))
                await model.aclose()

    def close(self) -> None:
        self.log.close()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _open_log(path: str) -> EventSink:
    from flowkit.store import EventLog

    try:
        return EventLog(path)
    except FlowkitError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot open the event log {path}: {exc}") from None


def _load_market(spec: m.Workflow, base_dir: Path, db_path: str) -> Any:
    from flowkit.market import load_market

    # Next to the event log; only a source that caches (ccxt) creates it.
    cache_db = str(Path(db_path).with_suffix(".market.duckdb"))
    return load_market(spec.market, base_dir=base_dir, cache_db=cache_db)
