"""What the repair ladder and the invalid-decision policy did is visible where a user looks:
`flowkit show` prints each step's repairs and each held decision; the HTML report counts and
lists the invalid decisions and shows the repairs in the transcript."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from runtime_support import dicts, firm, without_ambient
from runtime_support import flowkit_cli as cli

from flowkit.testing.fakeserver import FakeOpenAIServer, Say, instance

FIRM = """
models:
  default: {model: offline}
agents:
  trader: {role: trader}
pipeline: [trader]
market: {symbols: [SYMBOL]}
"""




@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    without_ambient(monkeypatch)


@pytest.mark.parametrize("symbol,start,end", [("MSFT", "2024-02-05", "2024-02-07"),
                                              ("ETH-USDT", "2024-05-10", "2024-05-12")])
def test_show_and_the_report_tell_repairs_and_held_decisions(tmp_path: Path, symbol: str,
                                                             start: str, end: str) -> None:
    """Day 1: confidence 1.75 (clamped); day 2: no JSON at all (held invalid); day 3: valid."""
    answers = iter([lambda v: json.dumps({**v, "confidence": 1.75}),
                    lambda v: "I would rather not say <b>anything</b> in JSON.",
                    json.dumps])
    db, html = tmp_path / "log.duckdb", tmp_path / "report.html"
    with FakeOpenAIServer() as srv:
        srv.default(Say(lambda req: next(answers)(instance(req.schema or {}))))
        code, _, err = cli("run", firm(tmp_path, FIRM.replace("SYMBOL", symbol)), "--start",
                           start, "--end", end, "--model", "openai/fake", "--api-base",
                           srv.base_url, "--db", db, "--cache", "off", "--quiet",
                           "--set", "runtime.output_attempts=1",
                           "--set", "runtime.max_invalid_share=1")
    assert code == 0, err
    [run_id] = [r["run_id"] for r in dicts(db, "SELECT run_id FROM runs")]
    statuses = [r["status"] for r in dicts(db, "SELECT status FROM decisions ORDER BY as_of")]
    assert statuses == ["ok", "invalid", "ok"]

    code, out, err = cli("show", run_id, "--db", db)
    assert code == 0, err
    first, second, third = out.split(f"━━ {symbol} as of ")[1:]
    assert "repaired: clamped confidence 1.75 -> 1" in first and "confidence: 1.0" in first
    assert "invalid, held" in second and "trader" in second and "repaired" not in second
    assert "repaired" not in third and "invalid" not in third

    code, out, err = cli("report", run_id, "--db", db, "--out", html)
    assert code == 0, err
    page = html.read_text()
    assert "3 (" in page and "1 invalid, held" in page
    [listed] = re.findall(r'<div id="invalid-decisions">(.*?)</div>', page, re.S)
    assert "(1:" in listed and symbol in listed and listed.count("<li>") == 1
    assert "repaired: clamped confidence 1.75 -&gt; 1" in page


def test_a_run_without_repairs_or_invalid_decisions_shows_neither(tmp_path: Path) -> None:
    db, html = tmp_path / "log.duckdb", tmp_path / "report.html"
    code, _, err = cli("run", firm(tmp_path, FIRM.replace("SYMBOL", "NVDA")), "--start",
                       "2024-03-04", "--end", "2024-03-06", "--db", db, "--quiet")
    assert code == 0, err
    [run_id] = [r["run_id"] for r in dicts(db, "SELECT run_id FROM runs")]
    _, out, _ = cli("show", run_id, "--db", db)
    assert "repaired" not in out and "invalid" not in out
    cli("report", run_id, "--db", db, "--out", html)
    page = html.read_text()
    assert "invalid-decisions" not in page and "repaired:" not in page
