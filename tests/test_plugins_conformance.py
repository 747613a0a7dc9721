"""Every built-in implementation of every extension point passes the public conformance suite
(flowkit.testing.conformance), and the suite catches implementations that break the contract."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import numpy as np
import pytest

from flowkit.broker import Broker, PaperBroker
from flowkit.domain.orders import OrderRequest, Submission
from flowkit.errors import PluginError
from flowkit.market import DataSource
from flowkit.market.ccxt_source import CcxtSource
from flowkit.market.sources import SAMPLE_DIR, RawSymbol
from flowkit.plugins import BROKERS, PROVIDERS, SOURCES, TOOLS, provider_name
from flowkit.roles.registry import BUILTIN_ROLES, RoleInfo
from flowkit.spec.models import MarketSpec, ModelProfile, PortfolioSpec
from flowkit.testing.conformance import (
    check_broker,
    check_data_source,
    check_model_provider,
    check_role,
    check_tool,
)
from flowkit.testing.fakeserver import FakeOpenAIServer
from test_broker_ccxt import FIXTURES as CCXT_BROKER_DATA
from test_broker_ccxt import FakeExchange, keys
from test_market_ccxt import RecordedBinance

# ------------------------------------------------------------------ the built-ins


def test_flowkit_registers_its_built_ins_through_entry_points() -> None:
    assert SOURCES.builtin() == ["ccxt", "csv", "sample"]
    assert BROKERS.builtin() == ["ccxt", "paper"]
    assert PROVIDERS.builtin() == ["litellm", "local", "offline"]
    assert TOOLS.builtin() == ["fundamentals", "indicators", "news", "price_history"]
    assert len(BUILTIN_ROLES.builtin()) == 12 and "trader" in BUILTIN_ROLES.builtin()


@pytest.mark.parametrize("symbols", [["AAPL", "MSFT"], ["ETH-USDT", "SPY", "BTC-USDT"]])
def test_sample_source(symbols: list[str]) -> None:
    check_data_source(SOURCES["sample"](MarketSpec(symbols=symbols)), symbols)


def test_sample_source_hourly() -> None:
    check_data_source(SOURCES["sample"](MarketSpec(symbols=["BTC-USDT"])),
                      ["BTC-USDT", "ETH-USDT"], "1h")


def test_csv_source_reads_a_relative_folder(tmp_path) -> None:
    (tmp_path / "data" / "ohlcv").mkdir(parents=True)
    for symbol in ("NVDA", "GOOGL"):
        text = (SAMPLE_DIR / "ohlcv" / f"{symbol}.csv").read_text()
        (tmp_path / "data" / "ohlcv" / f"{symbol}.csv").write_text(text)
    source = SOURCES["csv"](MarketSpec(symbols=["NVDA"], source="csv", path="data"),
                            base_dir=tmp_path)
    check_data_source(source, ["NVDA", "GOOGL"])


def test_ccxt_source_offline(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowkit.market import ccxt_source

    fake = RecordedBinance(now="2026-01-15T08:00:00")
    monkeypatch.setattr(ccxt_source, "make_exchange", lambda exchange_id: fake.exchange)
    spec = MarketSpec(symbols=["BTC-USDT"], source="ccxt", exchange="binance")
    check_data_source(SOURCES["ccxt"](spec, cache_db=str(tmp_path / "c.duckdb")),
                      ["BTC-USDT", "ETH-USDT"], missing="DOGE-USDT")
    assert SOURCES["ccxt"] is CcxtSource and CcxtSource.round_the_clock


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("symbol,quantity", [("AAPL", 10), ("BTC-USDT", 0.05)])
def test_paper_broker(fill: str, symbol: str, quantity: float) -> None:
    check_broker(BROKERS["paper"], PortfolioSpec(fill=fill, fractional=quantity < 1),
                 symbol=symbol, quantity=quantity)


def test_ccxt_broker_on_a_recorded_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in keys("binance").items():
        monkeypatch.setenv(name, value)

    def offline(broker: Broker) -> None:
        broker.exchange.set_markets(json.loads((CCXT_BROKER_DATA / "binance_markets.json")
                                               .read_text()))
        broker.exchange.fetch = FakeExchange(json.loads(
            (CCXT_BROKER_DATA / "binance_responses.json").read_text()))

    start = dt.datetime(2024, 1, 2)
    bars = [(start + dt.timedelta(days=k), 42_000.0, 43_000.0, 41_000.0, 42_500.0) for k in range(3)]
    check_broker(BROKERS["ccxt"], PortfolioSpec(broker="ccxt", exchange="binance", fractional=True),
                 symbol="BTC-USDT", quantity=0.023, bars=bars, prepare=offline)


def test_offline_provider() -> None:
    assert provider_name("offline") == "offline" and not PROVIDERS["offline"].cacheable
    check_model_provider(PROVIDERS["offline"], ModelProfile(model="offline"))


@pytest.mark.usefixtures("http_path")  # openai/<model> at an api_base: lean and litellm transport
def test_litellm_provider_against_the_fake_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-fake")
    assert provider_name("openai/fake") == "litellm" and PROVIDERS["litellm"].cacheable
    with FakeOpenAIServer() as srv:
        check_model_provider(PROVIDERS["litellm"],
                             ModelProfile(model="openai/fake", api_base=srv.base_url,
                                          api_key_env="FAKE_KEY", retries=0))
        assert {r.model for r in srv.requests} == {"fake"}


@pytest.mark.parametrize("name", ["price_history", "indicators", "news", "fundamentals"])
def test_builtin_tools(name: str) -> None:
    check_tool(name)


@pytest.mark.parametrize("symbol,as_of", [("BTC-USDT", "2024-06-03T00:00"),
                                          ("NVDA", "2023-11-17T21:00")])
def test_tools_on_other_symbols_and_dates(symbol: str, as_of: str) -> None:
    from flowkit.testing.conformance import sample_view

    view = sample_view(symbol, as_of)
    check_tool("price_history", arguments={"n": 3}, view=view)
    assert TOOLS["price_history"].invoke('{"n": 3}', view)["time"][-1] <= as_of[:10]


@pytest.mark.parametrize("name", BUILTIN_ROLES.builtin())
def test_builtin_roles(name: str) -> None:
    check_role(name)


# ------------------------------------------------------------------ the suite has teeth


class _ShiftingSource(DataSource):
    """Breaks the contract: a symbol's bars depend on which symbols are asked together."""

    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]:
        label = (np.datetime64("2024-01-01", "s")
                 + np.arange(5) * np.timedelta64(86_400, "s"))
        price = 100.0 + len(symbols)
        bars = np.tile([price, price + 1, price - 1, price, 1000.0], (5, 1))
        return {s: RawSymbol(f"shifting:{s}", label, bars) for s in symbols}


