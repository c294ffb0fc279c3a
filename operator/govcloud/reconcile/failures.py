"""A pass that failed is shown on its object: condition `Reconciled=False` until one succeeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from govcloud import constants
from govcloud.k8s import client
from govcloud.reconcile import conditions

TYPE = "Reconciled"
REASON = "ReconcileError"
# The kinds whose passes go through the failure handler and carry status conditions.
KINDS = frozenset({"CloudTenant", "SubCenter", "MigrationPlan", "ResourcePlan", "ResourceRequest"})

Manifest = dict[str, Any]


def show(
    hub: client.Cluster, kind: str, key: str, message: str, now: datetime | None = None
) -> None:
    """Set `Reconciled=False` (reason ReconcileError, `message`) on the object, read afresh."""
    body = _read(hub, kind, key)
    if body is None:
        return
    status = body.get("status") or {}
    previous = status.get("conditions") or []
    generation = body["metadata"].get("generation")
    failed = conditions.Condition(TYPE, conditions.FALSE, REASON, message)
    merged = conditions.merge(previous, [failed], generation, now or datetime.now(UTC))
    wanted = [item for item in previous if item.get("type") != TYPE] + merged
    if wanted != previous:
        _write(hub, body, kind, wanted)


def clear(hub: client.Cluster, kind: str, key: str) -> None:
    """Drop `Reconciled` once a pass has succeeded (a no-op when the pass rewrote the list)."""
    body = _read(hub, kind, key)
    if body is None:
        return
    previous = (body.get("status") or {}).get("conditions") or []
    kept = [item for item in previous if item.get("type") != TYPE]
    if kept != previous:
        _write(hub, body, kind, kept)


def _read(hub: client.Cluster, kind: str, key: str) -> Manifest | None:
    if kind not in KINDS:
        return None
    namespace, _, name = key.rpartition("/")
    direct = getattr(hub, "direct", hub)  # the stored object, not a cache that may lag
    found: Manifest | None = direct.get(constants.API_VERSION, kind, name, namespace or None)
    return found


def _write(hub: client.Cluster, body: Manifest, kind: str, wanted: list[Manifest]) -> None:
    """The whole list, only if the object is still as read (409 otherwise: left to the next
    pass, which writes its own conditions)."""
    metadata = body["metadata"]
    try:
        hub.patch_status(
            constants.API_VERSION,
            kind,
            metadata["name"],
            {"conditions": wanted},
            metadata.get("namespace"),
            resource_version=metadata["resourceVersion"],
        )
    except client.ApiError as error:
        if error.status not in (404, 409):
            raise
