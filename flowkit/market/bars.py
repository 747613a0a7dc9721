"""One symbol's full bar history, for the simulator and the broker (agents only ever see an
`AsOfView`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from flowkit.market.clock import seconds


@dataclass(frozen=True, eq=False)
class Bars:
    symbol: str
    timeframe: str          # 1d | 1h
    time: np.ndarray        # datetime64[s]: bar open, UTC
    close_time: np.ndarray  # datetime64[s]: bar close, UTC; the bar is visible from this instant
    open: np.ndarray        # float64 ...
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        # Shared by every view, the simulator and the broker: nobody may write into them.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    def __len__(self) -> int:
        return len(self.time)

    def index_asof(self, t: np.datetime64) -> int:
        """Index of the last bar closed at `t` (close_time <= t), -1 if none."""
        return int(np.searchsorted(self.close_time, seconds(t), side="right")) - 1
