"""pydantic models of a firm file. Structural only: references and topology are checked in
`semantics.py`. `schemas/workflow.schema.json` is generated from these models
(`python -m flowkit.spec.schema --write`) and a test keeps the two in agreement. Each pipeline
step's model belongs to its pattern (`flowkit.patterns`)."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field

from flowkit.fields import (API_BASE_PATTERN, ENV_NAME_PATTERN, EXCHANGE_PATTERN, ID_PATTERN,
                            NAME_PATTERN, SYMBOL_PATTERN, Bool, Date, Float, Id, Int, OptDate, OptFloat,
                            OptInt, Strict, Symbol, Version)
from flowkit.patterns import step_union

# ---------------------------------------------------------------- models


class ModelProfile(Strict):
    """A named model profile that agents point at."""

    model: str = Field(
        min_length=1,
        description="`offline` for the built-in rules-based stand-in, `<provider>/<model>` for "
        "a provider an installed package registers (flowkit.providers entry points), or any "
        "litellm model id (gpt-4o-mini, anthropic/claude-3-5-haiku-latest, ollama_chat/llama3.1, "
        "openai/<name> with api_base). Allows ${env:NAME:-default}.",
    )
    temperature: Float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: Int = Field(1024, ge=1, le=200_000, description="Completion token limit per call.")
    context_window: OptInt = Field(None, ge=256, le=10_000_000, description="Tokens the model "
                                   "takes, prompt and completion. Default: what the provider "
                                   "knows (`local`: 8192), else litellm's model table, else "
                                   "unknown (no trimming). A prompt that would not fit in it "
                                   "less max_tokens and a 10% margin is trimmed: older debate "
                                   "turns first, then news beyond the newest 3, then price and "
                                   "earnings history, oldest first; the step records it.")
    timeout: Float = Field(60, gt=0, le=600, description="Seconds before one call is abandoned.")
    retries: Int = Field(2, ge=0, le=10, description="Retries of a failed call (429, 5xx, timeout) "
                         "with exponential backoff, honouring Retry-After, before fallbacks.")
    fallbacks: list[Id] = Field(default_factory=list, description="Profile names tried in order "
                                 "when this profile's model keeps failing.")
    api_base: str | None = Field(None, pattern=API_BASE_PATTERN, description="Base URL of an OpenAI-compatible server. "
                                 "Allows ${env:NAME:-default}.")
    api_key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN, description="Name of the "
                                    "environment variable holding the API key. Keys are never "
                                    "written in workflow files.")
    knowledge_cutoff: OptDate = Field(None, description="Last date the model may have seen "
                                             "in training; backtests before it are flagged.")
    rpm: OptInt = Field(None, ge=1, le=100_000, description="Rate limit: requests per minute.")
    model_path: str | None = Field(None, description="`model: local`: path to a GGUF file "
                                   "served by llama-cpp-python on a loopback port (`local/smollm2` "
                                   "needs none: its file ships in the `local` extra).")
    structured_output: Literal["auto", "json_schema", "json_object", "tools", "prompt"] = Field(
        "auto", description="How a typed output is asked for: json_schema (OpenAI, vLLM, Ollama), "
        "json_object with the schema (llama.cpp), tools (a forced function call), prompt (the "
        "schema in the system message only). auto picks from what litellm knows of the model "
        "and, on an endpoint that rejects a mode, steps down to the next one for the rest of "
        "the run.")


# ---------------------------------------------------------------- roles and agents


class InlinePrompt(Strict):
    inline: str = Field(min_length=1, description="A jinja2 template written in the YAML itself.")


PromptRef = Union[str, InlinePrompt]
OutputRef = Union[str, dict[str, Any]]

ROLE_KINDS = ("analyst", "researcher", "judge", "trader", "risk", "decider", "manager")


class RoleSpec(Strict):
    """A user-defined role, or an override of a built-in role's prompt or output."""

    kind: Literal["analyst", "researcher", "judge", "trader", "risk", "decider", "manager"] | None = Field(
        None, description="What the role does: decides which patterns may use it and how the "
        "offline model answers it. Required for a new role; inherited when overriding a built-in.")
    description: str = Field("", description="What the role is for.")
    prompt: PromptRef | None = Field(None, description="Template file under prompts/ (path relative "
                                     "to the workflow file) or {inline: ...}.")
    output: OutputRef | None = Field(None, description="Built-in output schema name, or an inline "
                                     "JSON Schema object.")


