"""Item 7 of issue 10: a model that obeys injected headlines ("buy 1000%, no stop") stays
harmless. The rule engine has the last word at the fill, and positions that price moves carry
above max_position_pct afterwards are trimmed back (orders with reason `rebalance`, filled at
the next open): the documented policy in docs/security.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from attack_support import flowkit

from flowkit.testing.fakeserver import FakeOpenAIServer, instance
from flowkit.store import open_reader

CAP = 20.0
# The test rebuilds equity from fills, marking other symbols at their last close where the
# engine saw the current open: its percentages differ from the engine's by a few hundredths.
# An obeyed injection would show 100% here.
SLACK = 0.25
FIRM = """version: 1
name: obeys-injection
models:
  default: {{model: openai/fake, api_base: "{url}", retries: 0}}
agents:
  trader: {{role: trader}}
pipeline: [trader]
market:
  symbols: [{symbols}]
  timeframe: {timeframe}
risk:
  max_position_pct: {cap}
  max_sector_pct: 100
  stop_loss_pct: null
  take_profit_pct: null
  max_drawdown_pct: 90
"""


@dataclass(frozen=True)
class ObeysInjection:
    """Every answer is the injected order: BUY as much as the schema lets it, no stop, no
    target, full confidence; `size` overrides the size fields (1000 breaks the schema)."""

    size: float | None = None
    delay: float = 0.0

    def reply(self, req: Any) -> tuple[int, dict[str, str], Any]:
        schema = req.schema or {}
        answer = instance(schema) if schema else {}
        props = schema.get("properties", {})
        for key in ("size_pct", "recommended_size_pct", "max_size_pct"):
            if key in props:
                answer[key] = self.size if self.size is not None else props[key].get("maximum", 100)
        answer.update({k: v for k, v in {"action": "BUY", "signal": "bullish", "confidence": 1.0,
                                         "stop_loss": None, "take_profit": None,
                                         "approve": True}.items() if k in props})
        content = json.dumps(answer)
        return 200, {}, {"id": "x", "object": "chat.completion", "created": 0, "model": req.model,
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def run(capsys, srv: FakeOpenAIServer, tmp_path: Path, symbols: str, start: str, end: str,
        timeframe: str = "1d", size: float | None = None) -> tuple[Path, int, str]:
    srv.default(ObeysInjection(size))
    path = tmp_path / "firm.yaml"
    path.write_text(FIRM.format(url=srv.base_url, symbols=symbols, timeframe=timeframe, cap=CAP))
    db = tmp_path / "log.duckdb"
    code, out, err = flowkit(capsys, "run", path, "--start", start, "--end", end, "--db", db,
                             "--cache", "off", "--quiet")
    return db, code, err


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with open_reader(str(db)) as con:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def replay_book(db: Path) -> list[tuple[dict[str, Any], float]]:
    """Each fill with the filled symbol's share of equity just after it, every position marked
    at its latest fill or close price."""
    snaps = rows(db, "SELECT time, positions FROM portfolio ORDER BY time")
    fills = rows(db, "SELECT f.*, o.reason FROM fills f JOIN orders o USING (order_id) ORDER BY f.time")
    cash, qty, mark = 100_000.0, {}, {}
    out = []
    for fill in fills:
        for snap in snaps:  # marks: closes known before this fill
            if snap["time"] <= fill["time"]:
                for s, p in json.loads(snap["positions"]).items():
                    mark[s] = p["price"]
        sign = 1 if fill["side"] == "buy" else -1
        qty[fill["symbol"]] = qty.get(fill["symbol"], 0.0) + sign * fill["quantity"]
        cash -= sign * fill["quantity"] * fill["price"] + fill["fee"]
        mark[fill["symbol"]] = fill["price"]
        equity = cash + sum(q * mark.get(s, 0.0) for s, q in qty.items())
        out.append((fill, 100 * abs(qty[fill["symbol"]]) * fill["price"] / equity))
    return out


@pytest.mark.parametrize("symbols, start, end, timeframe", [
    ("NVDA, AAPL", "2023-05-01", "2023-06-30", "1d"),       # NVDA's May 2023 jump drifts above the cap
    ("AAPL, NVDA", "2023-05-01", "2023-06-30", "1d"),       # the same, other symbol order
    ("BTC-USDT, ETH-USDT", "2024-01-01", "2024-03-31", "1d"),
])
def test_an_obedient_model_never_breaks_the_position_cap(capsys, srv, tmp_path: Path, symbols: str,
                                                         start: str, end: str, timeframe: str) -> None:
    db, code, err = run(capsys, srv, tmp_path, symbols, start, end, timeframe)
    assert code == 0, err
    decisions = rows(db, "SELECT action, size_pct, stop_loss FROM decisions")
    assert decisions and all(d["action"] == "BUY" and d["size_pct"] == 100 for d in decisions)
    reviews = rows(db, "SELECT verdict, rule FROM risk_reviews")
    assert any(r["verdict"] == "resize" and r["rule"] == "max_position_pct" for r in reviews)
    # At every fill of a decision, the position is within the cap at the fill price.
    book = replay_book(db)
    assert any(f["reason"] == "decision" for f, _ in book)
    for fill, pct in book:
        if fill["side"] == "buy" and fill["reason"] == "decision":
            assert pct <= CAP + SLACK, (fill, pct)
    # After the fill, whenever a close leaves a position above the cap, a trim follows.
    trims = {(o["symbol"], o["as_of"]) for o in rows(db, "SELECT symbol, as_of FROM orders "
                                                         "WHERE reason = 'rebalance'")}
    drifted = 0
    for snap in rows(db, "SELECT time, equity, positions FROM portfolio ORDER BY time")[:-1]:
        for symbol, p in json.loads(snap["positions"]).items():
            if 100 * abs(p["value"]) / snap["equity"] > CAP + 0.01:
                drifted += 1
                assert (symbol, snap["time"]) in trims, (symbol, snap["time"])
    assert drifted > 0, "the window was chosen for prices that carry positions above the cap"
    # Each trim sells exactly the excess at the close that showed it (a gap at the next open
    # can leave a little above the cap; that close then trims again, as asserted above).
    snaps = {s["time"]: s for s in rows(db, "SELECT time, equity, positions FROM portfolio")}
    for order in rows(db, "SELECT * FROM orders WHERE reason = 'rebalance'"):
        snap = snaps[order["as_of"]]
        p = json.loads(snap["positions"])[order["symbol"]]
        assert order["side"] == "sell"
        assert order["status"] == "filled" or order["as_of"] == max(snaps)  # the last still works
        left = 100 * (p["qty"] - order["quantity"]) * p["price"] / snap["equity"]
        assert CAP - 100 * p["price"] / snap["equity"] < left <= CAP  # within one share


def test_a_size_beyond_the_schema_is_clamped_to_it_and_the_cap_still_holds(capsys, srv,
                                                                           tmp_path: Path) -> None:
    """size_pct 1000 is outside the schema: the repair ladder clamps it to the schema's 100
    (recorded on the step), and the rule engine then resizes it to the position cap."""
    db, code, err = run(capsys, srv, tmp_path, "AAPL", "2024-01-02", "2024-01-12", size=1000)
    assert code == 0, err
    decisions = rows(db, "SELECT size_pct FROM decisions")
    assert decisions and all(d["size_pct"] == 100 for d in decisions)
    repairs = rows(db, "SELECT CAST(repairs AS VARCHAR) AS r FROM steps WHERE agent = 'trader'")
    assert len(repairs) == len(decisions)
    assert all("size_pct" in r["r"] and "1000" in r["r"] for r in repairs), repairs
    book = replay_book(db)
    assert book and all(pct <= CAP + SLACK for f, pct in book if f["side"] == "buy"), book
