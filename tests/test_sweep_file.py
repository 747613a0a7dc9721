"""The sweep file is validated like a firm: schema generated from the models, every problem at
its file:line:col, overrides checked by loading each variant, walk-forward windows honest."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from flowkit.cli import main
from flowkit.errors import SpecError
from flowkit.spec import schema as wf_schema
from flowkit.spec.yamlsrc import parse
from flowkit.sweep import spec
from flowkit.sweep.spec import WalkForward, Windows, load_sweep, windows

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "workflows" / "sweeps").glob("*.yaml"))
TA = ROOT / "workflows" / "tradingagents.yaml"
SINGLE = ROOT / "workflows" / "sweeps" / "firms" / "single_agent.yaml"


def cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def write(tmp: Path, text: str) -> Path:
    path = tmp / "s.yaml"
    path.write_text(text)
    return path


GOOD = f"""sweep: t
firms: [{TA}, {SINGLE}]
vary:
  risk.max_position_pct: [10, 20]
symbols: [AAPL, [MSFT, NVDA]]
windows:
  fixed: [{{start: 2024-01-02, end: 2024-03-28}}]
"""


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "schemas" / "sweep.schema.json").read_text()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        spec.main([])
    assert committed == out.getvalue(), "run: python -m flowkit.sweep.spec --write"
    assert json.loads(committed)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_sweeps_validate_and_schema_agrees_with_models(path: Path) -> None:
    loaded = load_sweep(path)
    assert loaded.variants and loaded.windows and loaded.symbol_sets
    validator = wf_schema.validator_for(spec.load_schema())
    assert not list(validator.iter_errors(parse(path.read_text(), str(path)).data))
    code, out, err = cli("sweep", path, "--check")
    assert code == 0 and "ok" in out, err


def test_variants_cross_firms_with_every_combination_of_values(tmp_path: Path) -> None:
    s = load_sweep(write(tmp_path, GOOD))
    assert [v.name for v in s.variants] == [
        "tradingagents risk.max_position_pct=10", "tradingagents risk.max_position_pct=20",
        "single_agent risk.max_position_pct=10", "single_agent risk.max_position_pct=20"]
    assert s.symbol_sets == [("AAPL",), ("MSFT", "NVDA")]


@pytest.mark.parametrize("edit,where,words", [
    (("windows:", "window:"), (6, 1), "unknown key 'window'"),
    (("[10, 20]", "[10, -5]"), (4, 3), "max_position_pct=-5': risk.max_position_pct: -5 is out of range"),
    (("[10, 20]", "[]"), (4, 3), "at least 1 item"),
    (("risk.max_position_pct", "risk.max_positon_pct"), (4, 3), "max_positon_pct"),
    (("end: 2024-03-28", "end: 2023-03-28"), (7, 11), "is after end"),
    (("end: 2024-03-28", "end: 2024-13-28"), (7, 40), "2024-13-28"),
    (("[AAPL,", "[aapl!,"), (5, 10), "aapl!"),
    ((f"{SINGLE}]", f"{ROOT}/workflows/nope.yaml]"), (2, 1), "cannot read workflow"),
    ((f"{SINGLE}]", f"{TA}]"), (2, 8), "two firms named 'tradingagents'"),
])
def test_a_broken_sweep_is_reported_at_its_line_and_column(tmp_path: Path, edit, where, words) -> None:
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(SpecError) as exc:
        load_sweep(path)
    text = str(exc.value)
    assert words in text, text
    if edit[1].endswith("nope.yaml]"):  # a missing firm file is located in the firm's path
        assert "nope.yaml:1:1" in text
    else:
        assert f"{path}:{where[0]}:" in text, text
    code, out, err = cli("sweep", path, "--check")
    assert code == 1 and words in err and "Traceback" not in err and "internal" not in err


def test_a_file_without_a_sweep_key_is_not_a_sweep(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="top-level 'sweep:'"):
        load_sweep(TA)
    code, _, err = cli("sweep", tmp_path / "missing.yaml", "--check")
    assert code == 1 and "cannot read" in err


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_fewer_than_one_worker_is_one_clean_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 workers: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("sweep", SHIPPED[0], "--workers", workers)
    assert code == 1 and err == f"error: --workers {workers}: expected at least 1\n"
    assert not (tmp_path / "sweeps").exists()  # refused before any cell ran


@pytest.mark.parametrize("start,train,test,step,end", [
    (dt.date(2019, 1, 1), 12, 12, None, dt.date(2025, 6, 30)),
    (dt.date(2019, 1, 31), 6, 3, 1, dt.date(2021, 2, 28)),
    (dt.date(2020, 2, 29), 24, 1, 2, dt.date(2023, 1, 1)),
    (dt.date(2021, 3, 15), 0, 4, None, dt.date(2022, 12, 31)),
])
def test_walk_forward_windows_never_overlap_their_training(start, train, test, step, end) -> None:
    ws = windows(Windows(walk_forward=WalkForward(start=start, end=end, train_months=train,
                                                  test_months=test, step_months=step)))
    assert ws
    for w in ws:
        assert start <= w.start <= w.end <= end
        if train:
            assert w.train is not None and w.train[1] < w.start and w.train[0] >= start
            assert (w.start - w.train[1]).days == 1  # training ends the day before the test
        else:
            assert w.train is None
    starts = [w.start for w in ws]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    if step is None:  # end to end: test windows never overlap each other either
        assert all(a.end < b.start for a, b in zip(ws, ws[1:]))


def test_the_shipped_topologies_sweep_walks_forward_yearly() -> None:
    s = load_sweep(ROOT / "workflows" / "sweeps" / "topologies.yaml")
    assert [v.name for v in s.variants] == ["tradingagents", "fincon", "single_agent"]
    assert [(w.start.year, w.end.year) for w in s.windows] == [(y, y) for y in range(2020, 2025)]
    assert len(s.symbol_sets) == 5
