"""A run stores where its data was (absolute) and a fingerprint of it: `replay` works from any
folder, and says plainly when the data changed since the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime_support import ANALYST_TRADER, SAMPLE_OHLCV, cli, rows

FIRM = "version: 1\nname: anywhere\n" + ANALYST_TRADER + \
    "market: {symbols: [MSFT, ETH-USDT], source: csv, path: data}\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A workflow run by a relative path from its parent folder: (db, run id)."""
    folder = tmp_path / "project"
    (folder / "data" / "ohlcv").mkdir(parents=True)
    for name in ("MSFT", "ETH-USDT"):
        (folder / "data" / "ohlcv" / f"{name}.csv").write_text(
            (SAMPLE_OHLCV / f"{name}.csv").read_text())
    (folder / "firm.yaml").write_text(FIRM)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "runs.duckdb"
    rc, text = cli("run", "project/firm.yaml", "--start", "2024-02-01", "--end", "2024-02-29",
                   "--every", "1w", "--db", str(db))
    assert rc == 0, text
    (run_id,), = rows(db, "SELECT run_id FROM runs")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return db, run_id


def test_replay_works_from_another_folder(project):
    db, run_id = project
    (path, config), = rows(db, "SELECT workflow_path, config FROM runs")
    assert Path(path).is_absolute()
    assert '"sha256"' in config
    rc, text = cli("replay", run_id, "--db", str(db))
    assert rc == 0, text
    assert "changed" not in text


def test_replay_after_the_data_changed_says_so(project):
    db, run_id = project
    data = db.parent / "project" / "data" / "ohlcv" / "MSFT.csv"
    lines = data.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("2024-02-09"))
    fields = lines[k].split(",")
    fields[4] = f"{float(fields[4]) * 1.001:.4f}"  # a close nudged, still inside high and low
    fields[2] = f"{max(float(fields[2]), float(fields[4])):.4f}"
    lines[k] = ",".join(fields)
    data.write_text("\n".join(lines) + "\n")
    rc, text = cli("replay", run_id, "--db", str(db))
    assert rc != 0
    assert f"changed since run {run_id} ran" in text and str(data.parent.parent) in text
    assert "Traceback" not in text and "internal error" not in text
