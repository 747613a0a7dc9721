"""flowkit's on-disk cache (flowkit/_cache.py): compiled prompt templates, parsed market data
and the empty event log. It may only save time: whatever is in it (nothing, a corrupt,
truncated or foreign entry, an unwritable or shared folder) a run gets the same result as
without it, and a changed source file is never served stale."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from flowkit import _cache
from flowkit.errors import FlowkitError
from flowkit.market import sources
from flowkit.market.sources import SAMPLE_DIR, RawSymbol, read_folder
from flowkit.spec import templates
from flowkit.spec.models import TemplateLimits
from flowkit.store import EventLog, open_reader
from flowkit.store._db import create_log

# stocks and crypto, daily and hourly; with and without news and earnings files
SERIES = [("AAPL", "1d"), ("SPY", "1d"), ("BTC-USDT", "1d"), ("ETH-USDT", "1h"), ("BTC-USDT", "1h")]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(_cache.ENV, str(folder))
    return folder


def _entries(cache: Path, kind: str) -> list[Path]:
    return sorted((cache / kind).glob("[0-9a-f]*"))


def _parsed(monkeypatch: pytest.MonkeyPatch, folder: Path, symbol: str, timeframe: str) -> RawSymbol:
    with monkeypatch.context() as m:
        m.setenv(_cache.ENV, "off")
        return read_folder(folder, symbol, timeframe)


def assert_same(got: RawSymbol, want: RawSymbol) -> None:
    assert got.origin == want.origin
    for name in ("label", "ohlcv", "lines"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), name  # bit for bit (NaN included)
    for name in ("news", "earnings"):  # same records, same key order (prompts show them)
        assert [list(r.items()) for r in getattr(got, name)] == \
            [list(r.items()) for r in getattr(want, name)]


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("parsed the CSV although the cache holds it")

    monkeypatch.setattr(sources, "read_ohlcv", refuse)
    monkeypatch.setattr(sources, "_read", refuse)


@pytest.mark.parametrize(("symbol", "timeframe"), SERIES)
def test_cached_bars_equal_the_parsed_csv(cache, monkeypatch, symbol, timeframe):
    want = _parsed(monkeypatch, SAMPLE_DIR, symbol, timeframe)
    assert_same(read_folder(SAMPLE_DIR, symbol, timeframe), want)  # parses and fills the cache
    assert len(_entries(cache, "market")) == 1
    _no_parsing(monkeypatch)
    assert_same(read_folder(SAMPLE_DIR, symbol, timeframe), want)  # served by the cache


def test_a_changed_csv_is_parsed_again(cache, monkeypatch, tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(SAMPLE_DIR, folder)
    before = read_folder(folder, "MSFT", "1d")
    path = folder / "ohlcv" / "MSFT.csv"
    lines = path.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    close = first[4]  # date,open,high,low,close,volume: same length, another value
    first[4] = close[:-1] + ("1" if close[-1] != "1" else "2")
    lines[1] = ",".join(first)
    stat = path.stat()
    path.write_text("".join(lines))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its old mtime and size
    assert path.stat().st_size == stat.st_size
    after = read_folder(folder, "MSFT", "1d")
    assert after.ohlcv[0, 3] != before.ohlcv[0, 3]
    assert_same(after, _parsed(monkeypatch, folder, "MSFT", "1d"))
    news = folder / "news" / "MSFT.csv"
    news.write_text(news.read_text().replace("Microsoft", "Microsoft Corp.", 1))
    assert_same(read_folder(folder, "MSFT", "1d"), _parsed(monkeypatch, folder, "MSFT", "1d"))
    (folder / "fundamentals" / "MSFT_earnings.csv").unlink()
    assert read_folder(folder, "MSFT", "1d").earnings == []


def _spoil(entries: list[Path], how: str) -> None:
    for entry in entries:
        data = entry.read_bytes()
        if how == "corrupt":
            entry.write_bytes(data[:-100] + bytes(b ^ 0x5A for b in data[-100:]))
        elif how == "truncated":
            entry.write_bytes(data[:len(data) // 2])
        elif how == "empty":
            entry.write_bytes(b"")
        elif how == "foreign":  # a well-formed entry holding something else (another version)
            kind, name = entry.parent.name, entry.name
            entry.unlink()
            _cache.write(kind, name, b'{"n": 3, "news": []}\nnot what this version wrote')


@pytest.mark.parametrize("how", ["corrupt", "truncated", "empty", "foreign"])
def test_a_spoiled_market_entry_is_parsed_again(cache, monkeypatch, how):
    want = _parsed(monkeypatch, SAMPLE_DIR, "AAPL", "1d")
    read_folder(SAMPLE_DIR, "AAPL", "1d")
    _spoil(_entries(cache, "market"), how)
    assert_same(read_folder(SAMPLE_DIR, "AAPL", "1d"), want)
    _no_parsing(monkeypatch)  # ... and the cache was repaired
    assert_same(read_folder(SAMPLE_DIR, "AAPL", "1d"), want)


def test_an_unusable_cache_folder_is_ignored(tmp_path, monkeypatch):
    want = _parsed(monkeypatch, SAMPLE_DIR, "BTC-USDT", "1h")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "market").mkdir(mode=0o777)
    os.chmod(shared / "market", 0o777)  # other users could plant entries: never used
    for folder in (not_a_folder, not_a_folder / "sub", shared):
        monkeypatch.setenv(_cache.ENV, str(folder))
        assert_same(read_folder(SAMPLE_DIR, "BTC-USDT", "1h"), want)
        assert_same(read_folder(SAMPLE_DIR, "BTC-USDT", "1h"), want)
    assert list((shared / "market").iterdir()) == []


def test_xdg_cache_home_and_off(tmp_path, monkeypatch):
    monkeypatch.delenv(_cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "flowkit"
    monkeypatch.setenv(_cache.ENV, "off")
    assert _cache.cache_dir() is None
    read_folder(SAMPLE_DIR, "AAPL", "1d")
    assert not (tmp_path / "xdg").exists()


# ---- compiled templates ----------------------------------------------------------------

TEMPLATE = """{% for a in analysts %}{{ loop.index }}. {{ a.name | upper }}: {{ a.score | num(1) }}
{% endfor %}{{ headline | fence }} {{ data | tojson }}"""
VARIABLES = {"analysts": [{"name": "bull", "score": 1.25}, {"name": "bear", "score": None}],
             "headline": "<b>x</b>\nnew line", "data": {"k": [1, 2]}}


def _fresh_compile(source: str) -> object:
    templates._compile_source.cache_clear()  # this process's memo: go to the disk cache
    return templates._compile_source(source, "test")


def _no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("compiled although the cache holds the code")

    monkeypatch.setattr(templates.environment(), "compile", refuse)


def test_a_cached_template_renders_the_same(cache, monkeypatch):
    want = templates.render(_fresh_compile(TEMPLATE), VARIABLES, "a")
    assert len(_entries(cache, "templates")) == 1
    _no_compiling(monkeypatch)
    assert templates.render(_fresh_compile(TEMPLATE), VARIABLES, "a") == want


@pytest.mark.parametrize("how", ["corrupt", "truncated", "empty", "foreign"])
def test_a_spoiled_template_entry_is_compiled_again(cache, how):
    want = templates.render(_fresh_compile(TEMPLATE), VARIABLES, "a")
    _spoil(_entries(cache, "templates"), how)
    assert templates.render(_fresh_compile(TEMPLATE), VARIABLES, "a") == want


def test_a_cached_template_is_as_bounded_as_a_compiled_one(cache, monkeypatch):
    loop = "{% for i in range(2000) %}x{% endfor %}"
    attribute = "{{ ''.__class__.__mro__ }}"
    for source in (loop, attribute):
        _fresh_compile(source)
    _no_compiling(monkeypatch)
    templates.use_limits(TemplateLimits(iterations=1000))
    try:
        with pytest.raises(FlowkitError, match="more than 1,000 iterations"):
            templates.render(_fresh_compile(loop), {}, "a")
    finally:
        templates.use_limits(TemplateLimits())
    with pytest.raises(FlowkitError, match="unsafe|not safely"):
        templates.render(_fresh_compile(attribute), {}, "a")


def test_a_template_error_is_still_located(cache):
    for _ in range(2):
        with pytest.raises(FlowkitError, match="template test: .*(unknown tag|endfor)"):
            _fresh_compile("{% for x in y %}")


# ---- the empty event log -----------------------------------------------------------------

def _tables(path: Path) -> list[tuple[str, str, str]]:
    with EventLog(path) as log:
        return sorted(log.query("SELECT table_name, column_name, data_type FROM "
                                "information_schema.columns WHERE table_schema = 'main'"))


@pytest.mark.parametrize("how", [None, "corrupt", "truncated", "foreign"])
def test_a_new_log_has_every_table_whatever_the_cache_holds(cache, monkeypatch, tmp_path, how):
    with monkeypatch.context() as m:
        m.setenv(_cache.ENV, "off")
        want = _tables(tmp_path / "uncached.duckdb")
    assert _tables(tmp_path / "first.duckdb") == want
    _spoil(_entries(cache, "eventlog"), how)
    assert _tables(tmp_path / "second.duckdb") == want
    assert sorted(p.name for p in tmp_path.glob("*.duckdb*")) == \
        ["first.duckdb", "second.duckdb", "uncached.duckdb"]  # nothing left aside


@pytest.mark.parametrize("cached", [False, True])
def test_logs_created_at_once_share_one_complete_file(cache, tmp_path, cached):
    """Several processes creating one new log at the same moment (here: threads, each making
    the file as an EventLog does): one file, every table, nothing left aside."""
    want = _tables(tmp_path / "reference.duckdb")
    if not cached:
        shutil.rmtree(cache / "eventlog")
    path = tmp_path / "shared.duckdb"
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            create_log(str(path))
            with open_reader(path) as con:  # complete once its maker returns
                assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert _tables(path) == want
    assert sorted(p.name for p in tmp_path.glob("*.duckdb*")) == ["reference.duckdb", "shared.duckdb"]
