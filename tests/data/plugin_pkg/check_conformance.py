"""The plugin's own tests: flowkit's conformance suite on each of its implementations."""

from flowkit.plugins import BROKERS, PROVIDERS, SOURCES
from flowkit.spec.models import MarketSpec, ModelProfile
from flowkit.testing.conformance import (check_broker, check_data_source,
                                         check_model_provider, check_role, check_tool)


def test_ramp_source():
    source = SOURCES["ramp"](MarketSpec(symbols=["ZZZ"], source="ramp"))
    check_data_source(source, ["ZZZ", "QQQ"])


def test_instant_broker():
    check_broker(BROKERS["instant"])


def test_ramp_info_tool():
    check_tool("ramp_info", arguments={"days": 3})


def test_scripted_provider():
    check_model_provider(PROVIDERS["scripted"], ModelProfile(model="scripted/v1"))


def test_momentum_analyst_role():
    check_role("momentum_analyst")
