"""A run as the event log keeps it: enough to replay or resume it from any folder."""

from __future__ import annotations

import os
import socket
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
    error: str | None = None        # why it stopped, if it failed
    pid: int | None = None          # the process that ran it, and its host
    host: str | None = None

    @property
    def invocation(self) -> Invocation:
        return Invocation.stored(self.config.get("invocation"))

    def loaded(self) -> Any:
        """The workflow exactly as it ran (overrides applied), without reading its file."""
        from flowkit.spec.loader import LoadedWorkflow
        from flowkit.spec.models import Workflow

        data = self.config.get("workflow")
        if not isinstance(data, dict):  # a row written by hand or by another tool
            raise ConfigError(f"run {self.run_id} has no recorded workflow: it cannot be "
                              f"replayed or resumed")
        return LoadedWorkflow(Workflow.model_validate(data), Path(self.path), "", self.sha256, data)

    def check_data(self, market: Any, verb: str) -> None:
        """Refuse to repeat the run on market data other than what it ran on: its decisions
        would not be the run's. Runs logged before the data was fingerprinted pass."""
        ran = (self.config.get("data") or {}).get("sha256")
        if ran and ran != market.fingerprint:
            spec = self.config["workflow"]["market"]
            where = spec.get("path") or f"the {spec.get('source')} source"
            raise ConfigError(f"the market data in {where} changed since run {self.run_id} ran "
                              f"(sha256 {ran[:12]}… then, {market.fingerprint[:12]}… now): it "
                              f"cannot be {verb} on other data; restore the data or start a "
                              f"new run")

    def refuse_running(self, verb: str) -> None:
        """A run whose process is still at work on this machine: two processes continuing one
        run would log every decision twice."""
        from flowkit.app.read import process_alive

        if self.status == "running" and self.pid not in (None, os.getpid()) \
                and self.host == socket.gethostname() and process_alive(self.pid):
            raise ConfigError(f"run {self.run_id} is still running (process {self.pid}); it can "
                              f"be {verb} once it stops (Ctrl-C, or kill {self.pid})")

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
    from flowkit.store import RunStore

    with RunStore.open(db) as store:
        run = store.run(run_id)
        cp = store.last_checkpoint(run_id)
        decided = [(d["symbol"], d["as_of"], d["action"], d["size_pct"]) for d in store.decisions(run_id)]
    checkpoint = None if cp is None else {"seq": cp["seq"], "as_of": cp["as_of"], "state": cp["state"]}
    return StoredRun(run_id, run["workflow_path"], run["workflow_hash"], run["status"], run["mode"],
                     run["config"], checkpoint, decided, run["error"], run["pid"], run["host"])