class _DoubleFillBroker(PaperBroker):
    """Breaks the contract: a resubmitted order is placed again."""

    def submit(self, order: OrderRequest) -> Submission:
        self._orders.pop(order.order_id, None)
        return super().submit(order)


def test_the_suite_rejects_a_broken_source() -> None:
    with pytest.raises(AssertionError, match="loading it alone gave other bars"):
        check_data_source(_ShiftingSource(MarketSpec(symbols=["AAA"])), ["AAA", "BBB"])


def test_the_suite_rejects_a_broken_broker() -> None:
    with pytest.raises(AssertionError, match="reused for a different order"):
        check_broker(_DoubleFillBroker)


def test_the_suite_rejects_a_tool_that_raises_and_a_role_without_prompt(tmp_path) -> None:
    def crashes(view: Any) -> Any:
        """Always fails."""
        raise RuntimeError("boom")

    with pytest.raises(AssertionError, match="answered"):
        check_tool("crashes", crashes)
    with pytest.raises(AssertionError, match="prompt"):
        check_role("ghost", RoleInfo("analyst", str(tmp_path / "missing.j2"), "analyst_report",
                                     "Haunts."))
    with pytest.raises(AssertionError, match="kind"):
        check_role("odd", RoleInfo("oracle", "trader.j2", "trade_proposal", "Sees all."))


def test_a_wrongly_typed_plugin_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match="not a subclass of flowkit.market.base.DataSource"):
        SOURCES.adapt("bogus", dict)
    with pytest.raises(PluginError, match="expected a function"):
        TOOLS.adapt("bogus", 42)
    with pytest.raises(PluginError, match=re.escape("unknown broker 'papr' (did you mean")):
        BROKERS["papr"]


def test_flowkit_refuses_to_run_without_its_own_entry_points(monkeypatch) -> None:
    from flowkit import plugins

    monkeypatch.setattr(plugins, "_installed", lambda group: ())
    with pytest.raises(PluginError, match="reinstall flowkit"):
        list(SOURCES)

