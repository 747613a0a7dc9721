"""The sweep file: which firm variants to compare, on which symbols, windows and seeds.

Validated like a firm: YAML with locations (flowkit.spec.yamlsrc), the checked-in JSON Schema
schemas/sweep.schema.json (generated from these models: `python -m flowkit.sweep.spec --write`),
then every variant is loaded as a firm, so a bad override is reported at its line in the sweep
file. A sweep file is recognised by its top-level `sweep:` key."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flowkit._paths import asset_dir
from flowkit.errors import FlowkitError, Location, SpecError
from flowkit.spec.models import Date, Int, Symbol
from flowkit.spec.yamlsrc import Located, parse

SCHEMA_ID = "https://flowkit.dev/schemas/sweep.schema.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# What a cell can be compared on: the firm's backtest metrics (and buy-and-hold's, same keys).
METRICS = ("sharpe", "sortino", "cumulative_return", "annual_return", "annual_volatility",
           "max_drawdown", "calmar", "win_rate", "num_trades", "turnover", "exposure")
Metric = Literal[METRICS]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class FixedWindow(_Strict):
    start: Date = Field(description="First decision date.")
    end: Date = Field(description="Last decision date.")

    @model_validator(mode="after")
    def _ordered(self) -> "FixedWindow":
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class WalkForward(_Strict):
    start: Date = Field(description="Where the first training window starts.")
    end: Date = Field(description="No test window ends after this date.")
    train_months: Int = Field(12, ge=0, le=240, description="Months of training before each "
                              "test window (firms that learn train on it; it never overlaps "
                              "the test).")
    test_months: Int = Field(12, ge=1, le=240, description="Months in each test window.")
    step_months: Int | None = Field(None, ge=1, le=240, description="Months between test "
                                    "window starts (default: test_months, windows end to end).")


class Windows(_Strict):
    fixed: list[FixedWindow] | None = Field(None, min_length=1, description="Test windows as "
                                            "given (no training window).")
    walk_forward: WalkForward | None = Field(None, description="Rolling train/test windows.")

    @model_validator(mode="after")
    def _one(self) -> "Windows":
        if (self.fixed is None) == (self.walk_forward is None):
            raise ValueError("give exactly one of fixed or walk_forward")
        return self


class Sweep(_Strict):
    sweep: str = Field(pattern=NAME_PATTERN, description="The sweep's name; its results go "
                       "to sweeps/<name>/ next to the current directory.")
    description: str = ""
    firms: list[str] = Field(min_length=1, description="Workflow files (relative to this "
                             "file), each a base variant.")
    vary: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(default_factory=dict, description="dotted.path: [values] "
                                       "(the paths --set takes); every combination is crossed "
                                       "with every firm.")
    symbols: list[Symbol | list[Symbol]] = Field(min_length=1, description="Each entry a cell's "
                                                 "symbols: one symbol, or a list traded together.")
    windows: Windows
    every: Literal["1d", "1w", "1h"] | None = Field(None, description="Decision frequency "
                                                    "(default: each firm's backtest.every).")
    seeds: Int = Field(1, ge=1, le=1000, description="Seeds 0..N-1 per cell (the offline model "
                       "is deterministic: seeds matter for sampled models).")
    model: str | None = Field(None, description="Replace every profile's model, like --model.")
    knowledge_cutoffs: dict[str, Date] = Field(default_factory=dict, description="model id: "
                                               "the last date it may have seen in training. "
                                               "Results are split by whether each window "
                                               "starts after it; this overrides a profile's "
                                               "knowledge_cutoff and flowkit's table of "
                                               "published cutoffs.")
    train: bool = Field(True, description="Firms with learning.train train on each walk-forward "
                        "training window before its test window.")
    metrics: list[Metric] = Field(default_factory=lambda: ["sharpe", "cumulative_return",  # type: ignore[valid-type]
                                                           "max_drawdown"], min_length=1)


@dataclass(frozen=True)
class Window:
    start: dt.date
    end: dt.date
    train: tuple[dt.date, dt.date] | None = None

    @property
    def label(self) -> str:
        return f"{self.start}..{self.end}"


@dataclass(frozen=True)
class Variant:
    name: str
    firm: Path
    overrides: tuple[str, ...]       # --set strings
    index: int                       # which entry of firms:


@dataclass(frozen=True)
class LoadedSweep:
    spec: Sweep
    path: Path
    variants: list[Variant]
    windows: list[Window]

    @property
    def symbol_sets(self) -> list[tuple[str, ...]]:
        return [(s,) if isinstance(s, str) else tuple(s) for s in self.spec.symbols]


def is_sweep(data: Any) -> bool:
    return isinstance(data, dict) and "sweep" in data


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def windows(spec: Windows) -> list[Window]:
    """The test windows (with their training windows): walk-forward windows start after
    `train_months`, advance by `step_months`, and stop before passing `end`."""
    if spec.fixed is not None:
        return [Window(w.start, w.end) for w in spec.fixed]
    wf = spec.walk_forward
    assert wf is not None
    out, k = [], 0
    while True:
        test_start = _add_months(wf.start, wf.train_months + k * (wf.step_months or wf.test_months))
        test_end = _add_months(test_start, wf.test_months) - dt.timedelta(days=1)
        if test_end > wf.end:
            return out
        # Month arithmetic clamps days (Feb 29 + 24 - 24 months is Feb 28): never before start.
        train = (max(wf.start, _add_months(test_start, -wf.train_months)),
                 test_start - dt.timedelta(days=1))
        out.append(Window(test_start, test_end, train if wf.train_months else None))
        k += 1


def _yaml_text(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML: --set reads it back as the same value


def variants(spec: Sweep, base: Path) -> list[Variant]:
    stems = [Path(f).stem for f in spec.firms]
    out = []
    combos = list(itertools.product(*spec.vary.values())) if spec.vary else [()]
    for index, (file, stem) in enumerate(zip(spec.firms, stems)):
        for combo in combos:
            sets = tuple(f"{k}={_yaml_text(v)}" for k, v in zip(spec.vary, combo))
            out.append(Variant(" ".join((stem, *sets)), base / file, sets, index))
    return out


def load_sweep(path: str | Path) -> LoadedSweep:
    """Parse and check a sweep file and every variant it names; raise SpecError listing every
    problem with its file:line:col."""
    from flowkit.spec import schema
    from flowkit.spec.loader import load_workflow

    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([FlowkitError(f"cannot read sweep file: {exc}", Location(shown, 1, 1))]) \
            from None
    doc = parse(text, shown)
    if doc.problems:
        raise SpecError(doc.problems)
    if not is_sweep(doc.data):
        raise SpecError([FlowkitError("a sweep file is a mapping with a top-level 'sweep:' name",
                                      doc.at(()))])
    shape, _ = schema.check(doc, schema.validator_for(load_schema()))
    if shape:
        raise SpecError(shape)
    spec = _model(doc)
    base = Path(path).parent
    problems = []
    stems: dict[str, int] = {}
    for i, file in enumerate(spec.firms):
        stem = Path(file).stem
        if stem in stems:
            problems.append(FlowkitError(f"two firms named '{stem}' (firms[{stems[stem]}] and "
                                         f"firms[{i}]): variants are named by file", doc.at(("firms", i))))
        stems[stem] = i
    found = variants(spec, base)
    for variant in found:
        try:
            load_workflow(variant.firm, list(variant.overrides))
        except FlowkitError as exc:
            problems += _relocate(exc, doc, variant, spec)
    out = windows(spec.windows)
    if not out:
        problems.append(FlowkitError("the walk-forward windows leave no complete test window "
                                     "before end", doc.at(("windows", "walk_forward"))))
    if problems:
        raise SpecError(problems)
    return LoadedSweep(spec, Path(path), found, out)


def _relocate(exc: FlowkitError, doc: Located, variant: Variant, spec: Sweep) -> list[FlowkitError]:
    """A variant's problems: those in the firm's own file stay there; those an override caused
    (located at '--set key') point at that key under vary: in the sweep file."""
    out = []
    for p in exc.problems if isinstance(exc, SpecError) else [exc]:
        loc = p.location
        if loc is None or loc.file.startswith("--set "):
            key = loc.file.removeprefix("--set ") if loc else None
            where = doc.at(("vary", key), key=True) if key in spec.vary else doc.at(("firms", variant.index))
            out.append(FlowkitError(f"variant '{variant.name}': {p.message}", where))
        else:
            out.append(p)
    return out


def _model(doc: Located) -> Sweep:
    from pydantic import ValidationError

    try:
        return Sweep.model_validate(doc.data)
    except ValidationError as exc:
        # The schema caught the shapes; what is left are cross-field rules (start after end).
        raise SpecError([FlowkitError(err["msg"].removeprefix("Value error, "),
                                      doc.at(tuple(err["loc"]))) for err in exc.errors()]) from None


@cache
def load_schema() -> dict[str, Any]:
    return json.loads((asset_dir("schemas") / "sweep.schema.json").read_text())


def main(argv: list[str]) -> int:
    """Print the sweep schema generated from the models, or write it with --write."""
    from flowkit.spec.schema import contract

    content = json.dumps(contract(Sweep, SCHEMA_ID, "flowkit sweep"), indent=2) + "\n"
    target = asset_dir("schemas") / "sweep.schema.json"
    if "--write" in argv:
        target.write_text(content)
    else:
        sys.stdout.write(content)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
