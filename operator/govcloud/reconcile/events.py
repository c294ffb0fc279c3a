"""What every reconciler hands back to its handler: Events to post, readable validation errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic

from govcloud.reconcile import conditions


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the reconciled object."""

    type: str
    reason: str
    message: str


# kopf cuts longer messages in the middle; what is left out is counted instead.
MESSAGE_LIMIT = 1000


def coalesce(events: Sequence[Event], limit: int = MESSAGE_LIMIT) -> list[Event]:
    """One Event per type and reason of a pass, the messages joined in order.

    An Event is a write: onboarding a tenant says "created ..." once, not once for each of its
    two dozen objects, which would double what onboarding costs the API server.
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for event in events:
        messages = grouped.setdefault((event.type, event.reason), [])
        if event.message not in messages:
            messages.append(event.message)
    return [
        Event(type_, reason, _joined(messages, limit))
        for (type_, reason), messages in grouped.items()
    ]


def _joined(messages: Sequence[str], limit: int) -> str:
    text = messages[0]
    for index, message in enumerate(messages[1:], start=1):
        rest = len(messages) - index
        tail = f"; and {rest} more"
        if len(text) + 2 + len(message) + len(tail) > limit and rest > 0:
            return text + tail
        text = f"{text}; {message}"
    return text


def bad_news(previous: Sequence[dict[str, Any]], current: Sequence[dict[str, Any]]) -> list[Event]:
    """A Warning for each condition that went bad between two stored condition lists (once:
    the next pass finds it already stored)."""
    return [
        Event("Warning", str(item["reason"]), str(item.get("message") or item["reason"]))
        for item in conditions.went_bad(previous, current)
    ]


def validation_message(error: pydantic.ValidationError) -> str:
    """A spec's validation errors as one line that names each field: what a person must fix."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"spec.{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(problems)
