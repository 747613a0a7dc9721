"""Data problems are named, never silent and never an internal error: real sample files, damaged
the ways files get damaged, either load to the same bars or fail at load with file:line; gaps,
split-like jumps and a window cut to the data come back as warnings a run shows."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from flowkit.errors import DataError
from flowkit.market import MarketData, load_market
from flowkit.spec.models import MarketSpec
from runtime_support import cli, firm, rows
from sample_data import OHLCV


def copy(tmp_path: Path, symbol: str, name: str | None = None) -> Path:
    (tmp_path / "ohlcv").mkdir(exist_ok=True)
    return Path(shutil.copy(OHLCV / f"{symbol}.csv", tmp_path / "ohlcv" / (name or f"{symbol}.csv")))


def load(tmp_path: Path, symbol: str, timeframe: str = "1d") -> MarketData:
    return load_market(MarketSpec(symbols=[symbol], source="csv", path=str(tmp_path),
                                  timeframe=timeframe))


def same_bars(a: MarketData, b: MarketData, symbol: str) -> None:
    x, y = a.bars(symbol), b.bars(symbol)
    for name in ("time", "close_time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(x, name), getattr(y, name)), name


def edit_lines(path: Path, edit) -> None:
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(edit(lines)))


@pytest.mark.parametrize("symbol,file,timeframe", [
    ("MSFT", "MSFT.csv", "1d"), ("ETH-USDT", "ETH-USDT.csv", "1d"),
    ("BTC-USDT", "BTC-USDT_1h.csv", "1h")])
@pytest.mark.parametrize("damage", ["trailing blank lines", "blank line mid-file",
                                    "windows line endings", "trailing comma"])
def test_harmless_damage_loads_the_same_bars(tmp_path, symbol, file, timeframe, damage) -> None:
    clean = load_market(MarketSpec(symbols=[symbol], timeframe=timeframe))
    path = copy(tmp_path, symbol if timeframe == "1d" else file.removesuffix(".csv"), file)
    text = path.read_text()
    if damage == "trailing blank lines":
        path.write_text(text.rstrip("\n") + "\n\n  \n\n")
    elif damage == "blank line mid-file":
        lines = text.splitlines()
        path.write_text("\n".join(lines[:100] + [""] + lines[100:300] + ["", "  "] + lines[300:]))
    elif damage == "windows line endings":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    else:
        path.write_text("\n".join(line + "," for line in text.splitlines()) + "\n")
    same_bars(clean, load(tmp_path, symbol, timeframe), symbol)


def line_of(path: Path, prefix: str) -> int:
    return next(k for k, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                if line.startswith(prefix))


@pytest.mark.parametrize("symbol,day", [("GOOGL", "2009-06-15"), ("NVDA", "2021-03-02"),
                                        ("BTC-USDT", "2023-07-14")])
@pytest.mark.parametrize("damage,message", [
    ("short row", "field(s) where the header has 6"),
    ("non-utf8", "not UTF-8"),
    ("high below low", "inconsistent bar"),
    ("close above high", "inconsistent bar"),
    ("open below low", "inconsistent bar"),
    ("bad number", "unreadable close"),
    ("bad date", "unreadable date"),
])
def test_bad_rows_fail_at_load_with_file_and_line(tmp_path, symbol, day, damage, message) -> None:
    """Anywhere in the file, inside any backtest window or years outside it."""
    path = copy(tmp_path, symbol)
    n = line_of(path, day)

    def edit(lines: list[bytes]) -> list[bytes]:
        d, o, h, lo, c, v = lines[n - 1].decode().split(",")
        lines[n - 1] = {
            "short row": f"{d},{o},{h}",
            "non-utf8": f"{d},{o},{h},{lo},{c},{v}",
            "high below low": f"{d},{o},{lo},{h},{c},{v}",
            "close above high": f"{d},{o},{h},{lo},{float(h) * 1.01},{v}",
            "open below low": f"{d},{float(lo) * 0.99},{h},{lo},{c},{v}",
            "bad number": f"{d},{o},{h},{lo},1.2.3,{v}",
            "bad date": f"{d[:8]}x,{o},{h},{lo},{c},{v}",
        }[damage].encode() + (b" \xff\xfe" if damage == "non-utf8" else b"")
        return lines

    edit_lines(path, edit)
    with pytest.raises(DataError, match=re.escape(f"{path}:{n}") + ".*" + re.escape(message)):
        load(tmp_path, symbol)


@pytest.mark.parametrize("symbol", ["AAPL", "ETH-USDT"])
def test_truncated_last_line_is_named(tmp_path, symbol) -> None:
    path = copy(tmp_path, symbol)
    text = path.read_text().rstrip("\n")
    last = len(text.splitlines())
    path.write_text(text[:text.rindex(",") - 3])  # the write stopped inside the last row
    with pytest.raises(DataError, match=re.escape(f"{path}:{last}: ") + ".*truncated"):
        load(tmp_path, symbol)


def test_news_file_problems_are_named(tmp_path) -> None:
    copy(tmp_path, "AAPL")
    news = tmp_path / "news" / "AAPL.csv"
    news.parent.mkdir()
    news.write_text("date,headline,source\n2024-01-03,Up,wire\n\n2024-01-04,Down\n")
    with pytest.raises(DataError, match=re.escape(f"{news}:4: 2 field(s)")):
        load(tmp_path, "AAPL")
    # A quoted text spanning lines: line numbers still count the file's lines.
    news.write_text('date,headline,source\n2024-01-03,"Up\non two lines",wire\n2024-01-04,Down\n')
    with pytest.raises(DataError, match=re.escape(f"{news}:4: 2 field(s)")):
        load(tmp_path, "AAPL")
    news.write_bytes(b"date,headline,source\n2024-01-03,Up,wire\n2024-01-04,Caf\xe9,wire\n")
    with pytest.raises(DataError, match=re.escape(f"{news}:3: not UTF-8")):
        load(tmp_path, "AAPL")


def test_the_cli_names_the_file_and_line(tmp_path) -> None:
    path = copy(tmp_path, "AMZN")
    n = line_of(path, "2015-05-04")
    edit_lines(path, lambda lines: lines[:n - 1] + [b"2015-05-04,1,2"] + lines[n:])
    workflow = firm(tmp_path, f"""models: {{default: {{model: offline}}}}
