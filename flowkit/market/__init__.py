"""Market data: sources, the clock rules, indicators and the as-of views agents see.

Sources (`market.source`) are registered by name (`flowkit.plugins.SOURCES`, the
`flowkit.sources` entry points; the contract is `DataSource`): `sample` (real data shipped in `flowkit/market/sample/`), `csv` (a
folder with the same layout), `ccxt` (any exchange's OHLCV, cached in DuckDB), and whatever
installed packages add. pandas is never imported; ccxt and duckdb only when the ccxt source loads.

Clock rules. Every time is UTC (`datetime64[s]`); a decision at instant t sees only what is
visible at t.

- Bars. A daily stock bar dated D opens at 09:30 and closes at 16:00 America/New_York on D
  (13:30/14:30 and 20:00/21:00 UTC, by zoneinfo; half-day sessions are treated as closing at
  16:00, which only delays them). A crypto daily bar dated D opens at D 00:00 UTC and closes at
  D+1 00:00 UTC. An hourly bar closes one hour after it opens. A bar is visible from its close:
  `Bars.index_asof(t)` is the last bar with close_time <= t.
- Sessions. A bar's session date is D for daily bars, and the New York (stocks) or UTC (crypto)
  date of its open for hourly bars. A decision's session is that of the last bar it sees.
- News. An item with `datetime_utc` is visible from that instant. A date-only item dated D is
  visible only to decisions whose session date is after D (from the close of the next session):
  the day alone does not say whether it came before the close.
- Earnings. A report with `reported_date` R is visible only to decisions on sessions strictly
  after the next session after R: reports land after the close, and some sources date them a day
  early (GOOGL's are).
- Lookback. An agent sees at most `market.lookback` raw bars (`history()`, `recent_bars`,
  `price.bars`). Indicators and price changes are computed causally over the full past once per
  symbol and read at the decision's bar, so they never depend on later bars nor on the lookback.

Data checks. A CSV file is read whole at load: blank lines are skipped; a file that is not
UTF-8, a short or truncated row, an unreadable value, a non-positive price, a bar whose high is
below its low, open or close (or low above them), or bars out of order fail with file:line,
wherever they are in the file. `MarketData.data_warnings(symbols, start, end)` names what a run
on a window should know: the window cut to the data (and a symbol whose data ends inside the
run, closed at its last close with reason `data_end`), missing bars, and split-like jumps (> 50% in one
bar); a backtest prints them in its header and stores them with the firm's metrics.

`decision_times(symbol, start, end, every)` gives the close time of the bar ending each period
whose session date is in [start, end]: every bar (1h, hourly data only), the last bar of each
session (1d) or of each ISO week (1w: Friday, or Thursday before Good Friday; Sunday for crypto).
"""


from __future__ import annotations

import importlib
from typing import Any

from flowkit.market.base import DataSource

# numpy is imported only when data is loaded.
_LAZY = {"AsOfView": "view", "Bars": "bars", "MarketData": "data", "load_market": "data"}

__all__ = ["DataSource", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"flowkit.market.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'flowkit.market' has no attribute {name!r}")
