"""metav1.Condition bookkeeping: one entry per type; lastTransitionTime moves only on a change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""


def merge(
    previous: Sequence[dict[str, Any]],
    wanted: Sequence[Condition],
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The conditions to store: `wanted`, keeping each old lastTransitionTime whose status held."""
    before = {item.get("type"): item for item in previous}
    merged: list[dict[str, Any]] = []
    for condition in wanted:
        old = before.get(condition.type)
        unchanged = old is not None and old.get("status") == condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": (
                    old["lastTransitionTime"]
                    if unchanged and old is not None and old.get("lastTransitionTime")
                    else now.strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
                "observedGeneration": generation,
            }
        )
    return merged


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    return any(item.type == type_ and item.status == TRUE for item in conditions)
