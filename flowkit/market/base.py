"""The data source contract (`market.source` names one in `flowkit.plugins.SOURCES`).

A source turns symbols and a timeframe into raw bars (and, if it has them, news and earnings);
`load_market` then applies the clock rules, so a source never decides what is visible when."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from flowkit.market.sources import RawSymbol
    from flowkit.spec.models import MarketSpec


class DataSource(ABC):
    """Registered under a name in the `flowkit.sources` entry point group.

    Contract: `load(symbols, timeframe)` returns one RawSymbol per symbol asked for, whose
    `label`s are strictly increasing bar dates (`1d`) or UTC bar open times (`1h`), with
    finite positive prices and consistent bars (low <= open, close <= high; checked at load,
    named by `RawSymbol.where`: file:line when `lines` is set); a symbol or timeframe the
    source does not have is a DataError naming it. It must not fetch beyond what it is asked for: the clock rules, not the source,
    keep the future out of sight."""

    # Every symbol trades round the clock (a crypto venue): daily bars close at 00:00 UTC.
    # Otherwise only crypto-looking pairs (BTC-USDT) do and the rest keep New York hours.
    round_the_clock: ClassVar[bool] = False

    def __init__(self, spec: MarketSpec, *, base_dir: Path | None = None,
                 cache_db: str | None = None, refresh: bool = False):
        """`base_dir` anchors relative paths (the workflow file's folder); `cache_db` is a file
        the source may cache into; `refresh` asks a caching source for bars newer than its
        cache."""
        self.spec, self.base_dir, self.cache_db, self.refresh = spec, base_dir, cache_db, refresh

    @abstractmethod
    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]: ...

