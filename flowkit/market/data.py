"""MarketData: every loaded symbol, decision times and memoised as-of views; `load_market`."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flowkit.errors import DataError
from flowkit.market import clock
from flowkit.plugins import SOURCES
from flowkit.market.bars import Bars
from flowkit.market.view import AsOfView, SymbolData

if TYPE_CHECKING:
    from flowkit.spec.models import MarketSpec

SECTORS = {
    "AAPL": "Technology", "MSFT": "Technology", "NVDA": "Technology",
    "GOOGL": "Communication Services", "AMZN": "Consumer Discretionary", "SPY": "ETF",
    "BTC-USDT": "Crypto", "ETH-USDT": "Crypto",
}
_MEMO_SIZE = 4096  # views kept: enough for every agent of a decision to share one


class MarketData:
    """The loaded market. `bars()` is the full history (simulator, broker); agents get `asof()`."""

    def __init__(self, data: dict[str, SymbolData], symbols: list[str], *, benchmark: str | None,
                 timeframe: str, lookback: int, sectors: dict[str, str]):
        self.symbols = symbols
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


def load_market(spec: MarketSpec, *, base_dir: Path | None = None, cache_db: str | None = None,
                refresh: bool = False) -> MarketData:
    """Load spec.symbols and spec.benchmark through the source `spec.source` names (see
    `DataSource`). `base_dir` anchors relative paths (the workflow file's folder); `cache_db` is
    a file a caching source (ccxt) keeps its bars in; `refresh` asks it for bars newer than its
    cache (otherwise a cached series is used as is)."""
    wanted = list(dict.fromkeys([*spec.symbols, *([spec.benchmark] if spec.benchmark else [])]))
    source = SOURCES[spec.source](spec, base_dir=base_dir, cache_db=cache_db, refresh=refresh)
    raw = source.load(wanted, spec.timeframe)
    missing = [s for s in wanted if s not in raw]
    if missing:
        raise DataError(f"data source '{spec.source}' returned no data for {', '.join(missing)}")
    crypto = {s: source.round_the_clock or clock.is_crypto(s) for s in wanted}
    data = {s: SymbolData(s, spec.timeframe, raw[s], crypto[s]) for s in wanted}
    sectors = {**{s: "Crypto" for s in wanted if crypto[s]}, **SECTORS, **spec.sectors}
    return MarketData(data, list(spec.symbols), benchmark=spec.benchmark, timeframe=spec.timeframe,
                      lookback=spec.lookback, sectors={s: sectors[s] for s in wanted if s in sectors})
