"""What a status merge patch does to a stored object, for the in-memory hubs of these tests."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def merge_status(body: Manifest, status: Manifest) -> Manifest:
    """Apply `status` to `body`'s status as the API server applies a JSON merge patch (RFC 7386):
    maps merge at every depth, None removes a key, anything else replaces."""
    _merge(body.setdefault("status", {}), status)
    return body


def _merge(current: Manifest, patch: Manifest) -> None:
    for key, value in patch.items():
        if value is None:
            current.pop(key, None)
        elif isinstance(value, dict) and isinstance(current.get(key), dict):
            _merge(current[key], value)
        elif isinstance(value, dict):
            current[key] = {}
            _merge(current[key], value)
        else:
            current[key] = value