agents: {{trader: {{role: trader}}}}
pipeline: [trader]
market: {{symbols: [AMZN], source: csv, path: {tmp_path}}}
""")
    rc, text = cli("run", str(workflow), "--start", "2024-01-02", "--end", "2024-01-31",
                   "--db", str(tmp_path / "x.duckdb"))
    assert rc != 0 and f"{path}:{n}" in text and "Traceback" not in text
    assert "internal error" not in text


# ---------------------------------------------------------------- warnings


def test_gaps_and_jumps_inside_the_window_are_warned(tmp_path) -> None:
    stock, coin = copy(tmp_path, "MSFT"), copy(tmp_path, "BTC-USDT")
    gone = ("2024-03-05", "2024-03-06", "2024-03-07")  # Tuesday to Thursday
    edit_lines(stock, lambda ls: [x for x in ls if not x.decode().startswith(gone)])
    edit_lines(coin, lambda ls: [x for x in ls if not x.decode().startswith("2024-02-10")])

    def halve(lines: list[bytes]) -> list[bytes]:  # an unadjusted 2-for-1 split from 2024-06-03
        out = []
        for line in lines:
            d, *v = line.decode().split(",")
            scale = 0.5 if d >= "2024-06-03" and d[:1] == "2" else 1.0
            out.append(",".join([d, *[f"{float(x) * scale:.6f}" for x in v[:4]], v[4]]).encode()
                       if scale != 1.0 else line)
        return out

    edit_lines(stock, halve)
    md = load_market(MarketSpec(symbols=["MSFT", "BTC-USDT"], source="csv", path=str(tmp_path)))
    warnings = md.data_warnings(["MSFT", "BTC-USDT"], dt.date(2024, 1, 2), dt.date(2024, 9, 30))
    assert any(w.startswith("MSFT: 1 gap(s)") and "3 weekday(s) before 2024-03-08" in w
               for w in warnings), warnings
    assert any(w.startswith("BTC-USDT: 1 gap(s)") and "1 day(s) before 2024-02-11" in w
               for w in warnings), warnings
    assert any(w.startswith("MSFT: 1 close-to-close move") and "-5" in w and "2024-06-03" in w
               for w in warnings), warnings
    # The same problems outside the window are not this run's concern; clean data has none.
    assert md.data_warnings(["MSFT", "BTC-USDT"], dt.date(2024, 7, 1), dt.date(2024, 9, 30)) == []
    clean = load_market(MarketSpec(symbols=["AAPL", "NVDA", "ETH-USDT"]))
    assert clean.data_warnings(["AAPL", "NVDA", "ETH-USDT"], dt.date(2022, 1, 3),
                               dt.date(2024, 12, 31)) == []


def test_window_cut_to_the_data_is_warned_in_the_run_log_and_report(tmp_path) -> None:
    """SPY's data ends a day before AAPL's: inside the run, unlike AAPL's own end."""
    workflow = firm(tmp_path, """models: {default: {model: offline}}
agents: {technical: {role: technical_analyst}, trader: {role: trader}}
pipeline: [technical, trader]
market: {symbols: [AAPL, SPY]}
""")
    db = tmp_path / "x.duckdb"
    rc, text = cli("run", str(workflow), "--start", "2025-08-01", "--end", "2025-12-31",
                   "--db", str(db))
    assert rc == 0, text
    header = text[:text.index("\nmetric")]
    assert "warning: SPY: the data ends on 2025-10-07, inside the run (to 2025-10-08)" in header
    assert "warning: AAPL: the data ends on 2025-10-08, before the window ends (2025-12-31): " \
           "the window is cut to the data" in header
    (stored,), = rows(db, "SELECT metrics->>'$.warnings' FROM metrics WHERE strategy = 'firm'")
    assert "SPY: the data ends on 2025-10-07" in stored
    from flowkit.report import write_report

    (run_id,), = rows(db, "SELECT run_id FROM runs")
    html = write_report(db, run_id, tmp_path / "r.html").read_text()
    assert "SPY: the data ends on 2025-10-07" in html


def test_a_real_gap_in_the_hourly_sample_is_named() -> None:
    """The exchange's own outage in the shipped BTC-USDT hourly bars, found, dated and counted."""
    md = load_market(MarketSpec(symbols=["BTC-USDT"], timeframe="1h"))
    assert md.data_warnings(["BTC-USDT"], dt.date(2023, 3, 1), dt.date(2023, 3, 31)) == [
        "BTC-USDT: 1 gap(s) in the data inside the window (1 hour(s) before 2023-03-24T14:00:00Z)"]
    assert md.data_warnings(["BTC-USDT"], dt.date(2023, 4, 1), dt.date(2023, 4, 30)) == []
