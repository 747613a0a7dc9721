"""MarketData: every loaded symbol, decision times and memoised as-of views; `load_market`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flowkit.errors import DataError
from flowkit.market import clock
from flowkit.plugins import SOURCES
from flowkit.market.bars import Bars
from flowkit.market.view import AsOfView, SymbolData

if TYPE_CHECKING:
    from flowkit.market.sources import RawSymbol
    from flowkit.spec.models import MarketSpec

SECTORS = {
    "AAPL": "Technology", "MSFT": "Technology", "NVDA": "Technology",
    "GOOGL": "Communication Services", "AMZN": "Consumer Discretionary", "SPY": "ETF",
    "BTC-USDT": "Crypto", "ETH-USDT": "Crypto",
}
_MEMO_SIZE = 256  # views kept: every agent of a decision time shares one; not a long run's history


class MarketData:
    """The loaded market. `bars()` is the full history (simulator, broker); agents get `asof()`."""

    def __init__(self, data: dict[str, SymbolData], symbols: list[str], *, benchmark: str | None,
                 timeframe: str, lookback: int, sectors: dict[str, str], fingerprint: str = ""):
        self.symbols = symbols
        self.fingerprint = fingerprint  # sha256 of the data as loaded (`data_fingerprint`)
        self.benchmark = benchmark
        self.timeframe = timeframe
        self.lookback = lookback
        self._sectors = sectors
        self._data = data
        self._views: OrderedDict[tuple[str, int], AsOfView] = OrderedDict()

    def _get(self, symbol: str) -> SymbolData:
        try:
            return self._data[symbol]
        except KeyError:
            raise DataError(f"symbol {symbol!r} is not loaded (loaded: {', '.join(self._data)})") from None

    def bars(self, symbol: str) -> Bars:
        return self._get(symbol).bars

    def sectors(self, symbols: Iterable[str]) -> dict[str, str]:
        """symbol -> sector for those of `symbols` that have one (built-in table, crypto pairs,
        then market.sectors)."""
        return {s: self._sectors[s] for s in symbols if s in self._sectors}

    def periods_per_year(self, symbol: str) -> int:
        """Bars per year: 252 (stocks, daily), 365 (crypto, daily), x7 / x24 hourly."""
        return self._get(symbol).periods_per_year

    def decisions_per_year(self, symbol: str, every: str) -> tuple[int, str]:
        """Decision periods per year of `symbol`'s calendar at frequency `every`, and why
        (`clock.decisions_per_year`): what annualises an equity curve marked at each decision."""
        d = self._get(symbol)
        return clock.decisions_per_year(d.crypto, every, d.bars_per_session)

    def data_warnings(self, symbols: Iterable[str], start: dt.date, end: dt.date) -> list[str]:
        """What a researcher must know about the data of a window [start, end] (session dates)
        before trusting a result on it: `data_warnings` below, for each of `symbols`."""
        data = [self._get(s) for s in symbols]
        lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
        last = min(hi, max(d.session[-1] for d in data))  # where the run's last decision falls
        return [w for d in data for w in data_warnings(d, lo, hi, last)]

    def latest_time(self, symbol: str) -> np.datetime64:
        return self._get(symbol).bars.close_time[-1]

    def decision_times(self, symbol: str, start: dt.date, end: dt.date, every: str) -> list[np.datetime64]:
        """Close times of the bars ending each period (`every`: 1d, 1w = last session of each ISO
        week, 1h) whose session date is in [start, end]; empty if there are none."""
        d = self._get(symbol)
        idx = clock.decision_indices(d.session, d.bars.timeframe, every)
        day = d.session[idx]
        idx = idx[(day >= np.datetime64(start, "D")) & (day <= np.datetime64(end, "D"))]
        return list(d.bars.close_time[idx])

    def asof(self, symbol: str, t: np.datetime64) -> AsOfView:
        t = clock.seconds(t)
        key = (symbol, int(t.astype(np.int64)))
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
            return view
        d = self._get(symbol)
        i = d.bars.index_asof(t)
        if i < 0:
            raise DataError(f"no {symbol} bar has closed by {t}Z (the first closes at "
                            f"{d.bars.close_time[0]}Z)")
        view = self._views[key] = AsOfView(d, t, i, self.lookback, self._sectors.get(symbol))
        if len(self._views) > _MEMO_SIZE:
            self._views.popitem(last=False)
        return view


JUMP = 0.5  # a close-to-close move larger than this in one bar looks like an unadjusted split
_SHOWN = 3  # examples named per warning


def data_warnings(d: SymbolData, lo: np.datetime64, hi: np.datetime64,
                  last: np.datetime64) -> list[str]:
    """Problems of one symbol's bars inside the window of session dates [lo, hi], whose last
    decision falls on session `last` (the end of the data of the longest symbol, or hi):

    - the window cut to the data: the data starts after lo, or ends before hi;
    - the data ends before `last`, so inside the run: the backtest exits the symbol at its last
      close at the next decision time and cancels its working orders (order reason `data_end`);
    - missing bars: for crypto any missing day or hour; for stocks two or more weekdays in a row
      without a bar (one missing weekday may be an exchange holiday, which is not checked);
    - a split-like jump: a close more than JUMP (50%) away from the previous close, while flowkit
      has no corporate-action data to tell a split from a move (use split-adjusted prices)."""
    name, session, close = d.bars.symbol, d.session, d.bars.close
    out = []
    if session[0] > lo:
        out.append(f"{name}: the data starts on {session[0]}, after the window starts ({lo}): "
                   "the window is cut to the data")
    if session[-1] < last:
        out.append(f"{name}: the data ends on {session[-1]}, inside the run (to {last}): its "
                   "position is closed at its last close at the next decision time (order "
                   "reason data_end) and its working orders are cancelled")
    elif session[-1] < hi:
        out.append(f"{name}: the data ends on {session[-1]}, before the window ends ({hi}): "
                   "the window is cut to the data")
    inside = np.flatnonzero((session >= lo) & (session <= hi))
    pairs = inside[inside > 0]
    pairs = pairs[session[pairs - 1] >= lo]  # bar i and the bar before it, both in the window
    if d.crypto:
        step = clock.DAY if d.bars.timeframe == "1d" else clock.HOUR
        missing = (d.bars.time[pairs] - d.bars.time[pairs - 1]) // step - 1
        unit = "day" if d.bars.timeframe == "1d" else "hour"
    else:
        missing = np.busday_count(session[pairs - 1] + 1, session[pairs])
        missing = np.where(missing >= 2, missing, 0)
        unit = "weekday"  # a stock exchange closed for days (e.g. 2012-10-29/30) gaps too
    gaps = pairs[missing > 0]
    if len(gaps):
        shown = ", ".join(f"{missing[missing > 0][k]} {unit}(s) before {_label(d, i)}"
                          for k, i in enumerate(gaps[:_SHOWN]))
        out.append(f"{name}: {len(gaps)} gap(s) in the data inside the window ({shown}"
                   f"{', ...' if len(gaps) > _SHOWN else ''})")
    with np.errstate(divide="ignore", invalid="ignore"):
        move = close[pairs] / close[pairs - 1] - 1
    jumps = pairs[np.abs(move) > JUMP]
    if len(jumps):
        shown = ", ".join(f"{100 * (close[i] / close[i - 1] - 1):+.0f}% at {_label(d, i)}"
                          for i in jumps[:_SHOWN])
        out.append(f"{name}: {len(jumps)} close-to-close move(s) above {JUMP:.0%} in one bar "
                   f"({shown}{', ...' if len(jumps) > _SHOWN else ''}): a split or a bad print? "
                   "flowkit has no corporate-action data; use split-adjusted prices")
    return out


def _label(d: SymbolData, i: int) -> str:
    return d.labels(int(i), int(i) + 1)[0]


def load_market(spec: MarketSpec, *, base_dir: Path | None = None, cache_db: str | None = None,
                refresh: bool = False) -> MarketData:
    """Load spec.symbols and spec.benchmark through the source `spec.source` names (see
    `DataSource`). `base_dir` anchors relative paths (the workflow file's folder); `cache_db` is
    a file a caching source (ccxt) keeps its bars in; `refresh` asks it for bars newer than its
    cache (otherwise a cached series is used as is)."""
    wanted = list(dict.fromkeys([*spec.symbols, *([spec.benchmark] if spec.benchmark else [])]))
    source = SOURCES[spec.source](spec, base_dir=base_dir, cache_db=cache_db, refresh=refresh)
    raw = source.load(list(spec.symbols), spec.timeframe)
    if spec.benchmark and spec.benchmark not in raw:
        try:
            raw = {**raw, **source.load([spec.benchmark], spec.timeframe)}
        except DataError as exc:  # say which setting brought the symbol in
            raise DataError(f"{exc}; {spec.benchmark} is market.benchmark: set it to a symbol "
                            f"with {spec.timeframe} bars, or to null") from None
    missing = [s for s in wanted if s not in raw]
    if missing:
        raise DataError(f"data source '{spec.source}' returned no data for {', '.join(missing)}")
    crypto = {s: source.round_the_clock or clock.is_crypto(s) for s in wanted}
    data = {s: SymbolData(s, spec.timeframe, raw[s], crypto[s]) for s in wanted}
    sectors = {**{s: "Crypto" for s in wanted if crypto[s]}, **SECTORS, **spec.sectors}
    return MarketData(data, list(spec.symbols), benchmark=spec.benchmark, timeframe=spec.timeframe,
                      lookback=spec.lookback, sectors={s: sectors[s] for s in wanted if s in sectors},
                      fingerprint=data_fingerprint(raw))


def data_fingerprint(raw: Mapping[str, RawSymbol]) -> str:
    """sha256 of every symbol's bars, news and earnings as a source returned them: a run stores
    it, so replay and resume can say the data changed since (whatever the source or folder)."""
    digest = hashlib.sha256()
    for symbol in sorted(raw):
        r = raw[symbol]
        digest.update(json.dumps([symbol, r.news, r.earnings], sort_keys=True).encode())
        digest.update(np.ascontiguousarray(r.label).tobytes())
        digest.update(np.ascontiguousarray(r.ohlcv, dtype=np.float64).tobytes())
    return digest.hexdigest()
