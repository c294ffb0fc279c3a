"""metav1.Condition bookkeeping: one entry per type; lastTransitionTime moves only on a change."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRUE = "True"
FALSE = "False"
UNKNOWN = "Unknown"
# Condition types whose True is the bad news; for every other type it is False.
BAD_WHEN_TRUE = frozenset({"CredentialExpiring", "Degraded", "Stalled"})


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


def is_bad(condition: dict[str, Any], bad_when_true: frozenset[str] = BAD_WHEN_TRUE) -> bool:
    """Whether a stored condition tells bad news: False, or True for a bad-news type."""
    bad = TRUE if condition.get("type") in bad_when_true else FALSE
    return condition.get("status") == bad


def went_bad(
    previous: Sequence[dict[str, Any]],
    current: Sequence[dict[str, Any]],
    bad_when_true: frozenset[str] = BAD_WHEN_TRUE,
) -> list[dict[str, Any]]:
    """The conditions of ``current`` that tell bad news ``previous`` did not: turned bad, or
    bad for another reason. Stored once, so each such news is found once, not every pass."""
    before = {item.get("type"): item for item in previous}
    news = []
    for item in current:
        old = before.get(item.get("type"))
        if not is_bad(item, bad_when_true):
            continue
        if old is None or not is_bad(old, bad_when_true) or old.get("reason") != item["reason"]:
            news.append(item)
    return news
