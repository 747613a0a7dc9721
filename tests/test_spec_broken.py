"""Every class of defect in a workflow file, one fixture each, with the exact message.

Each file in fixtures/broken is fixtures/valid/firm.yaml with one defect. The table says where
the one problem is and what it says; both `load_workflow` and `flowkit validate` must report
exactly that, and nothing else."""

from __future__ import annotations

import difflib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from flowkit import cli
from flowkit.errors import SpecError
from flowkit.spec.loader import load_workflow

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken"
BASE = FIXTURES / "valid" / "firm.yaml"

# (fixture name, line, column, message). The name's prefix is its class.
CASES = [
    # -- YAML syntax errors and constructs a workflow does not allow
    ('syntax_bad_indent', 33, 8,
     'YAML syntax error: bad indentation: this line does not line up with the block that '
     'starts at line 32'),
    ('syntax_unclosed_flow', 16, 7,
     "YAML syntax error: expected ',' or '}': is the bracket opened at line 15 closed, and"
     " are its items separated by commas?"),
    ('syntax_tab', 16, 1, 'YAML syntax error: tab character; YAML indentation uses spaces'),
    ('syntax_unclosed_quote', 36, 11, 'YAML syntax error: this quoted text is never closed'),
    ('syntax_missing_colon', 42, 3, "YAML syntax error: this key has no ':' after it"),
    ('syntax_python_tag', 15, 9,
     'YAML tag !!python/object:os.system is not supported; a workflow holds plain values'),
    ('syntax_merge_key', 19, 10, 'merge keys (<<) are not supported; write the keys out'),
    ('syntax_two_documents', 38, 1,
     "YAML syntax error: a second YAML document ('---'); a workflow file holds exactly one"),
    # -- duplicate keys
    ('dup_agent', 17, 3, "duplicate key 'tech' in agents (first written at line 15)"),
    ('dup_top_level', 51, 1, "duplicate key 'market' (first written at line 40)"),
    ('dup_flow_key', 15, 35, "duplicate key 'role' in agents.tech (first written at line 15)"),
    ('dup_step_key', 35, 7,
     "duplicate key 'rounds' in pipeline[1].debate (first written at line 33)"),
    # -- unknown keys, with did-you-mean
    ('unknown_agent_key', 22, 5, "unknown key 'modle' in agents.judge (did you mean 'model'?)"),
    ('unknown_debate_key', 32, 7,
     "unknown key 'particpants' in pipeline[1].debate (did you mean 'participants'?)"),
    ('unknown_top_level_key', 48, 1, "unknown key 'portfolios' (did you mean 'portfolio'?)"),
    ('unknown_risk_key', 45, 3,
     "unknown key 'max_postion_pct' in risk (did you mean 'max_position_pct'?)"),
    ('unknown_step_key', 31, 5, "unknown key 'debat' in pipeline[1] (did you mean 'debate'?)"),
    ('unknown_no_suggestion', 43, 3, "unknown key 'vendor' in market"),
    # -- wrong types
    ('type_rounds_text', 33, 15, "pipeline[1].debate.rounds: expected an integer, got 'two'"),
    ('type_symbols_string', 41, 12, "market.symbols: expected a list, got 'AAPL'"),
    ('type_agent_string', 23, 11, "agents.trader: expected a mapping, got 'trader'"),
    ('type_temperature', 9, 18, "models.default.temperature: expected a number, got 'hot'"),
    ('type_bool_string', 46, 16,
     "risk.allow_short: expected true or false, got 'false'; remove the quotes"),
    ('type_inputs_string', 25, 13, "agents.trader.inputs: expected a list, got 'judge'"),
    ('type_step_number', 35, 5,
     'pipeline[2]: a step is an agent id or a mapping with one of agent, sequential, '
     'parallel, hierarchical, debate, broadcast; got 42'),
    ('type_rounds_null', 33, 14, 'pipeline[1].debate.rounds: expected an integer, got null'),
    # -- out-of-range values
    ('range_temperature', 9, 18, 'models.default.temperature: 3 is out of range; must be <= 2'),
    ('range_position', 45, 21, 'risk.max_position_pct: 150 is out of range; must be <= 100'),
    ('range_initial_cash', 49, 17, 'portfolio.initial_cash: 0 is out of range; must be > 0'),
    ('range_version', 2, 10, 'version: must be 1, got 2'),
    ('range_join', 30, 13,
     "pipeline[0].parallel.join: 'quorum:0' is not all, any or quorum:N with N >= 1"),
    ('range_quorum', 30, 13, 'quorum:3 waits for more branches than the 2 listed'),
    ('range_rounds', 33, 15, 'pipeline[1].debate.rounds: 50 is out of range; must be <= 10'),
    ('range_empty_symbols', 41, 12, 'market.symbols: needs at least 1 item'),
    # -- names no installed package registers (flowkit's own come through the same entry points)
    ('plugin_source_unknown', 42, 11, "unknown data source 'yahoo'; installed: ccxt, csv, sample"),
    ('plugin_broker_unknown', 50, 11,
     "unknown broker 'papr' (did you mean 'paper'?); installed: ccxt, paper"),
    ('plugin_tool_unknown', 15, 55, "unknown tool 'price_histroy' (did you mean 'price_history'?); "
     "installed: fundamentals, indicators, news, price_history"),
    ('plugin_provider_typo', 11, 12,
     "unknown model provider 'ofline' in model 'ofline' (did you mean 'offline'?); an id starts "
     "with a registered provider (local, offline) or is a litellm model id"),
    # -- references to things that do not exist, or run too late
    ('ref_undefined_agent', 29, 21, "undefined agent 'nwes' (did you mean 'news'?)"),
    ('ref_undefined_model', 22, 12,
     "agent 'judge' uses undefined model profile 'deeep' (did you mean 'deep'?)"),
    ('ref_undefined_fallback', 12, 17,
     "fallback 'defualt' is not a model profile (did you mean 'default'?)"),
    ('ref_undefined_input', 25, 14,
     "agent 'trader' reads undefined agent 'jugde' (did you mean 'judge'?)"),
    ('ref_undefined_decision', 38, 11, "undefined agent 'trade' (did you mean 'trader'?)"),
    ('ref_unknown_role', 16, 16,
     "unknown role 'news_analyts' (did you mean 'news_analyst'?); define it under roles: "
     "or use a built-in role"),
    ('ref_input_not_before', 15, 44, "agent 'tech' reads 'news', which does not finish before it"),
    ('ref_agent_twice', 32, 22,
     "agent 'bull' already runs at line 29; each agent has one place in the pipeline "
     "(define another agent with the same role)"),
    ('ref_condition_name', 36, 11,
     "condition reads unknown name 'judg' (did you mean 'judge'?); it may read agents that"
     " ran before this step and failures, market, outputs, portfolio, risk_state and "
     "symbol"),
    ('ref_condition_field', 36, 11,
     "condition reads 'judge.recomendation': the output of 'judge' (research_verdict) has no "
     "field 'recomendation' (did you mean 'recommendation'?)"),
    ('ref_condition_outputs_field', 36, 11,
     "condition reads 'judge.winer': the output of 'judge' (research_verdict) has no field "
     "'winer' (did you mean 'winner'?)"),
    ('ref_condition_later_agent', 31, 11,
     "condition reads 'trader', which has not run before this step"),
    ('ref_prompt_file', 18, 41,
     "prompt file 'bull_v2.j2' not found (looked next to the workflow and in prompts/)"),
    ('ref_output_schema', 19, 41,
     "unknown output schema 'research_argumnet' (did you mean 'research_argument'?); use a"
     " built-in name or an inline JSON Schema"),
    # -- an agent in a slot its role kind cannot fill
    ('slot_debate_judge', 34, 14,
     "agent 'judge' (role news_analyst, kind analyst) cannot be the judge; the judge must "
     "be a role of kind judge or decider (research_manager, portfolio_manager)"),
    ('slot_hierarchical_manager', 28, 29,
     "agent 'tech' (role technical_analyst, kind analyst) cannot be the manager; the "
     "manager must be a role of kind manager (manager)"),
    ('slot_decision_agent', 38, 11,
     "agent 'tech' (kind analyst) cannot make the decision; it must be a role of kind "
     "trader, decider or manager (trader, portfolio_manager, manager)"),
    ('slot_no_decider', 27, 1,
     'no agent in the pipeline makes a decision; add a trader, portfolio_manager or '
     'manager'),
    ('slot_risk_debater_stance', 19, 3,
     "agent 'bear' is a risk_debater and needs a stance (aggressive, conservative or "
     "neutral)"),
    # -- cycles
    ('cycle_inputs', 23, 13, 'input cycle: judge -> trader -> judge'),
    ('cycle_self_input', 15, 43, 'input cycle: tech -> tech'),
    ('cycle_fallback', 10, 16, 'fallback cycle: default -> deep -> default'),
    ('cycle_recursive_alias', 15, 9,
     'recursive alias: this node contains itself (an endless loop)'),
    # -- unbounded loops
    ('loop_debate_no_rounds', 31, 5,
     "pipeline[1].debate: missing required key 'rounds' (every loop is bounded: say how "
     "many rounds)"),
    ('loop_debate_zero_rounds', 33, 15,
     'pipeline[1].debate.rounds: 0 is out of range; must be >= 1'),
    ('loop_hierarchical_no_max_rounds', 28, 5,
     "pipeline[0].hierarchical: missing required key 'max_rounds' (every loop is bounded: "
     "say how many rounds at most)"),
    ('loop_hierarchical_zero', 28, 70,
     'pipeline[0].hierarchical.max_rounds: 0 is out of range; must be >= 1'),
    ('loop_broadcast_no_rounds', 28, 5,
     "pipeline[0].broadcast: missing required key 'rounds' (every loop is bounded: say how"
     " many rounds)"),
    # -- YAML 1.1 surprises
    ('yaml11_no', 46, 16,
     '\'no\' is read as a boolean by YAML 1.1; write true/false, or quote it ("no") if you'
     ' meant the text'),
    ('yaml11_on', 41, 13,
     '\'ON\' is read as a boolean by YAML 1.1; write true/false, or quote it ("ON") if you'
     ' meant the text'),
    ('yaml11_yes', 15, 56,
     '\'yes\' is read as a boolean by YAML 1.1; write true/false, or quote it ("yes") if '
     'you meant the text'),
    ('yaml11_off', 31, 17,
     '\'off\' is read as a boolean by YAML 1.1; write true/false, or quote it ("off") if '
     'you meant the text'),
    ('yaml11_sexagesimal', 16, 49,
     '\'16:00\' is read as a base-60 number by YAML 1.1; quote it ("16:00")'),
    ('yaml11_octal', 15, 51,
     '\'0755\' is read as an octal number by YAML 1.1; quote it ("0755") or drop the '
     'leading zero'),
    ('yaml11_octal_symbol', 41, 19,
     '\'0700\' is read as an octal number by YAML 1.1; quote it ("0700") or drop the '
     'leading zero'),
    # -- environment interpolation and secrets
    ('env_wrong_field', 3, 7,
     '${env:...} interpolation is only allowed in models.*.model, models.*.api_base, '
     'market.path and log.db'),
    ('env_malformed', 8, 12, 'malformed interpolation; write ${env:NAME} or ${env:NAME:-default}'),
    ('env_unset', 8, 12,
     'environment variable FLOWKIT_TEST_UNSET_MODEL is not set and has no default (write '
     '${env:FLOWKIT_TEST_UNSET_MODEL:-default} to give one)'),
    ('env_secret', 9, 18,
     'this looks like an API key; never write keys in a workflow: put it in an environment'
     ' variable and name that variable in api_key_env (e.g. OPENAI_API_KEY)'),
    # -- other rules: dates, windows, conditions, data sources, templates, roles
    ('rule_window_reversed', 53, 8, 'backtest.start 2024-01-02 is after backtest.end 2023-12-29'),
    ('rule_invalid_date', 52, 10, "invalid date '2024-02-30': day is out of range for month"),
    ('rule_date_with_time', 52, 10,
     "backtest.start: '2024-01-02 09:30' is not a valid date (YYYY-MM-DD)"),
    ('rule_condition_syntax', 36, 11, "invalid condition: unexpected '='"),
    ('rule_csv_without_path', 42, 11,
     'market.source csv needs market.path (the folder holding ohlcv/)'),
    ('rule_template_syntax', 18, 50, "template syntax error: unexpected '}' (template line 1)"),
    ('rule_train_overlap', 55, 35,
     'the training window must end before the test window starts (train ends 2024-01-31, '
     'backtest starts 2024-01-02)'),
    ('rule_ccxt_without_exchange', 42, 11, 'market.source ccxt needs market.exchange (e.g. binance)'),
    ('rule_inline_output', 19, 41, 'an inline output schema must describe an object (type: object)'),
    ('rule_unknown_filter', 36, 11,
     "invalid condition: no filter named 'lowercase' (did you mean 'lower'?)"),
    ('rule_decision_output', 26, 13,
     "agent 'trader' makes the decision, but its output has no size_pct; a decision needs "
     "action (BUY, SELL or HOLD) and size_pct (a number, % of equity), both required"),
    ('rule_new_role_incomplete', 15, 3,
     "new role 'quant' needs kind, prompt and output (it does not override a built-in "
     "role)"),
]
CLASSES = {"syntax", "dup", "unknown", "type", "range", "plugin", "ref", "slot", "cycle", "loop",
           "yaml11", "env", "rule"}