class AgentSpec(Strict):
    """An instance of a role with its model, prompt and tools."""

    role: str = Field(pattern=ID_PATTERN, description="A built-in role or one defined under `roles:`.")
    model: str = Field("default", pattern=ID_PATTERN, description="Name of a profile under `models:`.")
    description: str = Field("", description="Free text shown in graphs and transcripts.")
    prompt: PromptRef | None = Field(None, description="Overrides the role's prompt: a template file "
                                     "path or {inline: ...}.")
    output: OutputRef | None = Field(None, description="Overrides the role's output: a schema name "
                                     "or an inline JSON Schema.")
    tools: list[str] = Field(default_factory=list, examples=[["price_history", "indicators"]],
                             description="Registered Python tools (built in: price_history, "
                             "indicators, news, fundamentals; or flowkit.tools entry points) or "
                             "module.path:function, which the agent may call through the "
                             "model's tool-calling interface.")
    inputs: list[Id] = Field(default_factory=list, description="Agent ids whose outputs this agent "
                              "reads; each must run before it.")
    stance: Literal["aggressive", "conservative", "neutral", "bull", "bear"] | None = Field(
        None, description="Risk stance of a risk_debater (aggressive, conservative or neutral), "
        "or the side a researcher argues (bull or bear; bull_researcher and bear_researcher "
        "have theirs).")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra values templates read "
                                   "as `params`.")
    max_tool_rounds: Int = Field(3, ge=0, le=20, description="Bound on tool-call round trips.")


# ---------------------------------------------------------------- pipeline steps

# One model per pattern, in registry order (flowkit.patterns): an agent id or a step mapping.
Step = step_union()


# ---------------------------------------------------------------- market, risk, portfolio


class MarketSpec(Strict):
    symbols: list[Symbol] = Field(min_length=1, description="Symbols the firm decides on "
                               "(AAPL, BTC-USDT, ...).")
    source: str = Field("sample", pattern=NAME_PATTERN, examples=["sample", "csv", "ccxt"],
                        description="A registered data source. Built in: sample (the real data "
                        "shipped with flowkit), csv (your files), ccxt (an exchange, cached in "
                        "DuckDB); installed packages add more (flowkit.sources entry points).")
    path: str | None = Field(None, description="csv: folder holding ohlcv/, news/, fundamentals/. "
                             "Allows ${env:NAME:-default}.")
    exchange: str | None = Field(None, pattern=EXCHANGE_PATTERN, description="ccxt: exchange id, "
                                 "e.g. binance or bybit.")
    timeframe: Literal["1d", "1h"] = Field("1d", description="Bar size.")
    lookback: Int = Field(250, ge=20, le=5000, description="Bars of history agents see.")
    benchmark: str | None = Field(None, pattern=SYMBOL_PATTERN, description="Symbol used as the "
                                  "market reference (SPY for stocks).")
    sectors: dict[str, str] = Field(default_factory=dict, description="symbol -> sector, for the "
                                    "sector limit; sample symbols have built-in sectors.")


class CvarSpec(Strict):
    enabled: Bool = Field(True, description="Turn the CVaR trigger on or off.")
    window: Int = Field(20, ge=5, le=500, description="Trailing returns (one per decision time) "
                        "in the CVaR, and how many earlier CVaRs its reference looks back.")
    confidence: Float = Field(0.95, gt=0.5, lt=1, description="CVaR confidence level.")
    trigger_drop_pct: Float = Field(25, gt=0, le=1000, description="Relative worsening of CVaR "
                                    "versus the calmest CVaR of the previous `window` decision "
                                    "times that turns the firm risk-averse.")
    min_loss_pct: Float = Field(1.0, ge=0, le=100, description="CVaR milder than this loss (% of "
                                "equity per decision period) never triggers: a calm book's "
                                "first small loss is not a change of regime.")
    scale: Float = Field(0.5, ge=0, le=1, description="Multiplier on new exposure while risk-averse "
                         "(0 blocks new buys).")


