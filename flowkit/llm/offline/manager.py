"""The FinCon manager: assigns every offered worker first, then decides from their reports and
from its declared inputs that have a direction (each one more report); with neither, from the
analyst consensus or its own read of the data."""

from __future__ import annotations

from typing import Any

from flowkit.llm.offline.analysts import consensus
from flowkit.llm.offline.trading import sized_order
from flowkit.llm.offline.view import MARK, View, blend, directional


def manager_plan(v: View) -> dict[str, Any]:
    workers = [w for w in v.ctx.get("workers") or () if isinstance(w, str)]
    reports = v.ctx.get("reports") or []
    if workers and not reports and not v.ctx.get("final"):
        day = v.as_of[:10]
        return {"assignments": [{"worker": w, "instruction": f"Report on {v.symbol} as of {day}: "
                                 "signal, score in [-1, 1] and confidence, citing the numbers."}
                                for w in workers],
                "action": "HOLD", "size_pct": 0.0, "stop_loss": None, "take_profit": None,
                "confidence": 0.0, "beliefs_applied": [],
                "reasoning": f"{MARK} Assigning {len(workers)} worker(s) ({', '.join(workers)}) "
                             "before deciding."}
    views = [(r.get("agent", "?"), d) for r in reports if (d := directional(r.get("output")))]
    inputs = v.input_views({agent for agent, _ in views})
    failed = [str(r.get("agent")) for r in reports if r.get("output") is None]
    what = " and ".join(name for name, got in (("worker reports", views), ("declared inputs", inputs))
                        if got)
    source = blend(views + inputs, what) if what else consensus(v)
    if failed:
        source.drivers.append(f"no report from {', '.join(failed)}")
    order = sized_order(v, source, "Manager")
    return {"assignments": [], "action": order["action"], "size_pct": order["size_pct"],
            "stop_loss": order["stop_loss"], "take_profit": order["take_profit"],
            "confidence": order["confidence"], "reasoning": order["reasoning"],
            "beliefs_applied": [b.text for b in v.applied]}
