"""`flowkit compare` on firms that differ in symbols, decision frequency and starting capital:
the terminal shows one side-by-side table and says plainly what differs; the report's equity
chart is normalised to 1.0 so unequal capital shares one axis."""

from __future__ import annotations

import re

from runtime_support import ANALYST_TRADER, cli, firm, rows

BODY = ANALYST_TRADER.replace("{", "{{").replace("}", "}}") + """\
market: {{symbols: [{symbols}]}}
portfolio: {{initial_cash: {cash}, fractional: true}}
backtest: {{start: 2024-01-02, end: 2024-03-28, every: {every}}}
"""


def test_compare_says_what_differs_and_normalises_equity(tmp_path):
    stocks = firm(tmp_path, BODY.format(symbols="AMZN, GOOGL", cash=250000, every="1d"),
                  "stocks.yaml")
    coins = firm(tmp_path, BODY.format(symbols="BTC-USDT", cash=10000, every="1w"), "coins.yaml")
    db, out = tmp_path / "log.duckdb", tmp_path / "cmp.html"
    rc, text = cli("compare", str(stocks), str(coins), "--start", "2024-01-02", "--end",
                   "2024-03-28", "--db", str(db), "--out", str(out))
    assert rc == 0, text
    (a,), (b,) = rows(db, "SELECT run_id FROM runs ORDER BY started_at")
    # One table, a column per run, the firms' final equity side by side.
    header = next(ln for ln in text.splitlines() if ln.startswith("metric"))
    assert header.split() == ["metric", a, b]
    final = next(ln for ln in text.splitlines() if ln.startswith("final equity"))
    assert len(final.split()) == 4
    notes = [ln for ln in text.splitlines() if ln.startswith("note: The runs differ in")]
    assert f"note: The runs differ in symbols: {a} AMZN, GOOGL; {b} BTC-USDT" in notes
    assert f"note: The runs differ in decision frequency: {a} 1d; {b} 1w" in notes
    assert f"note: The runs differ in starting capital: {a} 250,000.00 USD; {b} 10,000.00 USD" \
        in notes
    assert not any("bar size" in n or "costs" in n for n in notes)  # those they share
    html = out.read_text()
    for note in notes:  # the report says the same
        assert note.removeprefix("note: ") in html
    # The equity chart is growth of 1: its axis reads around 1, not in money.
    equity = html[html.index('id="equity"'):html.index('id="drawdown"')]
    assert "normalised to 1.0" in equity
    labels = re.findall(r'text-anchor="end"[^>]*>([\d.,]+)<', equity)
    ticks = [float(t.replace(",", "")) for t in labels]
    assert ticks and all(0.3 < t < 3 for t in ticks)


def test_compare_of_like_runs_notes_nothing(tmp_path):
    one = firm(tmp_path, BODY.format(symbols="MSFT", cash=100000, every="1d"), "one.yaml")
    two = firm(tmp_path, BODY.format(symbols="MSFT", cash=100000, every="1d"), "two.yaml")
    rc, text = cli("compare", str(one), str(two), "--start", "2024-02-01", "--end", "2024-02-29",
                   "--db", str(tmp_path / "log.duckdb"), "--out", str(tmp_path / "cmp.html"))
    assert rc == 0, text
    assert "differ" not in text
