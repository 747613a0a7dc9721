"""The shipped firms end to end on the shipped data: `flowkit run workflows/<firm>.yaml --start
2024-01-02 --end 2024-03-28` decides, sizes, passes the rule engine, paper-fills, logs every
table, respects the hard limits at every fill, is reproducible run to run, and prints its
metrics next to the baselines."""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
import re
from pathlib import Path

import pytest

from flowkit.spec.loader import load_workflow
from flowkit.store import open_reader
from runtime_support import cli, rows

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "flowkit" / "market" / "sample" / "ohlcv"
START, END = "2024-01-02", "2024-03-28"
FIRMS = ["tradingagents", "fincon"]


def dicts(db: Path, sql: str, *params: object) -> list[dict]:
    with open_reader(db) as con:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


# ---------------------------------------------------------------- what the checks share


def fills_in_execution_order(db: Path, run_id: str) -> list[dict]:
    """Fills in the order the broker executed them: by time; at one instant the market orders
    filled at the bars' open come before the stops and take-profits the bars' range triggers,
    and among market orders reductions come before additions, each in symbol-name order."""
    fills = dicts(db, "SELECT f.*, o.reason FROM fills f JOIN orders o USING (run_id, order_id) "
                      "WHERE f.run_id = ?", run_id)
    exits = ("stop_loss", "take_profit")
    qty: dict[str, float] = {}
    out: list[dict] = []
    for _, group in itertools.groupby(sorted(fills, key=lambda f: (f["time"], f["reason"] in exits)),
                                      key=lambda f: (f["time"], f["reason"] in exits)):
        def adds(f: dict) -> bool:
            return qty.get(f["symbol"], 0.0) * (1 if f["side"] == "buy" else -1) >= 0
        for f in sorted(group, key=lambda f: (adds(f), f["symbol"])):
            qty[f["symbol"]] = qty.get(f["symbol"], 0.0) + (f["quantity"] if f["side"] == "buy"
                                                            else -f["quantity"])
            out.append(f)
    return out


def daily_bars(symbol: str) -> tuple[list[str], list[float], list[float]]:
    """The shipped daily bars of `symbol`: (ISO dates ascending, opens, closes)."""
    with open(SAMPLE / f"{symbol}.csv") as fh:
        data = [(r["date"][:10], float(r["open"]), float(r["close"])) for r in csv.DictReader(fh)]
    return [d for d, _, _ in data], [o for _, o, _ in data], [c for _, _, c in data]


def check_limits_at_fills(db: Path, run_id: str, workflow: str, *, tol_pp: float = 1e-6) -> int:
    """Rebuild the book fill by fill (cash from the fills alone) and check, after every fill
    that opens or adds to a position, the hard limits at the fill price: position, sector,
    gross exposure and cash floor; and that cash never goes negative nor a position short when
    shorting is off. The traded symbol is valued at its fill price, the others as the broker
    marks them at that instant: at the open of their bar of that day (every symbol is marked at
    its open before any order fills, and stays so until every close of the instant is done),
    else at their previous close. Returns how many adding fills were checked."""
    spec = load_workflow(ROOT / "workflows" / f"{workflow}.yaml").spec
    symbols = list(spec.market.symbols)
    from flowkit.market.data import SECTORS

    sectors = {**SECTORS, **spec.market.sectors}
    bars = {s: daily_bars(s) for s in symbols}

    def mark(other: str, day: str) -> float:
        dates, opens, closes = bars[other]
        i = bisect.bisect_right(dates, day) - 1
        return opens[i] if i >= 0 and dates[i] == day else closes[i]

    risk = spec.risk
    cash = spec.portfolio.initial_cash
    qty: dict[str, float] = {}
    checked = 0
    for f in fills_in_execution_order(db, run_id):
        s, sign = f["symbol"], 1 if f["side"] == "buy" else -1
        before = qty.get(s, 0.0)
        qty[s] = before + sign * f["quantity"]
        cash -= sign * f["quantity"] * f["price"] + f["fee"]
        assert cash >= -1e-6, f"cash went negative ({cash:.2f}) at {f['time']} {s}"
        if not risk.allow_short:
            assert qty[s] >= -1e-9, f"short {s} at {f['time']} while allow_short is false"
        if abs(qty[s]) <= abs(before) + 1e-12:
            continue  # a reduction: always allowed, whatever the limits say
        checked += 1
        day = f["time"].date().isoformat()
        value = {x: q * (f["price"] if x == s else mark(x, day)) for x, q in qty.items() if q}
        equity = cash + sum(value.values())
        pct = lambda v: 100 * v / equity  # noqa: E731
        where = f"{f['time']} {f['side']} {f['quantity']} {s} @ {f['price']:.4f}"
        assert pct(abs(value[s])) <= risk.max_position_pct + tol_pp, \
            f"position {pct(abs(value[s])):.3f}% > {risk.max_position_pct}% after {where}"
        sector = sum(abs(v) for x, v in value.items() if sectors.get(x, x) == sectors.get(s, s))
        assert pct(sector) <= risk.max_sector_pct + tol_pp, \
            f"sector {pct(sector):.3f}% > {risk.max_sector_pct}% after {where}"
        gross = sum(abs(v) for v in value.values())
        assert pct(gross) <= risk.max_gross_exposure_pct + tol_pp, \
            f"gross {pct(gross):.3f}% > {risk.max_gross_exposure_pct}% after {where}"
        if sign > 0:
            assert pct(cash) >= risk.min_cash_pct - tol_pp, \
                f"cash {pct(cash):.3f}% under the {risk.min_cash_pct}% floor after {where}"
    snapshot_cash = [c for (c,) in rows(db, "SELECT cash FROM portfolio WHERE run_id = ?", run_id)]
    assert min(snapshot_cash) >= 0
    final_cash = rows(db, "SELECT cash FROM portfolio WHERE run_id = ? ORDER BY time DESC LIMIT 1",
                      run_id)[0][0]
    assert final_cash == pytest.approx(cash, rel=1e-9, abs=1e-6), "fills do not add up to the cash"
    return checked


