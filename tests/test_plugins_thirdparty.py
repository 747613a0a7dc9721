"""A third-party package adds a data source, a broker, a tool, a model provider and a role
through entry points alone, and a firm runs on them end to end.

The package (tests/data/plugin_pkg) is built and installed with pip into a temporary folder, as
a user would install it; `flowkit` runs in a subprocess with that folder on its path. The
recipes in docs/extending.md are quoted from this package, and a test here holds them to it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(__file__).parent / "data" / "plugin_pkg"
FIRM = PACKAGE / "firm.yaml"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip into a fresh target folder (offline, no isolation)."""
    work = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PACKAGE, work / "src")
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(work / "src")],
                   check=True, capture_output=True, text=True, timeout=300)
    assert (target / "flowkit_demo_plugin" / "momentum.j2").is_file()
    return target


def flowkit(site: Path | None, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = [str(site)] if site else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        path + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    env.pop("FLOWKIT_DB", None)
    return subprocess.run([sys.executable, "-m", "flowkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def ramp_close(day: str) -> float:
    """What the plugin's source says the close of `day` is: 50 + 0.25 per weekday since
    2023-01-02 (computed here independently of the plugin)."""
    return 50.0 + 0.25 * int(np.busday_count("2023-01-02", day))


def test_a_firm_runs_on_the_plugins_source_broker_tool_provider_and_role(site: Path,
                                                                          tmp_path: Path) -> None:
    firm = tmp_path / "firm.yaml"
    shutil.copy(FIRM, firm)
    checked = flowkit(site, "validate", str(firm), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "ok — plugin-firm: 2 agents" in checked.stdout

    db = tmp_path / "run.duckdb"
    done = flowkit(site, "run", str(firm), "--start", "2024-03-04", "--end", "2024-03-08",
                   "--db", str(db), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        orders = con.execute("SELECT symbol, side, status, broker, strftime(as_of, '%Y-%m-%d') "
                             "FROM orders WHERE reason = 'decision' ORDER BY as_of, symbol"
                             ).fetchall()
        brokers = con.execute("SELECT DISTINCT broker, status FROM orders").fetchall()
        fills = con.execute("SELECT symbol, strftime(time, '%Y-%m-%d'), price, fee FROM fills "
                            "ORDER BY time, symbol").fetchall()
        calls = con.execute("SELECT agent, model, response FROM model_calls "
                            "ORDER BY started_at, agent").fetchall()
    days = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
    # The scripted provider buys every day (until the position limit leaves nothing to add);
    # the instant broker fills at once, at the ramp's close.
    assert {(s, side, status, broker) for s, side, status, broker, _ in orders} == \
        {("QQQ", "buy", "filled", "instant"), ("ZZZ", "buy", "filled", "instant")}
    assert orders[0][-1] == days[0] and {d for *_, d in orders} <= set(days)
    assert brokers == [("instant", "filled")]  # the engine's own orders too (rebalances)
    assert fills and {(s, d, p, f) for s, d, p, f in fills} == \
        {(s, d, ramp_close(d), 0.0) for s, d, *_ in fills}
    assert {d for _, d, *_ in fills} <= set(days)
    # The momentum analyst called the plugin's tool and read what it returned.
    momo = [r for a, m, r in calls if a == "momo"]
    assert all(m == "scripted/v1" for _, m, _ in calls)
    assert '"name": "ramp_info"' in momo[0]
    then, now = ramp_close("2024-02-26"), ramp_close("2024-03-04")
    assert re.search(rf'\\"source\\": \\"ramp_info\\", \\"then\\": {then}, \\"now\\": {now}',
                     momo[1]), momo[1]


def test_without_the_package_its_names_are_located_errors(tmp_path: Path) -> None:
    firm = tmp_path / "firm.yaml"
    shutil.copy(FIRM, firm)
    done = flowkit(None, "validate", str(firm), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines == [
        f"{firm}:7:16: unknown role 'momentum_analyst' (did you mean 'sentiment_analyst'?); "
        f"define it under roles: or use a built-in role",
        f"{firm}:7:42: unknown tool 'ramp_info'; installed: fundamentals, indicators, news, "
        f"price_history",
        f"{firm}:13:11: unknown data source 'ramp' (did you mean 'sample'?); installed: ccxt, "
        f"csv, sample",
        f"{firm}:15:11: unknown broker 'instant'; installed: ccxt, paper"]


def test_installed_names_are_suggested(site: Path, tmp_path: Path) -> None:
    firm = tmp_path / "firm.yaml"
    firm.write_text(FIRM.read_text().replace("source: ramp", "source: rampp"))
    done = flowkit(site, "validate", str(firm), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"{firm}:13:11: unknown data source 'rampp' (did you mean 'ramp'?); "
                           f"installed: ccxt, csv, ramp, sample\n")


def test_the_plugins_own_pytest_suite_passes_with_flowkit_testing(site: Path) -> None:
    """A plugin author runs flowkit's conformance suite from their own tests, with pytest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "check_conformance.py"], cwd=site.parent / "src", env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_the_recipes_in_the_docs_are_the_tested_plugin() -> None:
    """Every code block of docs/extending.md's recipes appears verbatim in the plugin package
    (or its firm), which the tests above install and run."""
    doc = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*"))
                        if p.is_file())
    blocks = re.findall(r"```(?:python|toml|yaml|jinja)\n(.*?)```", doc, re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert block.strip() in sources, block
