"""Reports built from a DuckDB file holding a small realistic run on real AAPL/MSFT prices."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from flowkit.backtest.baselines import run_baselines
from flowkit.backtest.metrics import compute_metrics, flag_suspect, round_trips
from flowkit.errors import RunNotFound
from flowkit.report import write_comparison, write_report
from browser_support import CHROMIUM, chromium
from sample_data import OHLCV, Bars

SCHEMA = Path(__file__).resolve().parents[1] / "flowkit" / "store" / "schema.sql"
RUN, RUN2 = "20240329-120000-ab12", "20240329-130000-cd34"
FEE, SLIP = 1e-4, 5e-4
INJECTION = "<script>alert('x')</script> & \"quotes\""
CUTOFF = "model gpt-4o-mini's knowledge cutoff 2024-06-01 is after the backtest start"


def load_bars(symbol: str) -> Bars:
    df = pd.read_csv(OHLCV / f"{symbol}.csv", parse_dates=["date"])
    df = df[(df["date"] >= "2023-09-01") & (df["date"] <= "2024-03-28")]
    day = df["date"].to_numpy().astype("datetime64[s]")
    return Bars(day + np.timedelta64(52200, "s"), day + np.timedelta64(75600, "s"),
                *(df[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")))


def to_json(value: object) -> str:
    """JSON as the event log writes it: NaN becomes null."""
    return json.dumps(json.loads(json.dumps(value), parse_constant=lambda _: None))


def store_metrics(con: duckdb.DuckDBPyConnection, run_id: str, firm: dict, times: np.ndarray,
                  equity: list[float], bars: dict[str, Bars]) -> None:
    """The metrics rows in the layout flowkit.backtest.evaluate writes and reports read."""
    baselines = run_baselines(bars, list(times), initial_cash=100_000.0, fee_bps=1,
                              slippage_bps=5, fill="next_open", fractional=False,
                              periods_per_year=252)
    iso = [str(t) + "Z" for t in times]
    firm = {**firm, "warnings": [*flag_suspect(firm), CUTOFF], "model_calls": 610,
            "equity": [[t, v] for t, v in zip(iso, equity, strict=True)]}
    rows = [("firm", None, firm)] + [(n, None, b.to_json()) for n, b in baselines.items()]
    for symbol, b in bars.items():
        keep = (b.close_time >= times[0]) & (b.close_time <= times[-1])
        rows.append(("prices", symbol, {"close": [
            [f"{t}Z", c] for t, c in zip(b.close_time[keep], b.close[keep], strict=True)]}))
    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                    [(run_id, name, symbol, to_json(m)) for name, symbol, m in rows])


def simulate_firm(con: duckdb.DuckDBPyConnection, run_id: str, bars: dict[str, Bars],
                  times: np.ndarray, *, weight: float, sma: int) -> None:
    """A toy firm logged the way flowkit logs one: long `weight` of equity per symbol while the
    close is above its SMA, next-open fills, risk resizes and rejects, a debate transcript."""
    cash, qty = 100_000.0, dict.fromkeys(bars, 0.0)
    pending: list[tuple] = []
    fills: list[dict] = []
    peak, exposure, equity_curve = 0.0, [], []
    seq = 0
    for k, t in enumerate(times):
        for symbol, b, i, oid, side, q in [p for p in pending]:  # fills at this bar's open
            price = b.open[i] * (1 + SLIP if side == "buy" else 1 - SLIP)
            fee = q * price * FEE
            cash += (-1 if side == "buy" else 1) * q * price - fee
            qty[symbol] += q if side == "buy" else -q
            fill = {"run_id": run_id, "fill_id": f"f-{oid}", "order_id": oid, "symbol": symbol,
                    "time": b.time[i].astype(object), "side": side, "quantity": q,
                    "price": price, "fee": fee, "slippage": q * b.open[i] * SLIP}
            fills.append(fill)
            con.execute("INSERT INTO fills VALUES ($run_id, $fill_id, $order_id, $symbol, $time, "
                        "$side, $quantity, $price, $fee, $slippage)", fill)
            con.execute("UPDATE orders SET status = 'filled' WHERE order_id = ?", [oid])
        pending = []
        idx = {s: int(np.searchsorted(b.close_time, t, side="right")) - 1 for s, b in bars.items()}
        marks = {s: qty[s] * bars[s].close[i] for s, i in idx.items()}
        equity = cash + sum(marks.values())
        peak = max(peak, equity)
        exposure.append(sum(abs(v) for v in marks.values()) / equity)
        equity_curve.append(equity)
        positions = {s: {"qty": qty[s], "price": bars[s].close[i], "value": marks[s]}
                     for s, i in idx.items() if qty[s]}
        as_of = t.astype(object)
        con.execute("INSERT INTO portfolio VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, as_of, cash, equity, exposure[-1], equity / peak - 1,
                     json.dumps(positions)])
        for symbol, b in bars.items():
            i = idx[symbol]
            sma_now = b.close[i - sma + 1:i + 1].mean()
            want = weight if b.close[i] > sma_now else 0.0
            have = marks[symbol] / equity
            action = "BUY" if want > have + 0.05 else "SELL" if want < have - 0.05 else "HOLD"
            confidence = round(min(0.95, 0.5 + abs(b.close[i] / sma_now - 1) * 10), 3)
            reasoning = (f"Close {b.close[i]:.2f} vs SMA{sma} {sma_now:.2f}: "
                         f"{'uptrend' if want else 'downtrend'}."
                         + (f" Headline said {INJECTION}." if k == 3 else ""))
            con.execute("INSERT INTO decisions VALUES (?, ?, ?, 'trader', ?, ?, ?, ?, ?, ?, ?, ?, 'ok')",
                        [run_id, symbol, as_of, action, want * 100, want, confidence,
                         b.close[i], b.close[i] * 0.92, b.close[i] * 1.2, reasoning])
            transcript = [
                ("parallel", None, None, "analysts", None, None),
                ("agent", "technical", "technical_analyst", "analysts/technical", None,
                 {"signal": "bullish" if want else "bearish", "sma": sma_now, "close": b.close[i]}),
                ("agent", "bull", "bull_researcher", "research_debate/r1/bull", 1,
                 {"argument": "Trend intact, momentum positive.", "confidence": confidence}),
                ("agent", "bear", "bear_researcher", "research_debate/r1/bear", 1,
                 {"argument": "Valuation stretched; rates risk.", "confidence": 1 - confidence}),
                ("agent", "judge", "research_manager", "research_debate/judge", None,
                 {"stance": action, "summary": "Bull wins on trend." if want else "Bear wins."}),
                ("agent", "trader", "trader", "trader", None,
                 {"action": action, "size_pct": want * 100, "confidence": confidence}),
            ]
            for pattern, agent, role, step_id, rnd, output in transcript:
                seq += 1
                con.execute(
                    "INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?, "
                    "NULL, NULL)", [run_id, seq, step_id, symbol, as_of, agent, role, pattern, rnd,
                              as_of, as_of, 12.5, json.dumps({"prompt": "..."}),
                              output and json.dumps(output)])
                if agent:
                    con.execute(
                        "INSERT INTO model_calls (run_id, call_id, step_id, symbol, as_of, agent, "
                        "model, attempt, prompt_tokens, completion_tokens, cost_usd, latency_ms, "
                        "cached) VALUES (?, ?, ?, ?, ?, ?, 'offline', 1, 900, 120, 0.0, 3.0, ?)",
                        [run_id, f"c{seq}", step_id, symbol, as_of, agent, seq % 5 == 0])
            if action == "HOLD":
                continue
            target_qty = int(want * equity / b.close[i])
            requested = target_qty - qty[symbol]
            verdict, rule, approved = "approve", None, requested
            if action == "BUY" and confidence < 0.55:
                verdict, rule, approved = "reject", "min_confidence", 0
            elif action == "BUY" and want * 100 > 25:
                verdict, rule = "resize", "max_position_pct"
                approved = int(0.25 * equity / b.close[i]) - qty[symbol]
            con.execute("INSERT INTO risk_reviews VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [run_id, symbol, as_of, verdict, rule, requested, approved,
                         json.dumps({"max_position_pct": 25, "equity": equity})])
            if approved and i + 1 < len(b.time):
                oid = f"{run_id}-{symbol}-{k}"
                side = "buy" if approved > 0 else "sell"
                con.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 'market', NULL, "
                            "'decision', 'submitted', 'paper', ?)",
                            [run_id, oid, symbol, as_of, side, abs(approved), as_of])
                pending.append((symbol, b, i + 1, oid, side, abs(approved)))
    firm = compute_metrics(equity_curve, periods_per_year=252, trades=round_trips(fills),
                           exposure=exposure,
                           turnover_notional=sum(f["quantity"] * f["price"] for f in fills))
    store_metrics(con, run_id, firm, times, equity_curve, bars)


def insert_run(con: duckdb.DuckDBPyConnection, run_id: str, *, workflow: str, weight: float,
               sma: int) -> None:
    bars = {s: load_bars(s) for s in ("AAPL", "MSFT")}
    first = np.datetime64("2024-01-02")
    times = bars["AAPL"].close_time[bars["AAPL"].time >= first]
    config = {"name": workflow, "description": f"{workflow}: a debate firm on two tech stocks",
              "market": {"symbols": list(bars)},
              "backtest": {"start": "2024-01-02", "end": "2024-03-28", "periods_per_year": 252}}
    con.execute("INSERT INTO runs (run_id, workflow_name, workflow_path, workflow_hash, mode, "
                "parent_run_id, status, started_at, finished_at, config, error, flowkit_version) "
                "VALUES (?, ?, ?, 'abc123def4567890', 'backtest', NULL, "
                "'completed', TIMESTAMP '2024-03-29 12:00:00', TIMESTAMP '2024-03-29 12:03:41', "
                "?, NULL, '0.1.0')", [run_id, workflow, f"workflows/{workflow}.yaml",
                                      json.dumps(config)])
    simulate_firm(con, run_id, bars, times, weight=weight, sma=sma)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "flowkit.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(SCHEMA.read_text())
        insert_run(con, RUN, workflow="tradingagents", weight=0.3, sma=10)
        insert_run(con, RUN2, workflow="fincon", weight=0.45, sma=20)
    return path


@pytest.fixture(scope="module")
def report(db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("out")
    html = write_report(db, RUN, out / "report.html", png=out / "equity.png")
    return html, out / "equity.png"


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_report_is_self_contained(report: tuple[Path, Path]) -> None:
    html = report[0].read_text()
    assert re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"] * html.count(
        "<svg ")  # the SVG namespace is a name, not a request
    assert not re.search(r"<script[^>]+src|<link|@import|url\(|<img|<iframe", html)
    assert html.count("<script>") == 1


def test_report_charts(report: tuple[Path, Path], db: Path) -> None:
    html = report[0].read_text()
    series = re.findall(r'<path class="series" data-name="([^"]+)"', html)
    assert series[:4] == ["Firm", "Buy &amp; hold", "SMA crossover", "MACD"]  # equity
    assert series[4:8] == series[:4]  # drawdown
    assert series[8:] == ["AAPL close", "MSFT close"]
    assert html.count('class="area"') == 1
    [(n_fills,)] = query(db, f"SELECT count(*) FROM fills WHERE run_id = '{RUN}'")
    assert n_fills > 5
    assert len(re.findall(r'class="fill-marker (buy|sell)"', html)) == n_fills
    # Each path has a point per snapshot (equity) or per closed bar in the window (prices).
    firm_path = re.search(r'data-name="Firm" d="([^"]+)"', html).group(1)
    [(n_snaps,)] = query(db, f"SELECT count(*) FROM portfolio WHERE run_id = '{RUN}'")
    assert firm_path.count(",") == n_snaps and firm_path.startswith("M") and " M" not in firm_path
    for label in ("Jan 8", "Jan 22", "Feb 5", "Mar 18"):  # every other Monday
        assert f">{label}</text>" in html


def test_report_metrics_and_run_info(report: tuple[Path, Path], db: Path) -> None:
    html = report[0].read_text()
    table = html[html.index('<table class="metrics">'):]
    table = table[:table.index("</table>")]
    head = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert head == ["", "Firm", "Buy &amp; hold", "SMA crossover", "MACD"]
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", table))
    firm, bh = (json.loads(m) for (m,) in query(
        db, f"SELECT metrics FROM metrics WHERE run_id = '{RUN}' AND strategy IN ('firm', "
            "'buy_and_hold') ORDER BY strategy DESC"))
    cells = lambda row: re.findall(r"<td[^>]*>([^<]*)</td>", rows[row])  # noqa: E731
    assert cells("Sharpe ratio")[0] == f"{firm['sharpe']:.2f}"
    assert cells("Total return")[1] == f"{bh['cumulative_return'] * 100:+.2f}%"
    excess = firm["cumulative_return"] - bh["cumulative_return"]
    assert cells("Excess return vs buy &amp; hold (percentage points)")[:2] == [
        f"{excess * 100:+.2f} pp", "—"]
    assert cells("Flags") == [CUTOFF.replace("'", "&#39;"), "—", "—", "—"]
    assert f"⚠ Firm: {CUTOFF}".replace("'", "&#39;") in html
    for label in ("Annual return (CAGR)", "Sortino ratio", "Max drawdown", "Calmar ratio",
                  "Win rate", "Profit factor", "Average gross exposure", "Closed trades"):
        assert len(cells(label)) == 4, label
    [(n_calls, tokens)] = query(db, "SELECT count(*), sum(prompt_tokens + completion_tokens) "
                                    f"FROM model_calls WHERE run_id = '{RUN}'")
    assert f"{n_calls:,} (" in html and f"{tokens:,} (" in html
    assert "tradingagents — run 20240329-120000-ab12" in html
    assert "2024-01-02 → 2024-03-28" in html and "completed" in html


def test_report_drilldown(report: tuple[Path, Path], db: Path) -> None:
    html = report[0].read_text()
    [(n_decisions,)] = query(db, f"SELECT count(*) FROM decisions WHERE run_id = '{RUN}'")
    assert html.count('<tr class="decision"') == n_decisions == html.count('<tr class="detail"')
    assert 0 < html.count('data-action="HOLD"') < n_decisions
    assert INJECTION not in html and "&lt;script&gt;alert(" in html
    # The first resized decision shows its verdict, its rule and its transcript in order.
    [(symbol, as_of)] = query(db, f"SELECT symbol, strftime(as_of, '%Y-%m-%d %H:%M:%S') FROM "
                                  f"risk_reviews WHERE run_id = '{RUN}' AND verdict = 'resize' "
                                  "ORDER BY as_of LIMIT 1")
    row = html.index(f'<td class="mono">{as_of}</td><td>{symbol}</td>')
    detail = html[html.index('<tr class="detail"', row):]
    detail = detail[:detail.index("</tr>")]
    assert 'by rule <b class="mono">max_position_pct</b>' in detail
    agents = re.findall(r'<div class="step ok">\s*<div><b>([^<]+)</b>', detail)
    assert agents == ["technical", "bull", "bear", "judge", "trader"]  # pattern rows left out
    assert "round 1" in detail and "&#34;argument&#34;: &#34;Trend intact" in detail
    assert "filled buy" in detail


def test_png(report: tuple[Path, Path]) -> None:
    data = report[1].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 504)


def test_firm_metrics_computed_when_missing_and_prices_argument(db: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db, copy)
    with duckdb.connect(str(copy)) as con:
        [(stored,)] = con.execute(f"SELECT metrics FROM metrics WHERE run_id = '{RUN}' AND "
                                  "strategy = 'firm'").fetchall()
        con.execute("DELETE FROM metrics WHERE strategy IN ('firm', 'prices')")
        html = write_report(con, RUN, tmp_path / "r.html", prices={
            "AAPL": [("2024-02-01T21:00:00Z", 185.0), ("2024-02-02T21:00:00+00:00", 186.5)]},
        ).read_text()
    stored = json.loads(stored)
    assert "Firm metrics computed by the report" in html
    assert f"<td class=\"num lead\">{stored['sharpe']:.2f}</td>" in html
    assert re.findall(r'data-name="([^"]+) close"', html) == ["AAPL"]


def test_null_metrics_read_as_undefined(report: tuple[Path, Path], db: Path) -> None:
    [(bh,)] = query(db, f"SELECT metrics FROM metrics WHERE run_id = '{RUN}' AND strategy = "
                        "'buy_and_hold'")
    assert '"profit_factor": null' in bh  # buy and hold never closes a trade
    html = report[0].read_text()
    row = re.search(r"<tr><td>Profit factor</td>(.*?)</tr>", html).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row)[1] == "—"


def test_decide_run_with_no_portfolio_or_metrics(tmp_path: Path) -> None:
    """`flowkit run` without a window logs decisions only; the report still renders."""
    with duckdb.connect(str(tmp_path / "decide.duckdb")) as con:
        con.execute(SCHEMA.read_text())
        con.execute("INSERT INTO runs (run_id, workflow_name, mode, status, started_at, config) "
                    "VALUES ('d1', 'tradingagents', 'decide', 'failed', now(), '{}')")
        con.execute("INSERT INTO decisions (run_id, symbol, as_of, agent, action) VALUES "
                    "('d1', 'AAPL', TIMESTAMP '2025-10-08 20:00:00', 'trader', 'HOLD')")
        html = write_report(con, "d1", tmp_path / "d.html").read_text()
    assert html.count("No data recorded.") == 2 and '<tr class="decision"' in html
    assert "No steps recorded for this decision." in html


def test_unknown_run(db: Path, tmp_path: Path) -> None:
    with pytest.raises(RunNotFound, match="no run nope in "):
        write_report(db, "nope", tmp_path / "x.html")


def test_comparison(db: Path, tmp_path: Path) -> None:
    html = write_comparison(db, [RUN, RUN2], tmp_path / "cmp.html").read_text()
    series = re.findall(r'<path class="series" data-name="([^"]+)"', html)
    assert series == [f"tradingagents · {RUN}", f"fincon · {RUN2}"] * 2
    head = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert head == ["", RUN, RUN2]
    assert re.search(r"<tr><td>Workflow</td><td[^>]*>tradingagents</td><td[^>]*>fincon</td>", html)
    sharpe = [f"{json.loads(m)['sharpe']:.2f}" for (m,) in query(
        db, "SELECT metrics FROM metrics WHERE strategy = 'firm' ORDER BY run_id")]
    assert re.search(r"<tr><td>Sharpe ratio</td><td[^>]*>{}</td><td[^>]*>{}</td>".format(*sharpe),
                     html)
    assert '<tr class="decision"' not in html and "<script>" not in html
    with pytest.raises(ValueError):
        write_comparison(db, [], tmp_path / "none.html")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_browser_renders_charts_tables_and_toggles(report: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    # Click "Expand all", then "Hide HOLD", after load: the dumped DOM shows the inline JS works.
    page = tmp_path / "page.html"
    page.write_text(report[0].read_text().replace("</body>", """<script>
        document.querySelector('[data-toggle-all="1"]').click();
        document.getElementById("hide-hold").click();
        </script></body>"""))
    dom = chromium("--dump-dom", page.as_uri(), tmp=tmp_path).stdout
    assert dom.count('<path class="series"') == 10 and 'class="fill-marker buy"' in dom
    assert "<td>Sharpe ratio</td>" in dom
    assert "<td>Excess return vs buy &amp; hold (percentage points)</td>" in dom
    rows = re.findall(r'<tr class="decision open" data-action="(\w+)" aria-expanded="true"'
                      r'( hidden="")?>', dom)
    assert len(rows) == dom.count('<tr class="decision')  # all expanded
    shown = [action for action, hidden in rows if not hidden]
    assert shown and "HOLD" not in shown and len(shown) < len(rows)
    assert dom.count('<tr class="detail">') == len(shown)  # hidden rows keep their detail shut
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars",
             report[0].as_uri(), tmp=tmp_path)
    assert shot.read_bytes()[:4] == b"\x89PNG"
