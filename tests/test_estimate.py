"""`flowkit run --estimate`: calls, tokens and dollars before any model is called, from the
compiled topology; and, after a run with a real model, the estimate beside what it spent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from runtime_support import dicts, firm, without_ambient
from runtime_support import flowkit_cli as cli

from flowkit.testing.fakeserver import FakeOpenAIServer

# A debate (2 rounds, 2 speakers, a judge) and a `when:` step that always holds.
FIRM = """
models:
  default: {{model: offline, max_tokens: 300}}
agents:
  technical: {{role: technical_analyst}}
  bull: {{role: bull_researcher}}
  bear: {{role: bear_researcher}}
  judge: {{role: research_manager}}
  trader: {{role: trader}}
pipeline:
  - technical
  - debate: {{participants: [bull, bear], rounds: 2, judge: judge}}
  - agent: trader
    when: "judge.recommendation != 'NO SUCH VERDICT'"
market: {{symbols: [{symbols}], timeframe: {timeframe}}}
"""
PER_DECISION = 1 + 2 * 2 + 1 + 1




def row(text: str, label: str) -> list[str]:
    """The cells of the estimate table's row that starts with `label`."""
    [line] = [ln for ln in text.splitlines() if ln.strip().startswith(label)]
    return re.split(r"\s{2,}", line.strip())[1:]


def number(cell: str) -> float:
    return float(cell.replace(",", "").replace("$", ""))


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    without_ambient(monkeypatch)


@pytest.mark.parametrize("symbols,timeframe,window", [
    ("AAPL", "1d", ["--start", "2024-03-04", "--end", "2024-03-08"]),
    ("AAPL, MSFT", "1d", ["--start", "2024-03-01", "--end", "2024-03-31", "--every", "1w"]),
    ("BTC-USDT", "1h", ["--start", "2024-03-02", "--end", "2024-03-02", "--every", "1h"]),
    ("ETH-USDT, NVDA", "1d", ["--date", "2024-03-15"]),
])
def test_the_estimated_calls_are_the_calls_the_offline_run_makes(
        tmp_path: Path, symbols: str, timeframe: str, window: list[str]) -> None:
    path = firm(tmp_path, FIRM.format(symbols=symbols, timeframe=timeframe))
    db = tmp_path / "log.duckdb"
    code, out, err = cli("run", path, *window, "--estimate", "--db", db)
    assert code == 0, err
    assert not db.exists()  # nothing logged
    assert "no model was called" in out
    assert number(row(out, "per decision")[0]) == PER_DECISION
    assert number(row(out, "at most (re-asks")[0]) == 3 * PER_DECISION  # output_attempts 3
    window_calls = number(row(out, "whole window")[0])
    code, _, err = cli("run", path, *window, "--db", db, "--quiet")
    assert code == 0, err
    [[calls, decisions]] = [[r["calls"], r["decisions"]] for r in dicts(
        db, "SELECT (SELECT count(*) FROM model_calls) AS calls, "
            "(SELECT count(*) FROM decisions) AS decisions")]
    assert f"({decisions} decision" in out
    assert window_calls == calls == decisions * PER_DECISION


def test_the_fake_server_gets_the_estimated_calls_and_the_summary_compares(
        tmp_path: Path) -> None:
    path = firm(tmp_path, FIRM.format(symbols="MSFT", timeframe="1d"))
    window = ["--start", "2024-02-05", "--end", "2024-02-07", "--model", "openai/fake"]
    with FakeOpenAIServer() as srv:
        code, out, err = cli("run", path, *window, "--api-base", srv.base_url, "--estimate")
        assert code == 0, err
        assert srv.requests == []  # an estimate calls nothing
        estimated = number(row(out, "whole window")[0])
        per_prompt = number(row(out, "per decision")[1])
        code, out, err = cli("run", path, *window, "--api-base", srv.base_url, "--cache", "off",
                             "--db", tmp_path / "log.duckdb")
        assert code == 0, err
        assert len(srv.requests) == estimated == 3 * PER_DECISION
    # the summary: the estimate beside what the server billed
    est, act = row(out, "estimated (3 decisions)"), row(out, "actual")
    assert est[0] == act[0] == f"{int(estimated)}"
    assert number(est[1]) == 3 * per_prompt
    assert number(act[1]) > 0 and number(act[2]) > 0


def test_a_priced_model_costs_dollars_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    path = firm(tmp_path, FIRM.format(symbols="AAPL", timeframe="1d"))
    code, out, err = cli("run", path, "--estimate", "--model", "gpt-4o-mini")
    assert code == 0, err
    cost = number(row(out, "per decision")[3])
    prompt, completion = (number(c) for c in row(out, "per decision")[1:3])
    # gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion tokens
    assert cost == pytest.approx((0.15 * prompt + 0.60 * completion) / 1e6, abs=1e-4)
    assert number(row(out, "at most (re-asks")[3]) > cost > 0
    code, out, err = cli("run", path, "--estimate", "--model", "openai/my-own-model")
    assert code == 0, err
    assert number(row(out, "per decision")[3]) == 0
    assert "litellm has no price for openai/my-own-model: counted as $0" in out
    for free in ("offline", "local/smollm2"):
        code, out, err = cli("run", path, "--estimate", "--model", free)
        assert code == 0, err
        assert number(row(out, "per decision")[3]) == 0 and "no price" not in out


@pytest.mark.parametrize("flags,message", [
    (["--live"], "--estimate calls no model and trades nothing: drop --live"),
    (["--start", "2024-03-01"], "--start and --end go together"),
    (["--start", "2024-03-09", "--end", "2024-03-01"], "is after --end"),
    (["--symbol", "NOPE"], "no 1d bars for NOPE"),
    (["--date", "2024-13-01"], "bad --date"),
    (["--seeds", "0"], "--seeds 0: expected at least 1"),
    (["--start", "1990-01-01", "--end", "1990-01-31"], "no bars for AAPL"),
])
def test_hostile_flags_are_one_clear_line(tmp_path: Path, flags: list[str],
                                          message: str) -> None:
    path = firm(tmp_path, FIRM.format(symbols="AAPL", timeframe="1d"))
    code, out, err = cli("run", path, "--estimate", *flags)
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_seeds_multiply_the_window(tmp_path: Path) -> None:
    path = firm(tmp_path, FIRM.format(symbols="AAPL", timeframe="1d"))
    window = ["--start", "2024-03-04", "--end", "2024-03-08", "--estimate"]
    _, one, _ = cli("run", path, *window)
    _, three, _ = cli("run", path, *window, "--seeds", "3")
    assert number(row(three, "whole window")[0]) == 3 * number(row(one, "whole window")[0]) == 3 * 35