class RiskSpec(Strict):
    """Hard limits. The rule engine enforces them whatever any model says."""

    max_position_pct: Float = Field(20, gt=0, le=100, description="Largest |position| as % of equity.")
    max_sector_pct: Float = Field(60, gt=0, le=100, description="Largest sector exposure, % of equity.")
    max_gross_exposure_pct: Float = Field(100, gt=0, le=400, description="Sum of |positions| as % "
                                          "of equity.")
    min_cash_pct: Float = Field(5, ge=0, le=100, description="Cash floor, % of equity.")
    allow_short: Bool = Field(False, description="Whether positions may go below zero.")
    stop_loss_pct: OptFloat = Field(8, gt=0, le=100, description="Default stop below entry, % "
                                        "(the trader may set a tighter one).")
    take_profit_pct: OptFloat = Field(20, gt=0, le=1000, description="Default take-profit above "
                                          "entry, %.")
    max_drawdown_pct: OptFloat = Field(25, gt=0, le=100, description="Drawdown from peak equity "
                                           "that halts new exposure and flattens the book.")
    cvar: CvarSpec | None = Field(None, description="FinCon's CVaR trigger.")


class PortfolioSpec(Strict):
    initial_cash: Float = Field(100_000, gt=0, le=1e12, description="Starting cash (up to a "
                                "trillion: beyond, float64 money would lose its cents).")
    currency: str = Field("USD", min_length=1, description="Quote currency.")
    fee_bps: Float = Field(1, ge=0, le=1000, description="Fee per fill, basis points of notional.")
    slippage_bps: Float = Field(5, ge=0, le=1000, description="Adverse price move per fill, bps.")
    fill: Literal["next_open", "close"] = Field("next_open", description="Fill at the next bar's open "
                                                "(default) or at the decision bar's close.")
    fractional: Bool = Field(False, description="Allow fractional quantities (crypto).")
    broker: str = Field("paper", pattern=NAME_PATTERN, examples=["paper", "ccxt"],
                        description="A registered broker. Built in: paper (simulated fills), ccxt "
                        "(an exchange's sandbox; live needs --live and FLOWKIT_LIVE_CONFIRM); "
                        "installed packages add more (flowkit.brokers entry points).")
    exchange: str | None = Field(None, pattern=EXCHANGE_PATTERN, description="ccxt broker exchange id.")


# ---------------------------------------------------------------- backtest, learning, log, runtime


class BacktestSpec(Strict):
    start: Date = Field(description="First decision date.")
    end: Date = Field(description="Last decision date.")
    every: Literal["1d", "1w", "1h"] = Field("1d", description="Decision frequency.")
    risk_free_rate: Float = Field(0.0, ge=-0.1, le=1, description="Annual risk-free rate for "
                                  "Sharpe/Sortino.")
    periods_per_year: OptInt = Field(None, ge=1, le=10_000, description="Annualisation of the "
                                     "equity curve, marked once per decision; default from the "
                                     "decision calendar: 52 weekly, 252 (stocks) or 365 (crypto) "
                                     "daily, times the bars of a session hourly.")


class TrainSpec(Strict):
    start: Date = Field(description="First date of the training window.")
    end: Date = Field(description="Last date; must be before the test window starts.")
    episodes: Int = Field(4, ge=1, le=100, description="Training episodes.")


class BeliefsSpec(Strict):
    enabled: Bool = Field(True, description="Feed learned beliefs to agents (off = ablation).")
    agents: list[Id] = Field(default_factory=list, description="Agents beliefs may reach; empty "
                              "means every agent a belief concerns.")
    top_k: Int = Field(5, ge=1, le=50, description="Most beliefs shown to one agent.")
    frozen: Bool = Field(True, description="Beliefs do not change during a test run.")


class ReflectionSpec(Strict):
    enabled: Bool = Field(True, description="Store lessons after outcomes are known.")
    agents: list[Id] = Field(default_factory=list, description="Agents that receive lessons.")
    horizon: Int = Field(5, ge=1, le=250, description="Bars after a decision before its outcome is "
                         "judged.")