def content(db: Path, run_id: str) -> dict[str, list]:
    """A run's results by content: no run ids, order/fill ids (they hash the run id) or wall
    clock times."""
    return {
        "decisions": rows(db, "SELECT symbol, as_of, action, size_pct, confidence, stop_loss, "
                              "take_profit FROM decisions WHERE run_id = ? ORDER BY ALL", run_id),
        "reviews": rows(db, "SELECT symbol, as_of, verdict, rule, requested_qty, approved_qty "
                            "FROM risk_reviews WHERE run_id = ? ORDER BY ALL", run_id),
        "orders": rows(db, "SELECT symbol, as_of, side, quantity, order_type, limit_price, reason, "
                           "status FROM orders WHERE run_id = ? ORDER BY ALL", run_id),
        "fills": rows(db, "SELECT symbol, time, side, quantity, price, fee, slippage FROM fills "
                          "WHERE run_id = ? ORDER BY ALL", run_id),
        "equity": rows(db, "SELECT time, cash, equity FROM portfolio WHERE run_id = ? ORDER BY time",
                       run_id),
    }


# ---------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    """Each shipped firm, run twice over the sample window into two event logs."""
    out: dict[str, list[dict]] = {}
    for firm in FIRMS:
        out[firm] = []
        for attempt in (1, 2):
            db = tmp_path_factory.mktemp(f"{firm}{attempt}") / "log.duckdb"
            rc, text = cli("run", str(ROOT / "workflows" / f"{firm}.yaml"), "--start", START,
                           "--end", END, "--db", str(db))
            assert rc == 0, text
            (run_id,), = rows(db, "SELECT run_id FROM runs")
            out[firm].append({"db": db, "run_id": run_id, "stdout": text})
    return out


