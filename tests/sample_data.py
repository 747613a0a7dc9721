"""Where tests read real data: the sample shipped inside the package (the same files as
../shared/data, minus the non-commercial news rows), so tests pass from any clone."""

import dataclasses
from pathlib import Path

import numpy as np

import flowkit.market

SAMPLE = Path(flowkit.market.__file__).resolve().parent / "sample"
OHLCV = SAMPLE / "ohlcv"


@dataclasses.dataclass
class Bars:
    """Stand-in for flowkit.market's Bars (the arrays baselines and reports read), for tests
    that build their own calendar."""

    time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
