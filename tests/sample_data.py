"""Where tests read real data: the sample shipped inside the package (the same files as
../shared/data, minus the non-commercial news rows), so tests pass from any clone."""

from pathlib import Path

import flowkit.market

SAMPLE = Path(flowkit.market.__file__).resolve().parent / "sample"
OHLCV = SAMPLE / "ohlcv"
