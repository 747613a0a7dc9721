"""Conformance suites for every extension point, for plugin authors and for flowkit's own
built-ins (tests/test_plugins_conformance.py runs them on each).

Each `check_*` raises AssertionError naming the broken rule of the contract, so it reads well
in pytest:

    from flowkit.testing.conformance import check_data_source

    def test_my_source_keeps_the_contract():
        check_data_source(MySource(MarketSpec(symbols=["AAPL"], source="mine")), ["AAPL", "MSFT"])

The contracts themselves are in docs/extending.md and the docstrings of `DataSource`, `Broker`,
`ModelProvider`, `Tool` and `RoleInfo`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flowkit.broker.base import Broker
from flowkit.domain.orders import OrderRequest
from flowkit.errors import BrokerError, DataError, FlowkitError
from flowkit.llm.base import ChatModel, ModelProvider, ModelRequest
from flowkit.market.base import DataSource
from flowkit.roles.registry import OUTPUT_NAMES, RoleInfo
from flowkit.spec.models import ROLE_KINDS, MarketSpec, ModelProfile, PortfolioSpec, RiskSpec
from flowkit.plugins import TOOLS
from flowkit.tools import Tool

__all__ = ["check_broker", "check_data_source", "check_model_provider", "check_role",
           "check_tool", "sample_view"]

Bar = tuple[dt.datetime, float, float, float, float]  # time, open, high, low, close


def _expect(ok: Any, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _raises(kind: type[Exception], call: Callable[[], Any], message: str) -> None:
    try:
        call()
    except kind:
        return
    except Exception as exc:  # the wrong error is as much a breach as none
        raise AssertionError(f"{message}; raised {type(exc).__name__}: {exc}") from exc
    raise AssertionError(message)


# ------------------------------------------------------------------ data sources


def check_data_source(source: DataSource, symbols: Sequence[str], timeframe: str = "1d", *,
                      missing: str = "NO-SUCH-SYMBOL") -> None:
    """`source` returns sane, ordered bars for each of `symbols` (two or more, to prove the
    answer does not depend on which symbols are asked together), the same data on every call,
    and a DataError for a symbol it does not have (`missing`). The loaded bars then pass the
    clock rules that `load_market` applies."""
    import numpy as np

    from flowkit.market import clock
    from flowkit.market.sources import RawSymbol
    from flowkit.market.view import SymbolData

    _expect(isinstance(source, DataSource), f"{source!r} is not a flowkit DataSource")
    wanted = list(symbols)
    raw = source.load(wanted, timeframe)
    _expect(isinstance(raw, dict) and sorted(raw) == sorted(wanted),
            f"load({wanted}) must return one entry per symbol asked for, got "
            f"{sorted(raw) if isinstance(raw, dict) else type(raw).__name__}")
    for symbol in wanted:
        r = raw[symbol]
        _expect(isinstance(r, RawSymbol), f"{symbol}: expected a RawSymbol, got {type(r).__name__}")
        _expect(r.label.dtype == np.dtype("datetime64[s]") and r.label.ndim == 1,
                f"{symbol}: label must be a 1-D datetime64[s] array, got {r.label.dtype}")
        _expect(r.ohlcv.dtype == np.float64 and r.ohlcv.shape == (len(r.label), 5),
                f"{symbol}: ohlcv must be float64 of shape ({len(r.label)}, 5), got "
                f"{r.ohlcv.dtype} {r.ohlcv.shape}")
        _expect(len(r.label) > 0, f"{symbol}: no bars")
        o, h, low, c = (r.ohlcv[:, k] for k in range(4))
        sane = (low <= np.minimum(o, c)) & (np.maximum(o, c) <= h)
        _expect(sane.all(), f"{symbol}: bar {r.label[~sane][0] if (~sane).any() else ''} has "
                f"high/low outside open/close")
        try:
            SymbolData(symbol, timeframe, r, source.round_the_clock or clock.is_crypto(symbol))
        except DataError as exc:
            raise AssertionError(f"{symbol}: the bars break the clock rules: {exc}") from exc
    for symbol in reversed(wanted):  # alone, and in the other order: the same data
        again = source.load([symbol], timeframe)[symbol]
        _expect(np.array_equal(again.label, raw[symbol].label)
                and np.array_equal(again.ohlcv, raw[symbol].ohlcv),
                f"{symbol}: loading it alone gave other bars than loading {wanted}")
    _raises(DataError, lambda: source.load([missing], timeframe),
            f"load([{missing!r}]) must raise DataError naming the symbol it does not have")


# ------------------------------------------------------------------ brokers


def _steady_bars(start: dt.datetime, n: int = 5, price: float = 100.0) -> list[Bar]:
    return [(start + dt.timedelta(days=k), price + k, price + k + 2, price + k - 2, price + k + 1)
            for k in range(n)]


def check_broker(broker_cls: type[Broker], spec: PortfolioSpec | None = None, *,
                 symbol: str = "AAPL", bars: Sequence[Bar] | None = None, quantity: float = 10,
                 prepare: Callable[[Broker], None] | None = None) -> None:
    """A broker built by `broker_cls.from_spec` fills a market buy of `quantity` within `bars`
    (default: five steady daily bars) and books it into the portfolio once; submitting the
    same order again changes nothing; its id reused for another order is a BrokerError; and its
    state survives a JSON round trip. `prepare(broker)` runs right after construction (to point
    an exchange broker at a test double)."""
    from flowkit.portfolio import Portfolio
    from flowkit.risk import RiskEngine

    _expect(isinstance(broker_cls, type) and issubclass(broker_cls, Broker),
            f"{broker_cls!r} is not a flowkit Broker subclass")
    spec = spec or PortfolioSpec()
    bars = list(bars or _steady_bars(dt.datetime(2024, 1, 2, 21)))
    _expect(len(bars) >= 3, "check_broker needs at least three bars")

    def build() -> tuple[Broker, Portfolio]:
        portfolio = Portfolio(spec.initial_cash, spec.fractional)
        engine = RiskEngine(RiskSpec(stop_loss_pct=None, take_profit_pct=None), {}, {symbol},
                            fee_bps=spec.fee_bps, slippage_bps=spec.slippage_bps,
                            run_id="conformance")
        broker = broker_cls.from_spec(spec, portfolio, engine)
        _expect(isinstance(broker, broker_cls), f"from_spec returned {broker!r}")
        if prepare is not None:
            prepare(broker)
        return broker, portfolio

    broker, portfolio = build()
    _expect(isinstance(getattr(broker, "name", None), str) and broker.name,
            "a broker has a non-empty `name` (the orders table's broker column)")
    broker.on_bar(symbol, *bars[0])
    _expect(symbol in broker.marks, "on_bar must record the symbol's latest price in `marks`")
    order = OrderRequest.create(run_id="conformance", as_of=bars[0][0], symbol=symbol,
                                side="buy", quantity=quantity)
    first = broker.submit(order)
    _expect(first.order.order_id == order.order_id, "submit must return the order it placed")
    _expect(broker.submit(order).order.order_id == order.order_id,
            "submitting the same order again must return its record")
    other = order.model_copy(update={"quantity": quantity * 2})
    _raises(BrokerError, lambda: broker.submit(other),
            "an order id reused for a different order must be a BrokerError")
    for bar in bars[1:]:
        broker.on_bar(symbol, *bar)
    _expect(broker.orders[order.order_id].status == "filled",
            f"a market buy must fill within {len(bars)} bars; status is "
            f"{broker.orders[order.order_id].status}")
    fills = [f for f in broker.fills if f.order_id == order.order_id]
    _expect(len(fills) == 1, f"one order, one booked fill; got {len(fills)}")
    _expect(0 < fills[0].quantity <= quantity and portfolio.qty(symbol) == fills[0].quantity,
            f"the fill ({fills[0].quantity}) must be booked into the portfolio once "
            f"(position {portfolio.qty(symbol)})")
    broker.submit(order)
    _expect(len(broker.fills) == 1 and portfolio.qty(symbol) == fills[0].quantity,
            "resubmitting a filled order must not fill it again")
    state = json.loads(json.dumps(broker.to_state()))
    restored, _ = build()
    restored.load_state(state)
    _expect(dict(restored.orders) == dict(broker.orders) and restored.fills == broker.fills
            and dict(restored.marks) == dict(broker.marks),
            "load_state(to_state()) must restore orders, fills and marks")


# ------------------------------------------------------------------ model providers


def sample_view(symbol: str = "AAPL", as_of: str = "2024-03-28T21:00") -> Any:
    """The as-of view of a shipped sample symbol, for tools and model requests in tests."""
    import numpy as np

    from flowkit.market.data import load_market

    market = load_market(MarketSpec(symbols=[symbol]))
    return market.asof(symbol, np.datetime64(as_of, "s"))


def check_model_provider(provider: ModelProvider, profile: ModelProfile,
                         outputs: Sequence[str] = ("analyst_report", "trade_proposal")) -> None:
    """`provider.create(profile, ...)` is a ChatModel that answers a request for each of
    `outputs` with JSON satisfying the requested schema, reports its tokens and cost as
    non-negative numbers, and can be closed twice. Runs its own event loop: call it from a
    plain (not async) test."""
    from flowkit.llm.limits import Limiter
    from flowkit.roles.outputs import OUTPUTS, output_json_schema

    _expect(isinstance(provider, ModelProvider),
            f"{provider!r} is not a ModelProvider (needs `cacheable` and `create`)")
    _expect(isinstance(provider.cacheable, bool), "`cacheable` must be a bool")
    model = provider.create(profile, [], Limiter(2))
    _expect(isinstance(model, ChatModel) and isinstance(model.name, str),
            f"create() returned {model!r}, not a ChatModel with a name")
    snapshot = sample_view().snapshot()

    async def exercise() -> None:
        try:
            for name in outputs:
                request = ModelRequest(
                    agent="conformance", role="trader", output_name=name,
                    output_schema=output_json_schema(name),
                    messages=[{"role": "user", "content": f"Answer as JSON: {name}."}],
                    context={"symbol": snapshot["symbol"], "as_of": snapshot["as_of"],
                             "market": snapshot, "agent": {"id": "conformance"}})
                answer = await model.complete(request)
                try:
                    OUTPUTS[name].model_validate_json(answer.content)
                except ValueError as exc:
                    raise AssertionError(f"the {name} answer does not satisfy its schema: "
                                         f"{exc}") from exc
                _expect(min(answer.prompt_tokens, answer.completion_tokens, answer.cost_usd) >= 0,
                        "tokens and cost must be non-negative")
        finally:
            await model.aclose()
            await model.aclose()

    asyncio.run(exercise())


# ------------------------------------------------------------------ tools


def check_tool(name: str, obj: Any = None, arguments: dict[str, Any] | None = None,
               view: Any = None) -> None:
    """The tool registered as `name` (or `obj`, what its entry point names) has an OpenAI
    function spec whose parameters are a closed JSON Schema object, answers `arguments` on an
    as-of view (default: AAPL's sample data) with JSON, the same twice, and turns bad
    arguments into an error the model reads instead of raising."""
    from jsonschema import Draft202012Validator

    tool = TOOLS[name] if obj is None else TOOLS.adapt(name, obj)
    _expect(isinstance(tool, Tool), f"{name}: not a Tool")
    Draft202012Validator.check_schema(tool.parameters)
    _expect(tool.parameters.get("type") == "object"
            and tool.parameters.get("additionalProperties") is False,
            f"{name}: parameters must be a JSON Schema object with additionalProperties: false")
    function = tool.spec.get("function", {})
    _expect(tool.spec.get("type") == "function" and function.get("name") == tool.name
            and function.get("description"), f"{name}: the spec needs a name and a description")
    view = view if view is not None else sample_view()
    args = json.dumps(arguments or {})
    first = tool.invoke(args, view)
    _expect(not (isinstance(first, dict) and "error" in first),
            f"{name}: {arguments or {}} on a valid view answered {first}")
    _expect(json.loads(json.dumps(first)) == first and tool.invoke(args, view) == first,
            f"{name}: the answer must be JSON and the same on the same view")
    for bad in ("not json", "[1, 2]", json.dumps({"no_such_argument": 1})):
        answer = tool.invoke(bad, view)
        _expect(isinstance(answer, dict) and "error" in answer,
                f"{name}: arguments {bad!r} must come back as {{'error': ...}}, got {answer!r}")


# ------------------------------------------------------------------ roles


def check_role(name: str, info: RoleInfo | None = None) -> None:
    """The role registered as `name` (or `info`) has a known kind, a built-in output schema, a
    description, and a default prompt that exists and compiles as a template."""
    from flowkit._paths import asset_dir
    from flowkit.spec import templates
    from flowkit.roles.registry import BUILTIN_ROLES

    info = info if info is not None else BUILTIN_ROLES[name]
    _expect(isinstance(info, RoleInfo), f"{name}: not a RoleInfo")
    _expect(info.kind in ROLE_KINDS, f"{name}: kind {info.kind!r} is not one of {ROLE_KINDS}")
    _expect(info.output in OUTPUT_NAMES, f"{name}: output {info.output!r} is not a built-in "
            f"output schema ({', '.join(sorted(OUTPUT_NAMES))})")
    _expect(info.description.strip(), f"{name}: a role needs a description")
    prompt = Path(info.prompt)
    _expect(prompt.is_absolute() and prompt.is_file() or (asset_dir("prompts") / prompt).is_file(),
            f"{name}: prompt {info.prompt} is neither an absolute path to a file nor under "
            f"prompts/")
    try:
        templates.template(None, info.prompt, asset_dir("prompts"))
    except FlowkitError as exc:
        raise AssertionError(f"{name}: the prompt does not compile: {exc}") from exc
