"""Item 4 of issue 10: templates that would exhaust the machine. What validate can see is
refused there, at the prompt's or condition's file:line:col; what only shows when rendering
(computed sizes) fails that step fast with a clear error. Every attack finishes in well under
a second; none allocates more than the output bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from attack_support import flowkit

from flowkit.errors import FlowkitError
from flowkit.spec import templates
from flowkit.spec.models import TemplateLimits
from flowkit.store import open_reader

FIRM = """version: 1
name: hostile-templates
models:
  default: {{model: offline}}
agents:
  analyst:
    role: technical_analyst
    prompt: {{inline: "{prompt}"}}
  trader: {{role: trader, inputs: [analyst]}}
pipeline:
  - analyst
  - agent: trader
    when: "{when}"
market:
  symbols: [{symbol}]
"""
# Attacks whose size is written in the template: validate refuses them.
STATIC = {
    "nested range": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "range of a billion": "{% for a in range(10**9) %}{% endfor %}",
    "lipsum": "{{ lipsum(n=10**7) }}",
    "huge exponent": "{{ 10 ** 99999999 }}",
    "percent width": "{{ '%900000000s'|format(1) }}",
    "percent operator": "{{ '%900000000s' % 1 }}",
    "center": "{{ 'x'|center(900000000) }}",
    "indent": "{{ 'x'|indent(900000000) }}",
    "brace width": "{{ '{:>900000000}'.format(1) }}",
    "string repeat": "{{ 'x' * 10**12 }}",
}
# Attacks whose size is computed: only rendering sees them.
DYNAMIC = {
    "computed width": "{% set n = 9 * 100000000 %}{{ 'x'|center(n) }}",
    "computed indent": "{% set n = 9 * 100000000 %}{{ 'a\\nb'|indent(n) }}",
    "computed format": "{% set f = '%' ~ (9 * 100000000) ~ 's' %}{{ f|format(1) }}",
    "namespace doubling": ("{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                           "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"),
    "computed nested loops": ("{% set n = 1000 * 100 %}{% for a in range(n) %}{% for b in range(n) %}"
                              "{% endfor %}{% endfor %}"),
    "loops over strings": ("{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}"
                           "{% endfor %}"),
    "join with a huge separator": "{{ range(100000)|join('x' * 100000) }}",
    "replace growth": "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
    "batch fill": "{% set n = 10 ** 9 %}{{ [1]|batch(n, 'x')|list|length }}",
    "recursive macro": ("{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}"
                        "{{ f('x', 200) }}"),
    "big integer chain": "{% set a = 10 ** 1000 %}{% set b = a ** 1000 %}{{ b ** 1000 }}",
    "huge output": "{% for i in range(99999) %}{{ 'x' * 99999 }}{% endfor %}",
    "map a filter": "{% set n = 9 * 100000000 %}{{ ['x']|map('center', n)|list }}",
    "tojson indent": "{% set n = 9 * 100000000 %}{{ [1]|tojson(indent=n) }}",
    "slow loop body": ("{% for i in range(100000) %}{{ range(100000)|map('string')|join|length }}"
                       "{% endfor %}"),
}


def write(tmp_path: Path, prompt: str = "ok", when: str = "true", symbol: str = "MSFT") -> Path:
    path = tmp_path / "firm.yaml"
    path.write_text(FIRM.format(prompt=prompt.replace("\\", "\\\\").replace('"', '\\"'),
                                when=when.replace('"', '\\"'), symbol=symbol))
    return path


@pytest.mark.parametrize("attack", STATIC.values(), ids=STATIC.keys())
def test_visible_attacks_in_a_prompt_fail_validate_at_the_prompt(capsys, tmp_path: Path,
                                                                 attack: str) -> None:
    path = write(tmp_path, prompt=attack)
    code, out, err = flowkit(capsys, "validate", path)
    assert code == 1
    assert f"{path}:8:22: template: " in err, err


@pytest.mark.parametrize("attack", ["range(100000)|map('center', 900000000)|list|length > 0",
                                    "('%900000000s' % 1)|length > 0", "lipsum(n=10**7)|length > 0",
                                    "10 ** 99999999 > 1", "('x'|center(900000000))|length > 0"])
def test_visible_attacks_in_a_condition_fail_validate_at_the_condition(capsys, tmp_path: Path,
                                                                       attack: str) -> None:
    path = write(tmp_path, when=attack)
    code, out, err = flowkit(capsys, "validate", path)
    assert code == 1
    assert f"{path}:13:11: condition: " in err, err


@pytest.fixture
def half_a_second() -> Iterator[None]:
    templates.use_limits(TemplateLimits(seconds=0.5))  # the slow loop body needs the clock
    yield
    templates.use_limits(TemplateLimits())


@pytest.mark.parametrize("attack", DYNAMIC.values(), ids=DYNAMIC.keys())
def test_computed_attacks_fail_fast_when_rendering(half_a_second: None, attack: str) -> None:
    compiled = templates.environment().from_string(attack)
    with pytest.raises(FlowkitError, match="prompt of agent 'analyst' failed to render: .*"
                                           "(characters|iterations|bits|longer than|took longer|indent)"):
        templates.render(compiled, {}, "analyst")


@pytest.mark.parametrize("attack", ["range(100000)|map('center', 9 * 100000000)|list|length > 0",
                                    "('%' ~ (9 * 100000000) ~ 's')|format(1)|length > 0",
                                    "lipsum(n=10 * 1000000)|length > 0"])
def test_computed_attacks_in_a_condition_fail_fast(attack: str) -> None:
    with pytest.raises(FlowkitError, match="could not be evaluated: .*characters"):
        templates.holds(attack, {})


def test_a_hostile_prompt_fails_its_step_and_the_run_says_where(capsys, tmp_path: Path) -> None:
    path = write(tmp_path, prompt=DYNAMIC["namespace doubling"], symbol="BTC-USDT")
    path.write_text(path.read_text() + "  timeframe: 1h\n")
    db = tmp_path / "log.duckdb"
    code, out, err = flowkit(capsys, "run", path, "--db", db, "--quiet")
    with open_reader(str(db)) as con:
        failed = con.execute("SELECT step_id, error FROM steps WHERE status = 'failed'").fetchall()
    assert any(step.endswith("analyst") and "namespace attribute 's'" in error
               and "runtime.templates.output_chars" in error for step, error in failed), failed


def test_limits_are_configurable_per_workflow(capsys, tmp_path: Path) -> None:
    loop = "{% for a in range(500) %}{% for b in range(500) %}{% endfor %}{% endfor %}"
    path = write(tmp_path, prompt=loop)
    assert flowkit(capsys, "validate", path)[0] == 1           # 250,000 > the default 100,000
    path.write_text(path.read_text() + "runtime:\n  templates: {iterations: 300000}\n")
    assert flowkit(capsys, "validate", path)[0] == 0
    templates.use_limits(TemplateLimits(iterations=300_000))
    try:
        assert templates.render(templates.environment().from_string(loop + "done"), {}, "a") == "done"
        templates.use_limits(TemplateLimits(iterations=1000))
        with pytest.raises(FlowkitError, match="more than 1,000 iterations"):
            templates.render(templates.environment().from_string(loop), {}, "a")
    finally:
        templates.use_limits(TemplateLimits())


def test_ordinary_templates_still_render() -> None:
    source = ("{% for n in news %}{{ loop.index }}. {{ n|fence }} {{ '%5.1f'|format(2.25) }} "
              "{{ '{:>4}'.format('a') }}{% endfor %}{{ 'ab'|center(6) }}|{{ 'a\\nb'|indent(2) }}"
              "{% set ns = namespace(t='') %}{% for i in range(3) %}{% set ns.t = ns.t ~ i %}"
              "{% endfor %}{{ ns.t }} {{ 2 ** 10 }} {{ [1, 2]|tojson(indent=2)|length }} "
              "{{ range(3)|map('string')|join(',') }} {{ news|map('center', 3)|join }}")
    text = templates.render(templates.environment().from_string(source),
                            {"news": ["a", "b"]}, "a")
    assert text == ("1. a   2.2    a2. b   2.2    a  ab  |a\n  b012 1024 12 0,1,2  a  b ")
