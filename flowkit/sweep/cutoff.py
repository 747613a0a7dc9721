"""Which cells a model may have memorised: a window that starts on or before the knowledge
cutoff of a model the firm asks is "before" (its outcome may be in the training data), one that
starts after every such cutoff is "after", one with a model of unknown cutoff is "unknown",
and a firm only the offline model answers is "n/a" (it learned nothing from the internet).

A model's cutoff is the sweep file's `knowledge_cutoffs`, else its profile's knowledge_cutoff,
else PUBLISHED (the providers' model pages; extend it only from such a page)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flowkit.sweep.spec import LoadedSweep

PUBLISHED: dict[str, dt.date] = {
    "gpt-4o": dt.date(2023, 10, 1),
    "gpt-4o-mini": dt.date(2023, 10, 1),
    "gpt-4.1": dt.date(2024, 6, 1),
    "gpt-4.1-mini": dt.date(2024, 6, 1),
}
SIDES = ("before", "after", "unknown", "n/a")


def model_cutoffs(sweep: LoadedSweep) -> dict[str, dict[str, dt.date | None]]:
    """variant -> {model id: its cutoff (None: unknown)} for every model but the offline one."""
    from flowkit.spec.loader import load_workflow

    out: dict[str, dict[str, dt.date | None]] = {}
    for v in sweep.variants:
        firm = load_workflow(v.firm, list(v.overrides)).spec
        models = out.setdefault(v.name, {})
        for profile in firm.models.values():
            model = sweep.spec.model or profile.model
            if model != "offline":
                models[model] = sweep.spec.knowledge_cutoffs.get(model) or \
                    profile.knowledge_cutoff or PUBLISHED.get(model.removeprefix("openai/"))
    return out


def side(start: dt.date, cutoffs: dict[str, dt.date | None]) -> str:
    """Where a window starting on `start` lies against these models' cutoffs (see above)."""
    if not cutoffs:
        return "n/a"
    if any(c is None for c in cutoffs.values()):
        return "unknown"
    return "before" if any(start <= c for c in cutoffs.values() if c) else "after"


def sides(sweep: LoadedSweep, records: list[dict[str, Any]]) -> dict[str, str]:
    """cell id -> its side, for every record."""
    cutoffs = model_cutoffs(sweep)
    return {r["cell"]["id"]: side(dt.date.fromisoformat(r["cell"]["start"]),
                                  cutoffs.get(r["cell"]["variant"], {})) for r in records}