@pytest.mark.parametrize("firm", FIRMS)
def test_firm_decides_sizes_passes_risk_and_fills(runs, firm):
    db, run_id = runs[firm][0]["db"], runs[firm][0]["run_id"]
    status, mode = rows(db, "SELECT status, mode FROM runs WHERE run_id = ?", run_id)[0]
    assert (status, mode) == ("completed", "backtest")
    # One decision per trading day in the window, each reviewed by the rule engine.
    days = rows(db, "SELECT count(DISTINCT as_of) FROM decisions WHERE run_id = ?", run_id)[0][0]
    assert days == 61  # NYSE sessions from 2024-01-02 to 2024-03-28
    actions = dict(rows(db, "SELECT action, count(*) FROM decisions WHERE run_id = ? GROUP BY 1", run_id))
    assert actions.get("BUY", 0) > 0 and actions.get("HOLD", 0) > 0, actions
    sized = rows(db, "SELECT count(*) FROM decisions WHERE run_id = ? AND action <> 'HOLD' "
                     "AND size_pct > 0", run_id)[0][0]
    assert sized == actions.get("BUY", 0) + actions.get("SELL", 0)  # every trade has a size
    unreviewed = rows(db, "SELECT count(*) FROM decisions d ANTI JOIN risk_reviews r "
                          "USING (run_id, symbol, as_of) WHERE d.run_id = ?", run_id)[0][0]
    assert unreviewed == 0
    # Every decision order is exactly what the rule engine approved (sign and quantity).
    orders = dicts(db, "SELECT o.side, o.quantity, o.status, r.verdict, r.approved_qty "
                       "FROM orders o LEFT JOIN risk_reviews r USING (run_id, symbol, as_of) "
                       "WHERE o.run_id = ? AND o.reason = 'decision'", run_id)
    assert orders, "no decision reached the broker"
    for o in orders:
        assert o["verdict"] in ("approve", "resize"), o
        assert o["approved_qty"] == pytest.approx(o["quantity"] * (1 if o["side"] == "buy" else -1))
    # Paper fills: whole shares, one fill per filled order, none without an order.
    fills = dicts(db, "SELECT f.*, o.status FROM fills f LEFT JOIN orders o USING (run_id, order_id) "
                      "WHERE f.run_id = ?", run_id)
    assert fills and all(f["status"] == "filled" for f in fills)
    assert all(f["quantity"] == math.floor(f["quantity"]) for f in fills)
    filled = rows(db, "SELECT count(*) FROM orders WHERE run_id = ? AND status = 'filled'", run_id)[0][0]
    assert filled == len(fills) == len({f["order_id"] for f in fills})
    # Fills happen after the decision, at the next session's open (fill: next_open).
    late = rows(db, "SELECT count(*) FROM fills f JOIN orders o USING (run_id, order_id) "
                    "WHERE f.run_id = ? AND o.reason = 'decision' AND f.time <= o.as_of", run_id)[0][0]
    assert late == 0
    # The equity curve: one snapshot per decision time.
    assert rows(db, "SELECT count(*) FROM portfolio WHERE run_id = ?", run_id)[0][0] == 61


@pytest.mark.parametrize("firm", FIRMS)
def test_every_fill_keeps_the_book_within_the_hard_limits(runs, firm):
    run = runs[firm][0]
    checked = check_limits_at_fills(run["db"], run["run_id"], firm)
    assert checked > 0


@pytest.mark.parametrize("firm", FIRMS)
def test_two_runs_give_identical_orders_fills_and_equity(runs, firm):
    (a, b) = runs[firm]
    assert a["run_id"] != b["run_id"]
    first, second = content(a["db"], a["run_id"]), content(b["db"], b["run_id"])
    for table in first:
        assert first[table] == second[table], f"{table} differ between two runs of {firm}"
    assert first["equity"][-1][2] == second["equity"][-1][2]


@pytest.mark.parametrize("firm", FIRMS)
def test_printed_metrics_show_baselines_and_excess_return(runs, firm):
    run = runs[firm][0]
    text, db, run_id = run["stdout"], run["db"], run["run_id"]
    header = next(line for line in text.splitlines() if line.startswith("metric "))
    assert re.split(r"\s{2,}", header.strip()) == ["metric", "firm", "buy and hold",
                                                   "sma crossover", "macd"]
    metrics = {s: json.loads(m) for s, m in rows(
        db, "SELECT strategy, metrics FROM metrics WHERE run_id = ? AND symbol IS NULL", run_id)}
    assert {"firm", "buy_and_hold", "sma_crossover", "macd"} <= set(metrics)
    final = next(line for line in text.splitlines() if line.startswith("final equity"))
    printed = [float(x.replace(",", "")) for x in re.split(r"\s{2,}", final.strip())[1:]]
    expected = [metrics[s]["final_equity"] for s in ("firm", "buy_and_hold", "sma_crossover", "macd")]
    assert printed == pytest.approx(expected, abs=0.006)
    last_equity = rows(db, "SELECT equity FROM portfolio WHERE run_id = ? ORDER BY time DESC LIMIT 1",
                       run_id)[0][0]
    assert printed[0] == pytest.approx(last_equity, abs=0.006)
    excess = float(re.search(r"excess return vs buy-and-hold: ([+-][\d.]+) pp \(percentage points\)",
                             text).group(1))
    want = 100 * (metrics["firm"]["cumulative_return"] - metrics["buy_and_hold"]["cumulative_return"])
    assert excess == pytest.approx(want, abs=0.006)
    assert f"run {run_id} logged" in text
