"""The one exception tree. The CLI turns any FlowkitError into a clear message and exit 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True, order=True)
class Location:
    """Where in a spec file something is: 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class FlowkitError(Exception):
    """Base of every error flowkit raises on purpose."""

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class SpecError(FlowkitError):
    """A workflow file is wrong. May carry several problems, each with its own location."""

    def __init__(self, problems: list[FlowkitError]):
        self.problems = sorted(problems, key=lambda p: (p.location or Location("", 0, 0)))
        first = self.problems[0]
        super().__init__(first.message, first.location)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class ConfigError(FlowkitError):
    """A bad command-line option, override or environment value."""


class LiveRefused(ConfigError):
    """Live trading asked for where it is not allowed (see flowkit.app.live): refused before
    anything is opened, so no order and no request leaves the process."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT stopped a run; the run is marked `interrupted` and can be resumed.
    A KeyboardInterrupt, not a FlowkitError: a signal is no mistake, and code that catches
    Exception must not swallow it."""

    def __init__(self, signum: int, run_id: str):
        self.signum, self.run_id = signum, run_id
        super().__init__(f"run {run_id} interrupted by signal {signum}")


class DataError(FlowkitError):
    """Market data is missing, malformed, or would leak the future."""


class RunAborted(FlowkitError):
    """An error that must stop the whole run, whatever pattern or error policy the step runs
    under (no `continue`, no fallback): the application layer catches it once, marks the run
    with `status` and its message, and closes the run cleanly."""

    status = "failed"


class ModelError(FlowkitError):
    """A model call failed after retries and fallbacks, or its output never validated.
    `attempts` holds every provider attempt made (for the model_calls log)."""

    def __init__(self, message: str, location: Location | None = None,
                 attempts: Sequence[Any] = ()):
        super().__init__(message, location)
        self.attempts = list(attempts)


class OutputNeverValid(ModelError):
    """An agent got no usable answer: every attempt failed, or no answer validated even after
    repairs and re-asks. Under `runtime.on_invalid: hold` the decision it feeds is held and
    logged with status `invalid`; the run fails only past `runtime.max_invalid_share`."""


class CacheMiss(ModelError, RunAborted):
    """Replay mode asked the cache for a response it does not hold: the replay cannot be
    identical any more, so the run stops."""


class BudgetExceeded(RunAborted):
    """A per-run cost or token budget was reached; the run stops cleanly."""

    status = "budget_exceeded"


class StepError(FlowkitError):
    """An agent or pattern step failed; names the step."""


class StoreError(FlowkitError):
    """The DuckDB event log cannot be opened or written."""


class RunNotFound(StoreError):
    """A command named a run the event log does not hold."""


class BrokerError(FlowkitError):
    """An order could not be placed, or live trading was not confirmed."""


class PluginError(FlowkitError):
    """A name no installed package registers, or a plugin that breaks its extension point's
    contract."""
