"""Folder sources (`sample` and `csv`): ohlcv/<SYM>.csv (daily, `date` column) or
ohlcv/<SYM>_1h.csv (hourly, `timestamp` = UTC bar open), optional news/<SYM>.csv and
fundamentals/<SYM>_earnings.csv. Parsed with the csv module and numpy: no pandas import."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from flowkit import _cache
from flowkit.errors import DataError
from flowkit.market.base import DataSource

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
OHLCV = ("open", "high", "low", "close", "volume")


@dataclass
class RawSymbol:
    """A source's data for one symbol, before the clock rules are applied."""

    origin: str          # file or cache the bars came from, for error messages
    label: np.ndarray    # datetime64[s]: the bar's date (daily) or UTC open time (hourly)
    ohlcv: np.ndarray    # (n, 5) float64
    news: list[dict[str, str]] = field(default_factory=list)
    earnings: list[dict[str, str]] = field(default_factory=list)
    lines: np.ndarray | None = None  # the file line of each bar (a CSV source), for messages

    def where(self, k: int) -> str:
        """Where bar `k` comes from: file:line for a file, else the origin and the bar's time."""
        if self.lines is not None:
            return f"{self.origin}:{self.lines[k]} (bar {self.label[k]})"
        return f"{self.origin}: bar {self.label[k]}"


def utc_text(value: str) -> str:
    """An ISO UTC timestamp as numpy parses it (no zone suffix)."""
    return value.strip().replace(" ", "T").removesuffix("Z").removesuffix("+00:00")


def _records(path: Path) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """The header (lower-cased), then the file line and the fields of every record after it,
    each row checked against the header (`_fit`). Blank lines carry nothing and are skipped
    wherever they are; a file that is not UTF-8 is refused at the line of its first bad byte."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save the "
                        "file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: unreadable CSV ({e})") from None
    if text.count("\n") + (not text.endswith("\n")) == len(rows):
        lines = np.arange(1, len(rows) + 1)  # one record a line: the usual case, read at C speed
    else:  # a quoted field spans lines: ask the reader where each record ends
        reader = csv.reader(io.StringIO(text, newline=""))
        lines = np.array([reader.line_num for _ in reader], dtype=np.int64)
    keep = [k for k, r in enumerate(rows) if r and (len(r) > 1 or r[0].strip())]  # [] is blank
    if not keep:
        raise DataError(f"{path}: empty file (no header)")
    header = [h.strip().lower() for h in rows[keep[0]]]
    rows, lines = [rows[k] for k in keep[1:]], lines[keep[1:]]
    if any(len(r) != len(header) for r in rows):
        rows = [_fit(path, header, line, r) for line, r in zip(lines.tolist(), rows, strict=True)]
    return header, lines, rows


def _fit(path: Path, header: list[str], line: int, fields: list[str]) -> list[str]:
    """`fields` checked against the header: a short row (e.g. a truncated last line) is an
    error; extra fields are allowed only when empty (a trailing comma)."""
    if len(fields) < len(header):
        raise DataError(f"{path}:{line}: {len(fields)} field(s) where the header has "
                        f"{len(header)} ({','.join(header)}): a short or truncated row")
    if any(f.strip() for f in fields[len(header):]):
        raise DataError(f"{path}:{line}: {len(fields)} fields where the header has {len(header)}")
    return fields[:len(header)]


def _read(path: Path) -> list[dict[str, str]]:
    header, _, rows = _records(path)
    return [dict(zip(header, row, strict=True)) for row in rows]


def read_ohlcv(path: Path, timeframe: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, (n, 5) OHLCV values, file line of each bar) of an OHLCV CSV file."""
    header, lines, rows = _records(path)
    if not rows:
        raise DataError(f"{path}: no bars")
    time_col = "timestamp" if "timestamp" in header else "date"
    missing = [c for c in (time_col, *OHLCV) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                        f"{'timestamp' if timeframe == '1h' else 'date'},{','.join(OHLCV)}")
    columns = list(zip(*rows, strict=True))
    stamps = columns[header.index(time_col)]
    if timeframe == "1d":
        stamps, unit = tuple(s.strip()[:10] for s in stamps), "datetime64[D]"
    else:
        stamps, unit = tuple(utc_text(s) for s in stamps), "datetime64[s]"
    label = _parse(path, lines, time_col, stamps, unit)
    values = np.column_stack([_parse(path, lines, c, columns[header.index(c)], np.float64)
                              for c in OHLCV])
    return label.astype("datetime64[s]"), values, lines


def _parse(path: Path, lines: np.ndarray, name: str, cells: tuple[str, ...], dtype: Any) -> np.ndarray:
    """One column as `dtype`; if a cell is unreadable, the first such cell with its file:line."""
    try:
        out = np.array(cells, dtype=dtype)
    except ValueError:
        out = None
    if out is None or (out.dtype.kind == "M" and np.isnat(out).any()):
        k = next(k for k, cell in enumerate(cells) if not _readable(cell, dtype))
        raise DataError(f"{path}:{lines[k]}: unreadable {name} {cells[k]!r}")
    return out


