"""Honest backtests: a model that may have memorised the window is flagged, a Sharpe ratio too
good to be true is flagged, and `--seeds N` reports the spread of the headline metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
FINCON = str(ROOT / "workflows" / "fincon.yaml")
CUTOFF_WARNING = re.compile(r"warning: model profile 'default' \((?P<model>[^)]*)\) has knowledge "
                            r"cutoff (?P<cutoff>\S+), after the window starts \((?P<start>\S+)\)")
SHARPE_WARNING = re.compile(r"warning: Sharpe (?P<sharpe>[\d.]+) > 3 is suspect")

MOMENTUM = """\
version: 1
name: momentum
models:
  default: {model: offline}
agents:
  technical: {role: technical_analyst}
  trader: {role: trader}
pipeline: [technical, trader]
market:
  symbols: [NVDA]
risk: {max_position_pct: 95, max_sector_pct: 95, min_cash_pct: 2, stop_loss_pct: null,
       take_profit_pct: null}
"""


# ---------------------------------------------------------------- knowledge cutoff


def test_cutoff_after_the_window_start_is_flagged_without_calling_the_model(tmp_path):
    from flowkit.app.running import Invocation, decision_times, honesty_warnings
    from flowkit.runtime.session import RunOptions, Session
    from flowkit.spec.loader import load_workflow

    def warnings(*overrides: str, start: str = "2024-01-02") -> list[str]:
        session = Session(load_workflow(FINCON, list(overrides)), RunOptions(db=str(tmp_path / "x.duckdb")))
        try:
            times = decision_times(session, ["AAPL"], Invocation(start=start, end="2024-03-28"))
            return honesty_warnings(session, times)
        finally:
            session.close()

    late = warnings("models.default.model=gpt-4o-mini", "models.default.knowledge_cutoff=2024-06-01")
    assert len(late) == 1 and CUTOFF_WARNING.search("warning: " + late[0])
    assert "gpt-4o-mini" in late[0] and "2024-06-01" in late[0] and "2024-01-02" in late[0]
    # A cutoff before the window is fine; one on the first day is not.
    assert warnings("models.default.model=gpt-4o-mini", "models.default.knowledge_cutoff=2023-10-01") == []
    assert warnings("models.default.model=gpt-4o-mini", "models.default.knowledge_cutoff=2024-01-02")
    # No declared cutoff: the model may have seen any past window.
    unknown = warnings("models.default.model=gpt-4o-mini")
    assert len(unknown) == 1 and "declares no knowledge_cutoff" in unknown[0]
    # The offline model learned nothing from the internet.
    assert warnings() == []
    assert not (tmp_path / "x.duckdb").exists() or rows(tmp_path / "x.duckdb",
                                                        "SELECT count(*) FROM model_calls")[0][0] == 0


def test_run_prints_the_cutoff_warning(tmp_path, monkeypatch):
    """A whole backtest against an OpenAI-compatible server: the warning comes first."""
    from flowkit.testing.fakeserver import FakeOpenAIServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    outputs = {}
    with FakeOpenAIServer() as srv:
        for cutoff in ("2024-06-01", "2023-06-01"):
            rc, outputs[cutoff] = cli(
                "run", FINCON, "--start", "2024-01-02", "--end", "2024-01-04",
                "--db", str(tmp_path / f"{cutoff}.duckdb"), "--model", "openai/fake-model",
                "--api-base", srv.base_url, "--cache", "off",
                "--set", f"models.default.knowledge_cutoff={cutoff}")
            assert rc == 0, outputs[cutoff]
        assert srv.requests, "the model was never called"
    text = outputs["2024-06-01"]
    found = CUTOFF_WARNING.search(text)
    assert found and found["model"] == "openai/fake-model" and found["cutoff"] == "2024-06-01"
    assert text.index("warning: model profile") < text.index("metric ")  # before the results
    assert not CUTOFF_WARNING.search(outputs["2023-06-01"])
    stored = rows(tmp_path / "2024-06-01.duckdb", "SELECT metrics FROM metrics WHERE strategy = 'firm'")
    assert any("knowledge cutoff 2024-06-01" in w for w in json.loads(stored[0][0])["warnings"])


# ---------------------------------------------------------------- Sharpe


def test_sharpe_above_three_is_flagged_and_below_is_not(tmp_path):
    firm = tmp_path / "momentum.yaml"
    firm.write_text(MOMENTUM)
    seen = {}
    for symbol in ("NVDA", "AAPL"):  # early 2024: a smooth rally, and a slide
        db = tmp_path / f"{symbol}.duckdb"
        rc, text = cli("run", str(firm), "--symbol", symbol, "--start", "2024-01-02",
                       "--end", "2024-02-29", "--db", str(db))
        assert rc == 0, text
        sharpe = json.loads(rows(db, "SELECT metrics FROM metrics WHERE strategy = 'firm'")[0][0])["sharpe"]
        flag = SHARPE_WARNING.search(text)
        assert bool(flag) == (sharpe > 3), (symbol, sharpe)
        if flag:
            assert float(flag["sharpe"]) == pytest.approx(sharpe, abs=0.006)
        seen[symbol] = sharpe
    assert seen["NVDA"] > 3 > seen["AAPL"]  # both branches exercised


# ---------------------------------------------------------------- seeds


def test_seeds_report_mean_and_standard_error(tmp_path):
    db = tmp_path / "log.duckdb"
    rc, text = cli("run", FINCON, "--start", "2024-01-02", "--end", "2024-02-09", "--db", str(db),
                   "--seeds", "3")
    assert rc == 0, text
    runs = rows(db, "SELECT run_id, parent_run_id, config->>'$.workflow.runtime.seed' FROM runs "
                    "ORDER BY started_at")
    assert len(runs) == 3
    first = runs[0][0]
    assert [r[1] for r in runs] == [None, first, first]
    assert [r[2] for r in runs] == ["0", "1", "2"]
    assert text.count("excess return vs buy-and-hold:") == 3  # each seed's own table
    summary = text[text.index("across 3 seeds:"):].splitlines()
    header = re.split(r"\s{2,}", summary[1].strip())
    assert header == ["metric", "mean", "± std. error"]
    table = {}
    for line in summary[3:]:
        if not line.strip() or line.startswith("run "):
            break
        label, mean, se = re.split(r"\s{2,}", line.strip())
        table[label] = (mean, se)
    assert {"cumulative return", "annual return", "annual volatility", "Sharpe", "Sortino",
            "max drawdown", "Calmar", "excess return vs buy-and-hold", "final equity"} <= set(table)
    finals = [json.loads(m)["final_equity"] for (m,) in rows(
        db, "SELECT metrics FROM metrics WHERE strategy = 'firm' ORDER BY run_id")]
    assert float(table["final equity"][0].replace(",", "")) == pytest.approx(sum(finals) / 3, abs=0.006)
    # The offline model is deterministic: three seeds, one result, no spread.
    assert len(set(finals)) == 1
    assert all(float(se.removesuffix(" pp").rstrip("%").replace(",", "")) == 0 for _, se in table.values())


def test_only_the_firm_is_suspected_of_look_ahead(tmp_path):
    """Buy-and-hold NVDA in early 2024 has a Sharpe far above 3: that is the market's, not a
    leak, so the report flags the firm's high Sharpe but never a baseline's."""
    from flowkit.report import write_report

    firm = tmp_path / "momentum.yaml"
    firm.write_text(MOMENTUM)
    db = tmp_path / "nvda.duckdb"
    rc, text = cli("run", str(firm), "--start", "2024-01-02", "--end", "2024-02-29", "--db", str(db))
    assert rc == 0, text
    sharpe = {s: json.loads(m)["sharpe"] for s, m in rows(
        db, "SELECT strategy, metrics FROM metrics WHERE symbol IS NULL")}
    assert sharpe["firm"] > 3 and sharpe["buy_and_hold"] > 3
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    html = write_report(db, run_id, tmp_path / "r.html").read_text()
    table = html[html.index('<table class="metrics">'):]
    flags = re.search(r"<tr><td>Flags</td>(.*?)</tr>", table, re.S).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", flags)
    assert "suspect" in cells[0] and "look-ahead" in cells[0]
    assert [c for c in cells[1:] if "look-ahead" in c] == []
