"""Files that must load, what they load as, and `--set` overrides that work or fail clearly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import pytest

from flowkit.errors import ConfigError, SpecError
from flowkit.spec.loader import load_workflow

ROOT = Path(__file__).resolve().parents[1]
VALID = Path(__file__).parent / "fixtures" / "valid"
SHIPPED = sorted([*ROOT.glob("workflows/*.yaml"), *ROOT.glob("workflows/examples/*.yaml")])


@pytest.mark.parametrize("path", SHIPPED + sorted(VALID.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_workflows_and_valid_fixtures_load(path: Path) -> None:
    wf = load_workflow(path, env={})
    assert wf.spec.agents and wf.spec.pipeline
    assert len(wf.sha256) == 64 and wf.text == path.read_text()


def test_dates_written_as_yaml_dates_or_strings_are_dates() -> None:
    spec = load_workflow(VALID / "yaml_values.yaml", env={}).spec
    assert (spec.backtest.start, spec.backtest.end) == (dt.date(2024, 1, 2), dt.date(2024, 3, 28))
    assert (spec.learning.train.start, spec.learning.train.end) == (dt.date(2023, 6, 1),
                                                                    dt.date(2023, 11, 30))
    assert spec.models["default"].knowledge_cutoff == dt.date(2023, 10, 1)


def test_quoted_yaml_11_words_stay_text_and_yaml_12_numbers_are_numbers() -> None:
    spec = load_workflow(VALID / "yaml_values.yaml", env={}).spec
    assert (spec.name, spec.description) == ("no", "yes")
    assert spec.market.symbols == ["ON", "NO", "0700"]
    assert spec.agents["tech"].params == {"close_at": "16:00", "umask": "0755", "volume": True}
    assert spec.agents["trader"].params == {"max_notional": 1e6}


def test_env_interpolation_uses_defaults_when_unset() -> None:
    wf = load_workflow(VALID / "env_fields.yaml", env={})
    assert wf.spec.models["default"].model == "offline"
    assert wf.spec.models["default"].api_base == "http://localhost:8000/v1"
    assert wf.spec.market.path == "data/sample"
    assert wf.spec.log.db == "runs.duckdb"


def test_env_interpolation_uses_the_environment() -> None:
    env = {"FLOWKIT_TEST_MODEL": "gpt-4o-mini", "FLOWKIT_TEST_API_BASE": "http://gpu:9000/v1",
           "FLOWKIT_TEST_DATA": "/srv", "FLOWKIT_TEST_VENDOR": "polygon",
           "FLOWKIT_TEST_DB": "/tmp/x.duckdb", "FLOWKIT_ALLOW_PATHS": "/srv"}
    wf = load_workflow(VALID / "env_fields.yaml", env=env)
    assert wf.spec.models["default"].model == "gpt-4o-mini"
    assert wf.spec.models["default"].api_base == "http://gpu:9000/v1"
    assert wf.spec.market.path == "/srv/polygon"
    assert wf.spec.log.db == "/tmp/x.duckdb"
    assert wf.data["log"]["db"] == "/tmp/x.duckdb"


def test_the_nested_firm_keeps_its_structure() -> None:
    spec = load_workflow(VALID / "all_patterns.yaml", env={}).spec
    research = spec.pipeline[0]
    assert research.parallel.join == "quorum:2"
    assert research.parallel.steps[0].sequential == ["tech", "fund"]
    assert spec.pipeline[-1].debate.judge == "pm"
    assert spec.roles["macro_analyst"].prompt.inline.startswith("Macro view")


FIRM = VALID / "firm.yaml"


@pytest.mark.parametrize(("override", "check"), [
    ("risk.max_position_pct=10", lambda s: s.risk.max_position_pct == 10),
    ("market.symbols=[MSFT, NVDA]", lambda s: s.market.symbols == ["MSFT", "NVDA"]),
    ("pipeline.1.debate.rounds=3", lambda s: s.pipeline[1].debate.rounds == 3),
    ("agents.judge.model=default", lambda s: s.agents["judge"].model == "default"),
    ("backtest.end=2024-06-28", lambda s: s.backtest.end == dt.date(2024, 6, 28)),
    ("runtime.max_cost_usd=2.5", lambda s: s.runtime.max_cost_usd == 2.5),
    ("description=", lambda s: s.description == ""),
    ("risk.allow_short=true", lambda s: s.risk.allow_short is True),
], ids=lambda v: v if isinstance(v, str) else "")
def test_valid_overrides(override: str, check: Callable[[Any], bool]) -> None:
    assert check(load_workflow(FIRM, [override], env={}).spec)


@pytest.mark.parametrize(("override", "expected"), [
    ("risk.max_position_pct=150",
     "--set risk.max_position_pct:1:1: risk.max_position_pct: 150 is out of range; must be <= 100"),
    ("risk.allow_short=no",
     "--set risk.allow_short:1:1: 'no' is read as a boolean by YAML 1.1; write true/false, or "
     "quote it (\"no\") if you meant the text"),
    ("agents.judge={role: nope}",
     "--set agents.judge:1:8: unknown role 'nope'; define it under roles: or use a built-in role"),
    ("market.symbols=[",
     "--set market.symbols:1:2: YAML syntax error: the file ends where a value should be; is a "
     "bracket left open?"),
    ("backtest.start=2024-05-01",
     f"{FIRM}:53:8: backtest.start 2024-05-01 is after backtest.end 2024-03-28"),
    ("agents.trader.modle=deep",
     "--set agents.trader.modle:1:1: unknown key 'modle' in agents.trader (did you mean 'model'?)"),
])
def test_invalid_override_values_are_located_at_the_override(override: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_workflow(FIRM, [override], env={})
    assert [str(p) for p in caught.value.problems] == [expected]


@pytest.mark.parametrize(("override", "expected"), [
    ("nokey", "--set expects dotted.path=value, got 'nokey'"),
    ("=3", "--set expects dotted.path=value, got '=3'"),
    ("risk..x=1", "--set expects dotted.path=value, got 'risk..x=1'"),
    ("pipeline.9.x=1", "--set pipeline.9.x: 'pipeline' has no key or index '9'"),
    ("version.x=1", "--set version.x: 'version' has no key or index 'x'"),
])
def test_malformed_overrides_are_config_errors(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_workflow(FIRM, [override], env={})
    assert str(caught.value) == expected