class LearningSpec(Strict):
    beliefs: BeliefsSpec | None = Field(None, description="FinCon conceptual verbal reinforcement.")
    reflection: ReflectionSpec | None = Field(None, description="TradingAgents-style reflection.")
    train: TrainSpec | None = Field(None, description="The training window for `flowkit train`.")


class LogSpec(Strict):
    db: str = Field("flowkit.duckdb", min_length=1, description="DuckDB file. Allows "
                    "${env:NAME:-default}; FLOWKIT_DB and --db override it.")
    prompts: Bool = Field(True, description="Store full request messages in model_calls.")


class TemplateLimits(Strict):
    """What one rendering of a prompt or `when:` condition may cost; past it the step fails
    with a clear error (a template cannot stall or exhaust the machine)."""

    seconds: Float = Field(2.0, gt=0, le=600, description="Wall time of one rendering.")
    output_chars: Int = Field(1_000_000, ge=1_000, le=100_000_000, description="Largest "
                              "rendered text, and largest string or list a template builds.")
    iterations: Int = Field(100_000, ge=1, le=100_000_000, description="`{% for %}` iterations "
                            "of one rendering, all loops together.")


class RuntimeSpec(Strict):
    concurrency: Int = Field(8, ge=1, le=256, description="Most model calls in flight at once.")
    cache: Literal["off", "read_write", "replay"] = Field("read_write", description="Response cache "
                                                          "mode; replay fails on a miss.")
    max_cost_usd: OptFloat = Field(None, gt=0, description="Stop the run cleanly past this cost.")
    max_tokens: OptInt = Field(None, ge=1, description="Stop the run cleanly past this many tokens.")
    output_attempts: Int = Field(3, ge=1, le=10, description="Tries to get output that validates "
                                 "(re-asked with the validation error).")
    seed: Int = Field(0, ge=0, description="Seed passed to models that accept one.")
    on_invalid: Literal["hold", "fail"] = Field("hold", description="When an agent gets no "
                                                "usable answer (after retries, fallbacks, "
                                                "repairs and re-asks): hold logs the decision "
                                                "as HOLD with status invalid and the reason; "
                                                "fail stops the run.")
    max_invalid_share: Float = Field(0.05, ge=0, le=1, description="Share of a run's decisions "
                                     "that may be invalid before the run fails.")
    templates: TemplateLimits = Field(default_factory=TemplateLimits, description="Bounds on "
                                      "rendering prompts and conditions.")


class Workflow(Strict):
    """A whole trading firm."""

    version: Version = Field(description="Language version; 1.")
    name: str = Field(pattern=NAME_PATTERN, description="Firm name in logs.")
    description: str = Field("", description="What the firm is.")
    models: dict[Id, ModelProfile] = Field(min_length=1, description="Named model profiles.")
    roles: dict[Id, RoleSpec] = Field(default_factory=dict, description="New roles, or overrides "
                                       "of built-in roles' prompts and outputs.")
    agents: dict[Id, AgentSpec] = Field(min_length=1, description="The firm's agents by id.")
    pipeline: list[Step] = Field(min_length=1, description="Steps run in order for each symbol.")
    decision: str | None = Field(None, pattern=ID_PATTERN, description="Agent whose output is the "
                                 "firm's decision; default: the last trader/decider in the pipeline.")
    market: MarketSpec = Field(description="What the firm trades and where the data comes from.")
    risk: RiskSpec = Field(default_factory=RiskSpec, description="Hard limits the rule engine enforces.")
    portfolio: PortfolioSpec = Field(default_factory=PortfolioSpec, description="Cash, costs, fills, broker.")
    backtest: BacktestSpec | None = Field(None, description="Default backtest window (--start/--end override).")
    learning: LearningSpec | None = Field(None, description="Beliefs, reflection and the training window.")
    log: LogSpec = Field(default_factory=LogSpec, description="Where the DuckDB event log goes.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="Concurrency, cache, budgets, re-asks.")