def _readable(cell: str, dtype: Any) -> bool:
    try:
        value = np.array([cell], dtype=dtype)
    except ValueError:
        return False
    return not (value.dtype.kind == "M" and np.isnat(value[0]))  # numpy reads "" as NaT


def read_folder(folder: Path, symbol: str, timeframe: str) -> RawSymbol:
    """A symbol's files parsed, or (the same arrays and records) from flowkit's cache when
    none of them changed since they were parsed: see `_cache_entry`."""
    if "/" in symbol or symbol.startswith("."):  # a file name, never a path out of the folder
        raise DataError(f"no {timeframe} bars for {symbol}: a symbol read from files names one "
                        f"in {folder / 'ohlcv'}, so it holds no '/' (BTC-USDT, not BTC/USDT)")
    path = folder / "ohlcv" / (f"{symbol}.csv" if timeframe == "1d" else f"{symbol}_1h.csv")
    if not path.is_file():
        stems = [p.stem for p in (folder / "ohlcv").glob("*.csv")]
        have = sorted(s.removesuffix("_1h") for s in stems if s.endswith("_1h") == (timeframe == "1h"))
        raise DataError(f"no {timeframe} bars for {symbol}: {path} does not exist "
                        f"({timeframe} bars there: {', '.join(have) or 'none'})")
    news, earnings = folder / "news" / f"{symbol}.csv", folder / "fundamentals" / f"{symbol}_earnings.csv"
    entry = _cache_entry(timeframe, path, news, earnings)
    cached = _decode(str(path), _cache.read("market", entry)) if entry else None
    if cached is not None:
        return cached
    label, ohlcv, lines = read_ohlcv(path, timeframe)
    raw = RawSymbol(str(path), label, ohlcv,
                    _read(news) if news.is_file() else [],
                    _read(earnings) if earnings.is_file() else [], lines)
    if entry:
        _cache.write("market", entry, _encode(raw))
    return raw


_FORMAT = "raw-symbol-1"  # bump when RawSymbol or the parsing above changes what it returns


def _cache_entry(timeframe: str, *files: Path) -> str | None:
    """The cache key of these files as they are now (path, size, times and inode: a changed
    file is a new key), or None if one cannot be looked at."""
    parts = [_FORMAT, timeframe, sys.byteorder, np.__version__]
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            parts.append(f"{f}: none")
            continue
        except OSError:
            return None
        parts.append(f"{f.resolve()}: {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}")
    return _cache.key(*parts)


_ARRAYS = (("label", "datetime64[s]", ()), ("ohlcv", np.float64, (5,)), ("lines", np.int64, ()))


def _encode(raw: RawSymbol) -> bytes:
    """The records as JSON (key order kept), a newline, then the arrays' bytes."""
    head = orjson.dumps({"n": len(raw.label), "news": raw.news, "earnings": raw.earnings})
    arrays = [np.ascontiguousarray(getattr(raw, name), dtype=dtype) for name, dtype, _ in _ARRAYS]
    return b"".join([head, b"\n", *(a.tobytes() for a in arrays)])


def _decode(origin: str, data: bytes | None) -> RawSymbol | None:
    """What _encode stored, or None if `data` is not exactly that."""
    if data is None:
        return None
    head, _, body = data.partition(b"\n")
    try:
        meta = orjson.loads(head)
        n = meta["n"]
        sizes = [n * int(np.prod(shape, dtype=np.int64)) for _, _, shape in _ARRAYS]
        if not isinstance(n, int) or n < 1 or len(body) != 8 * sum(sizes):
            return None
        arrays, at = [], 0
        for (_, dtype, shape), size in zip(_ARRAYS, sizes, strict=True):
            arrays.append(np.frombuffer(body, dtype, size, at).reshape(n, *shape).copy())
            at += 8 * size
        return RawSymbol(origin, arrays[0], arrays[1], meta["news"], meta["earnings"], arrays[2])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class SampleSource(DataSource):
    """`sample`: the real data shipped in flowkit/market/sample/."""

    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]:
        return {s: read_folder(SAMPLE_DIR, s, timeframe) for s in symbols}


class CsvSource(DataSource):
    """`csv`: a folder (`market.path`) with the sample's layout."""

    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]:
        if not self.spec.path:
            raise DataError("market.path is required for source: csv (a folder holding ohlcv/, "
                            "and optionally news/ and fundamentals/)")
        folder = Path(self.spec.path).expanduser()
        if not folder.is_absolute():
            folder = (self.base_dir or Path.cwd()) / folder
        if not (folder / "ohlcv").is_dir():
            raise DataError(f"market.path: {folder} has no ohlcv/ folder")
        return {s: read_folder(folder, s, timeframe) for s in symbols}