IDS = [case[0] for case in CASES]


@pytest.fixture(autouse=True)
def _no_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWKIT_TEST_UNSET_MODEL", raising=False)


@pytest.mark.parametrize(("name", "line", "col", "message"), CASES, ids=IDS)
def test_load_workflow_reports_exactly_the_one_problem(name: str, line: int, col: int,
                                                       message: str) -> None:
    path = BROKEN / f"{name}.yaml"
    with pytest.raises(SpecError) as caught:
        load_workflow(path, env={})
    assert [str(p) for p in caught.value.problems] == [f"{path}:{line}:{col}: {message}"]


@pytest.mark.parametrize(("name", "line", "col", "message"), CASES, ids=IDS)
def test_validate_prints_it_and_exits_1(name: str, line: int, col: int, message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = BROKEN / f"{name}.yaml"
    assert cli.main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{path}:{line}:{col}: {message}\n")


def test_one_validate_process_reports_every_fixture_without_a_traceback() -> None:
    paths = [str(BROKEN / f"{name}.yaml") for name in IDS]
    done = subprocess.run([sys.executable, "-m", "flowkit.cli", "validate", *paths],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stdout == ""
    expected = [f"{BROKEN / name}.yaml:{line}:{col}: {message}" for name, line, col, message in CASES]
    assert done.stderr.splitlines() == expected
    assert "Traceback" not in done.stderr


def test_the_table_and_the_fixture_files_match() -> None:
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(IDS)
    assert len(IDS) == len(set(IDS))


def test_every_class_has_at_least_three_fixtures() -> None:
    counts = Counter(name.split("_")[0] for name in IDS)
    assert set(counts) == CLASSES
    assert min(counts.values()) >= 3, counts
    assert len(IDS) >= 40


@pytest.mark.parametrize("name", IDS)
def test_each_fixture_is_a_small_edit_of_the_valid_firm(name: str) -> None:
    base = BASE.read_text().splitlines()[1:]  # line 1 is each file's own comment
    edited = (BROKEN / f"{name}.yaml").read_text().splitlines()[1:]
    changed = [d for d in difflib.ndiff(base, edited) if d[:1] in "+-"]
    assert 1 <= len(changed) <= 5, changed


MANY = FIXTURES / "many" / "every_problem.yaml"
EVERY_PROBLEM = [
    (13, 16, "unknown role 'news_analsyt' (did you mean 'news_analyst'?); define it under roles: "
             "or use a built-in role"),
    (18, 12, "agent 'judge' uses undefined model profile 'deeep' (did you mean 'deep'?)"),
    (19, 5, "unknown key 'modle' in agents.judge (did you mean 'model'?)"),
    (27, 15, "pipeline[1].debate.rounds: expected an integer, got 'two'"),
    (30, 11, "condition reads 'judge.recomendation': the output of 'judge' (research_verdict) has "
             "no field 'recomendation' (did you mean 'recommendation'?)"),
    (32, 11, "undefined agent 'trade' (did you mean 'trader'?)"),
    (37, 1, "unknown key 'portfolios' (did you mean 'portfolio'?)"),
    (42, 8, "backtest.start 2024-03-02 is after backtest.end 2024-01-28"),
]


def test_every_problem_is_reported_in_one_pass(capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown key in an agent does not hide its undefined model, a broken debate does not
    # hide an undefined decision agent, an unknown top-level key hides nothing.
    expected = [f"{MANY}:{line}:{col}: {message}" for line, col, message in EVERY_PROBLEM]
    with pytest.raises(SpecError) as caught:
        load_workflow(MANY, env={})
    assert sorted(map(str, caught.value.problems)) == sorted(expected)
    assert cli.main(["validate", str(MANY)]) == 1
    assert capsys.readouterr().err.splitlines() == expected
