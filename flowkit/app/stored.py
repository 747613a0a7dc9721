"""A run as the event log keeps it: enough to replay or resume it from any folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowkit.app.running import Invocation
from flowkit.errors import ConfigError


@dataclass
class StoredRun:
    run_id: str
    path: str                       # the workflow file it ran
    sha256: str
    status: str
    mode: str
    config: dict[str, Any]          # {"workflow": resolved workflow, "invocation": ...}
    checkpoint: dict[str, Any] | None
    decisions: list[tuple[Any, ...]]  # (symbol, as_of, action, size_pct), by time and symbol

    @property
    def invocation(self) -> Invocation:
        return Invocation.stored(self.config.get("invocation"))

    def loaded(self) -> Any:
        """The workflow exactly as it ran (overrides applied), without reading its file."""
        from flowkit.spec.loader import LoadedWorkflow
        from flowkit.spec.models import Workflow

        data = self.config["workflow"]
        return LoadedWorkflow(Workflow.model_validate(data), Path(self.path), "", self.sha256, data)

    def refuse_training(self, verb: str) -> None:
        """A training episode ran with the beliefs of the episodes before it, which only
        `flowkit train` rebuilds: replaying or resuming one alone would not be the same run."""
        if self.mode == "train":
            episode = (self.config.get("invocation") or {}).get("episode")
            raise ConfigError(f"run {self.run_id} is {'episode ' + str(episode) + ' of ' if episode else ''}"
                              f"a training (`flowkit train`) and cannot be {verb}; "
                              f"run `flowkit train` again instead")


def load_run(db: str, run_id: str) -> StoredRun:
    """The run's row, resolved workflow and invocation, and its last checkpoint."""
    from flowkit.store import open_reader

    with open_reader(db) as con:
        row = con.execute("SELECT workflow_path, workflow_hash, status, config, mode FROM runs "
                          "WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise ConfigError(f"no run {run_id} in {db} (see `flowkit runs`)")
        cp = con.execute("SELECT seq, as_of, state FROM checkpoints WHERE run_id = ? "
                         "ORDER BY seq DESC LIMIT 1", [run_id]).fetchone()
        decided = con.execute("SELECT symbol, as_of, action, size_pct FROM decisions WHERE run_id = ? "
                              "ORDER BY as_of, symbol", [run_id]).fetchall()
    config = json.loads(row[3]) if isinstance(row[3], str) else row[3]
    checkpoint = None if cp is None else {
        "seq": int(cp[0]), "as_of": cp[1], "state": json.loads(cp[2]) if isinstance(cp[2], str) else cp[2]}
    return StoredRun(run_id, row[0], row[1], row[2], row[4], config, checkpoint, decided)
