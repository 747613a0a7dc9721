"""Running a sweep: Parquet tables per cell read through one sweep database, resume runs only what is missing, a changed firm or
data file re-runs only the cells it touches, failures stay in their cell, executors agree, and
the comparison and report say what a reviewer needs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flowkit.cli import main
from flowkit.sweep.compare import compare
from flowkit.sweep.run import run_sweep
from sweep_support import here  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ROOT / "workflows" / "sweeps" / "firms" / "single_agent.yaml"
SEQ = ROOT / "workflows" / "examples" / "sequential.yaml"


def cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def sweep_file(tmp: Path, *, firms: list[Path], symbols: str = "[AAPL, NVDA]",
               vary: str = "{risk.max_position_pct: [10, 25]}", every: str = "1w") -> Path:
    path = tmp / "grid.yaml"
    path.write_text(f"""sweep: grid
firms: [{', '.join(map(str, firms))}]
vary: {vary}
symbols: {symbols}
windows:
  fixed: [{{start: 2023-01-03, end: 2023-02-10}}, {{start: 2023-02-13, end: 2023-03-24}}]
every: {every}
metrics: [sharpe, cumulative_return, max_drawdown]
""")
    return path


def metrics_by_cell(records: list[dict]) -> dict[str, dict]:
    return {r["cell"]["id"]: r["metrics"] for r in records}


def test_every_cell_writes_parquet_and_the_sweep_database_reads_them_all(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE])
    code, _, err = cli("sweep", path, "--compact")  # nothing to compact yet
    assert code == 1 and "no cells in sweeps/grid yet: run `flowkit sweep" in err
    first = run_sweep(path, workers=2)
    assert (first.ran, first.reused) == (8, 0)  # 2 values x 2 symbols x 2 windows
    assert not first.failed
    folder = here / "sweeps" / "grid"
    assert not list((folder / "cells").rglob("*.duckdb"))  # workers share no DuckDB file
    assert not (folder / "tmp").exists() and not list((folder / "cells").glob(".*"))
    for r in first.records:  # each cell's tables hold exactly its run
        runs = duckdb.sql(f"SELECT run_id, status FROM '{folder}/cells/{r['cell']['id']}/runs.parquet'")
        assert runs.fetchall() == [(r["run_id"], "completed")]
        symbols = duckdb.sql(f"SELECT DISTINCT symbol FROM "
                             f"'{folder}/cells/{r['cell']['id']}/decisions.parquet'").fetchall()
        assert {s for (s,) in symbols} == set(r["cell"]["symbols"])
        assert r["log_bytes"] == sum(f.stat().st_size for f in (folder / "cells" / r["cell"]["id"]).iterdir())
    # The sweep database: every cell's run, readable by the CLI like any event log.
    code, out, err = cli("runs", "--db", folder / "sweep.duckdb")
    assert code == 0, err
    assert all(r["run_id"] in out for r in first.records)
    last = first.records[-1]
    code, out, err = cli("show", last["run_id"], "--db", folder / "sweep.duckdb")
    assert code == 0 and "⇒ decision (trader)" in out and last["cell"]["symbols"][0] in out, err
    code, out, err = cli("report", last["run_id"], "--db", folder / "sweep.duckdb",
                         "--out", here / "cell.html")
    assert code == 0 and (here / "cell.html").stat().st_size > 0, err
    # Compaction: the same rows in one DuckDB file.
    code, out, err = cli("sweep", path, "--compact")
    assert code == 0 and "8 runs" in out, err
    with duckdb.connect(str(folder / "compact.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone() == \
            duckdb.connect(str(folder / "sweep.duckdb"), read_only=True).execute(
                "SELECT count(*) FROM decisions").fetchone()
    code, out, _ = cli("show", last["run_id"], "--db", folder / "compact.duckdb")
    assert code == 0 and "⇒ decision (trader)" in out
    again = run_sweep(path)
    assert (again.ran, again.reused) == (0, 8)
    assert metrics_by_cell(again.records) == metrics_by_cell(first.records)
    summary = json.loads((here / "sweeps" / "grid" / "summary.json").read_text())
    assert len(summary["cells"]) == 8


def test_a_killed_sweep_finishes_only_the_missing_cells(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE])
    cells = here / "sweeps" / "grid" / "cells"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "flowkit.cli", "sweep", str(path), "--executor",
                             "serial", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while len(list(cells.glob("*.json"))) < 2 and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    finished = {p.stem for p in cells.glob("*.json")}
    assert 2 <= len(finished) < 8, "the sweep ended before it could be killed"
    resumed = run_sweep(path)
    assert (resumed.ran, resumed.reused) == (8 - len(finished), len(finished))
    assert not resumed.failed and not (here / "sweeps" / "grid" / "tmp").exists()
    code, out, _ = cli("runs", "--db", here / "sweeps" / "grid" / "sweep.duckdb")
    assert code == 0 and len(re.findall(r" completed ", out)) == 8  # no half-written cell


def test_a_changed_firm_or_a_lost_cell_reruns_only_those_cells(here: Path) -> None:
    firm = here / "firm.yaml"
    shutil.copy(SINGLE, firm)
    path = sweep_file(here, firms=[firm])
    first = run_sweep(path)
    # A killed sweep: one cell's log never made it into place.
    victim = first.records[3]["cell"]["id"]
    shutil.rmtree(here / "sweeps" / "grid" / "cells" / victim)
    resumed = run_sweep(path)
    assert (resumed.ran, resumed.reused) == (1, 7)
    assert metrics_by_cell(resumed.records) == metrics_by_cell(first.records)
    # Change one variant's value: the cells of the other value are reused.
    path.write_text(path.read_text().replace("[10, 25]", "[10, 30]"))
    changed = run_sweep(path)
    assert (changed.ran, changed.reused) == (4, 4)
    # Change the firm itself (its costs): every cell is new.
    firm.write_text(firm.read_text().replace("fee_bps: 1", "fee_bps: 3"))
    assert run_sweep(path).ran == 8


def test_changed_market_data_reruns_the_cells_that_read_it(here: Path) -> None:
    data = here / "data"
    shutil.copytree(ROOT / "flowkit" / "market" / "sample", data,
                    ignore=shutil.ignore_patterns("*_1h.csv", "BTC*", "ETH*"))
    firm = here / "csvfirm.yaml"
    firm.write_text(SINGLE.read_text().replace("source: sample", "source: csv\n  path: data"))
    path = sweep_file(here, firms=[firm], vary="{}")
    first = run_sweep(path)
    assert first.ran == 4
    with (data / "ohlcv" / "NVDA.csv").open("a") as f:  # a new bar for NVDA only
        f.write("2025-10-09,190,191,189,190.5,1000\n")
    again = run_sweep(path)
    assert again.ran == 2
    rerun = {tuple(b["cell"]["symbols"]) for a, b in zip(first.records, again.records)
             if a["run_id"] != b["run_id"]}
    assert rerun == {("NVDA",)}


def test_a_failing_cell_is_isolated_and_the_command_says_so(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE], symbols="[AAPL, NOPE]", vary="{}")
    code, out, err = cli("sweep", path, "--quiet")
    assert code == 1
    assert len(re.findall(r"error: cell \w+ \(single_agent, NOPE, ", err)) == 2
    assert "no 1d bars for NOPE" in err and "DataError" not in err and "Traceback" not in err + out
    assert "2 cells failed and are left out" in out
    result = run_sweep(path)  # the failed cells are retried, the good ones kept
    assert (result.ran, result.reused) == (2, 2)


def test_pool_and_serial_executors_give_identical_cells(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE], vary="{}")
    pooled = run_sweep(path, workers=2, folder=here / "pool")
    serial = run_sweep(path, executor_name="serial", folder=here / "serial")
    assert [r["cell"] for r in pooled.records] == [r["cell"] for r in serial.records]
    assert metrics_by_cell(pooled.records) == metrics_by_cell(serial.records)
    assert [r["returns"] for r in pooled.records] == [r["returns"] for r in serial.records]


def test_command_prints_progress_the_comparison_and_a_self_contained_report(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE, SEQ], vary="{}", symbols="[MSFT, [AAPL, NVDA]]")
    code, out, err = cli("sweep", path, "--workers", "2")
    assert code == 0, err
    assert len(re.findall(r"^\[\d/8\] .* completed .* ETA \d+s$", out, re.M)) == 8
    assert "[8/8]" in out
    for words in ("single_agent − buy-and-hold", "single_agent − sequential", "deflated SR",
                  "fewer than 5", "· AAPL+NVDA ·"):
        assert words in out, words
    html = (here / "sweeps" / "grid" / "report.html").read_text()
    assert html.count("<svg") == 3  # one distribution plot per metric
    # Self-contained: nothing to fetch, nothing to run.
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(?!#)', html)
    assert "Honest-evaluation checklist" in html and "Deflated Sharpe" in html
    assert re.search(r"<td>Costs on</td><td class=\"ok\">yes</td>", html)
    assert re.search(r"<td>Seeds and windows</td><td class=\"bad\">no</td>", html)
    # The terminal and the page show the same numbers.
    row = re.search(r"^single_agent − sequential\s+(\S+ ± \S+ \[\S+, \S+\])", out, re.M)
    assert row and row.group(1) in html


def test_comparison_pairs_cells_and_counts_buy_and_hold_once(here: Path) -> None:
    path = sweep_file(here, firms=[SINGLE, SEQ], vary="{}")
    result = run_sweep(path)
    c = compare(result.records, ["cumulative_return"])
    assert [v.name for v in c.variants] == ["single_agent", "sequential"]
    by = {(r["cell"]["variant"], tuple(r["cell"]["symbols"]), r["cell"]["start"]): r
          for r in result.records}
    diffs = [by[("single_agent", k[1], k[2])]["metrics"]["cumulative_return"]
             - by[("sequential", k[1], k[2])]["metrics"]["cumulative_return"]
             for k in by if k[0] == "single_agent"]
    [(a, b, d)] = c.pairs
    assert (a, b) == ("single_agent", "sequential")
    assert d["cumulative_return"].n == 4
    assert d["cumulative_return"].mean == pytest.approx(sum(diffs) / 4)
    # Buy-and-hold is the same on a cell whichever firm ran it.
    for k in by:
        if k[0] == "single_agent":
            assert by[k]["buy_and_hold"] == by[("sequential", k[1], k[2])]["buy_and_hold"]
    assert c.buy_and_hold["cumulative_return"].n == 4
    assert any(w.startswith("conclusions rest on 1 seed and 2 windows") for w in c.warnings)
