"""`--executor ray` on a local Ray instance runs the same cells as the process pool, with
identical per-cell metrics (needs the [ray] extra; slow: Ray takes seconds to start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowkit.sweep.run import run_sweep

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ray_and_the_pool_give_identical_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "grid.yaml"
    path.write_text(f"""sweep: grid
firms: [{ROOT}/workflows/sweeps/firms/single_agent.yaml, {ROOT}/workflows/examples/sequential.yaml]
symbols: [AAPL, [MSFT, NVDA]]
windows:
  fixed: [{{start: 2023-01-03, end: 2023-02-10}}, {{start: 2023-02-13, end: 2023-03-24}}]
every: 1w
""")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep(path, executor_name="ray", folder=tmp_path / "ray")
    finally:
        ray.shutdown()
    pooled = run_sweep(path, workers=2, folder=tmp_path / "pool")
    assert not on_ray.failed and on_ray.ran == 8
    assert [r["cell"] for r in on_ray.records] == [r["cell"] for r in pooled.records]
    assert [r["metrics"] for r in on_ray.records] == [r["metrics"] for r in pooled.records]
    assert [r["returns"] for r in on_ray.records] == [r["returns"] for r in pooled.records]
    assert len(list((tmp_path / "ray" / "cells").glob("*/runs.parquet"))) == 8
