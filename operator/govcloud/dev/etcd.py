"""Test helpers over a local control plane's etcd v3 JSON gateway: head revision, compaction."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from govcloud.dev import cluster


def _post(plane: cluster.ControlPlane, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    if plane.ports is None:
        raise cluster.ClusterError(f"cluster {plane.name!r} is not started")
    request = urllib.request.Request(
        f"http://127.0.0.1:{plane.ports.etcd_client}{path}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def head_revision(plane: cluster.ControlPlane) -> int:
    """etcd's current revision: every resourceVersion the API server hands out is one."""
    answer = _post(plane, "/v3/kv/range", {"key": "AA==", "limit": 1})  # key "\0"
    return int(answer["header"]["revision"])


def compact(plane: cluster.ControlPlane, revision: int | None = None) -> int:
    """Compact etcd's history up to `revision` (default: the head); returns the revision."""
    target = revision if revision is not None else head_revision(plane)
    _post(plane, "/v3/kv/compaction", {"revision": str(target), "physical": True})
    return target
