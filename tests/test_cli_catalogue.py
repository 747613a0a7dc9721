"""The command line as one catalogue: every command that calls models takes the same model and
cache options, and they reach the models of the run it starts (run, compare, train, resume)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from runtime_support import WORKFLOWS, dicts
from runtime_support import flowkit_cli as cli

from flowkit.cli import COMMANDS, parser
from flowkit.cli.options import CATALOGUE, MODEL_OPTIONS
from flowkit.testing.fakeserver import FakeOpenAIServer

TA = str(WORKFLOWS / "tradingagents.yaml")
FINCON = str(WORKFLOWS / "fincon.yaml")
MODEL_COMMANDS = ["run", "compare", "train", "resume"]




@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def test_commands_that_call_models_all_take_the_model_options() -> None:
    calling = {name for name, c in COMMANDS.items() if set(MODEL_OPTIONS) & set(c.options)}
    assert calling == set(MODEL_COMMANDS)
    for name in calling:
        assert set(MODEL_OPTIONS) <= set(COMMANDS[name].options), name


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_a_catalogue_option_means_the_same_on_every_command(name: str) -> None:
    """Same flag, same help, same choices wherever it is attached."""
    helps = set()
    for command, c in COMMANDS.items():
        if name not in c.options:
            continue
        sub = parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
        [action] = [a for a in sub._actions if a.option_strings == list(CATALOGUE[name].flags)]
        helps.add((action.help, tuple(action.choices or ()), action.dest))
    assert len(helps) <= 1, helps


def _cache_rows(db: Path) -> int:
    return dicts(db, "SELECT count(*) AS n FROM model_cache")[0]["n"]


def _interrupted_run(db: Path) -> str:
    """A backtest on the fake model, then made to look killed before its first checkpoint."""
    with FakeOpenAIServer() as first:
        code, out, err = cli("run", TA, "--symbol", "AAPL", "--start", "2024-01-02", "--end",
                             "2024-01-03", "--model", "openai/fake", "--api-base",
                             first.base_url, "--cache", "off", "--db", db, "--quiet")
    assert code == 0, err
    [run] = dicts(db, "SELECT run_id FROM runs")
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM checkpoints")
        con.execute("UPDATE runs SET status = 'interrupted'")
    return run["run_id"]


def _args(command: str, db: Path, tmp_path: Path) -> list[Any]:
    if command == "run":
        return ["run", TA, "--symbol", "MSFT"]
    if command == "compare":
        return ["compare", TA, "--symbol", "NVDA", "--start", "2024-01-02", "--end", "2024-01-03",
                "--out", tmp_path / "compare.html"]
    if command == "train":
        return ["train", FINCON, "--symbol", "AAPL", "--episodes", "1",
                "--set", "learning.train.start=2023-06-01", "--set", "learning.train.end=2023-06-14"]
    return ["resume", _interrupted_run(db)]


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_model_options_reach_the_models_of_the_run(command: str, srv: FakeOpenAIServer,
                                                   tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    args = _args(command, db, tmp_path)
    cached_before = _cache_rows(db) if db.exists() else 0
    code, _, err = cli(*args, "--model", "openai/fake", "--api-base", srv.base_url,
                       "--cache", "off", "--db", db, "--quiet")
    assert code == 0, err
    # --api-base: this server answered; --model: as `fake`; --cache off: nothing cached
    assert srv.requests and {r.model for r in srv.requests} == {"fake"}
    assert _cache_rows(db) == cached_before == 0
    # The same command with --cache read_write stores every answer it got.
    if command != "resume":
        code, _, err = cli(*args, "--model", "openai/fake", "--api-base", srv.base_url,
                           "--cache", "read_write", "--db", db, "--quiet")
        assert code == 0, err
        assert _cache_rows(db) > 0


def test_resume_refuses_to_switch_the_model_of_a_run(srv: FakeOpenAIServer, tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    run_id = _interrupted_run(db)
    code, out, err = cli("resume", run_id, "--model", "offline", "--db", db)
    assert code == 1 and err == (f"error: run {run_id} ran with openai/fake; resume cannot "
                                 f"switch it to --model offline\n")
    assert srv.requests == [] and dicts(db, "SELECT status FROM runs") == [{"status": "interrupted"}]


@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_drops_the_progress_but_keeps_the_run_id_and_the_result(quiet: bool,
                                                                      tmp_path: Path) -> None:
    db = tmp_path / "log.duckdb"
    code, out, err = cli("run", TA, "--symbol", "AMZN", "--start", "2024-02-01", "--end",
                         "2024-02-29", "--db", db, *(["--quiet"] if quiet else []))
    assert code == 0, err
    [run] = dicts(db, "SELECT run_id FROM runs")
    assert f"run {run['run_id']} logged. See it with: flowkit show {run['run_id']}" in out
    assert "cumulative return" in out and "buy and hold" in out  # the result table
    header = f"run {run['run_id']} · tradingagents · backtest · AMZN · 20 decision times"
    progress = "] 20/20 dates · 20 decisions"
    assert (header in out, progress in out) == (not quiet, not quiet)


def test_reading_commands_do_not_load_the_runtime(tmp_path: Path) -> None:
    """`runs`, `show` and `report` can be polled while a run writes: they stay light."""
    import subprocess
    import sys

    db = tmp_path / "log.duckdb"
    code, _, err = cli("run", TA, "--symbol", "AAPL", "--db", db, "--quiet")
    assert code == 0, err
    probe = ("import sys; from flowkit.cli import main; code = main(['runs', '--db', sys.argv[1]]); "
             "heavy = ('numpy', 'pandas', 'litellm', 'jinja2', 'flowkit.runtime', "
             "'flowkit.graph', 'flowkit.backtest'); "
             "print(code, sorted(m for m in heavy if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True,
                          check=False)
    assert done.stderr.strip().splitlines()[-1] == "0 []", done.stderr
