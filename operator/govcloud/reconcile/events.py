"""What every reconciler hands back to its handler: Events to post, readable validation errors."""

from __future__ import annotations

from dataclasses import dataclass

import pydantic


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the reconciled object."""

    type: str
    reason: str
    message: str


def validation_message(error: pydantic.ValidationError) -> str:
    """A spec's validation errors as one line that names each field: what a person must fix."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"spec.{where}: {item['msg']}" if where else str(item["msg"]))
    return "; ".join(problems)
