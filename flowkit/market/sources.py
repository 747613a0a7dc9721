"""Folder sources (`sample` and `csv`): ohlcv/<SYM>.csv (daily, `date` column) or
ohlcv/<SYM>_1h.csv (hourly, `timestamp` = UTC bar open), optional news/<SYM>.csv and
fundamentals/<SYM>_earnings.csv. Parsed with the csv module and numpy: no pandas import."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def utc_text(value: str) -> str:
    """An ISO UTC timestamp as numpy parses it (no zone suffix)."""
    return value.strip().replace(" ", "T").removesuffix("Z").removesuffix("+00:00")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        return [dict(zip(header, row)) for row in reader]


def read_ohlcv(path: Path, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise DataError(f"{path}: no bars")
    header = [h.strip().lower() for h in rows[0]]
    time_col = "timestamp" if "timestamp" in header else "date"
    missing = [c for c in (time_col, *OHLCV) if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                        f"{'timestamp' if timeframe == '1h' else 'date'},{','.join(OHLCV)}")
    columns = list(zip(*rows[1:]))
    try:
        values = np.array([columns[header.index(c)] for c in OHLCV], dtype=np.float64).T
        stamps = columns[header.index(time_col)]
        if timeframe == "1d":
            label = np.array([s.strip()[:10] for s in stamps], dtype="datetime64[D]")
        else:
            label = np.array([utc_text(s) for s in stamps], dtype="datetime64[s]")
    except ValueError as e:
        raise DataError(f"{path}: unreadable value ({e})") from None
    return label.astype("datetime64[s]"), values


def read_folder(folder: Path, symbol: str, timeframe: str) -> RawSymbol:
    path = folder / "ohlcv" / (f"{symbol}.csv" if timeframe == "1d" else f"{symbol}_1h.csv")
    if not path.is_file():
        have = sorted(p.stem for p in (folder / "ohlcv").glob("*.csv"))
        raise DataError(f"no {timeframe} bars for {symbol}: {path} does not exist "
                        f"(found: {', '.join(have) or 'nothing'})")
    label, ohlcv = read_ohlcv(path, timeframe)
    news, earnings = folder / "news" / f"{symbol}.csv", folder / "fundamentals" / f"{symbol}_earnings.csv"
    return RawSymbol(str(path), label, ohlcv,
                     _read(news) if news.is_file() else [],
                     _read(earnings) if earnings.is_file() else [])


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
