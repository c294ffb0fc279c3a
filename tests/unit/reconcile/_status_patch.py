"""What a status merge patch does to a stored object, for the in-memory hubs of these tests."""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def merge_status(body: Manifest, status: Manifest) -> Manifest:
    """Apply `status` to `body`'s status as the API server would: a JSON merge patch (RFC
    7386), so None removes a key and a nested object merges into what is stored."""
    body["status"] = merged(body.get("status") or {}, status)
    return body


def merged(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result
