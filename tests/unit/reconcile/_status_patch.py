"""What a status merge patch does to a stored object, for the in-memory hubs of these tests."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def merge_status(body: Manifest, status: Manifest) -> Manifest:
    """Apply `status` to `body`'s status as the API server would (None removes a key)."""
    current = body.setdefault("status", {})
    for key, value in status.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    return body
