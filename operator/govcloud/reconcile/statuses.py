"""What the passes over namespaced requests (plans, ResourceRequests, NetworkGrants) share:
the whole status of one object, written only when it differs from what is stored (whatever the
pass leaves out is cleared, except the fields it keeps: append-only records), and the tenant a
namespace belongs to."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from govcloud import constants
from govcloud.desired import compare
from govcloud.k8s import client

Manifest = dict[str, Any]


def replace(
    hub: client.Cluster,
    api_version: str,
    kind: str,
    body: Manifest,
    status: Manifest,
    kept: Collection[str] = (),
) -> bool:
    """Make `body`'s status `status` (plus the `kept` fields as stored); whether it wrote. An
    object deleted meanwhile has nothing left to report on: no write, no error."""
    current = body.get("status") or {}
    stale = [key for key in current if key not in status and key not in kept]
    if not stale and all(current.get(key) == value for key, value in status.items()):
        return False
    # At every depth: a key gone from a nested map (a plan's review once Approved has no
    # pendingSince) must be sent as null, or the merge keeps it, the stored status never equals
    # the pass's, and every resync writes it again.
    visible = {key: value for key, value in current.items() if key not in kept or key in status}
    patch = compare.merge_patch(visible, status)
    metadata = body["metadata"]
    namespace = [metadata["namespace"]] if metadata.get("namespace") else []
    try:
        hub.patch_status(api_version, kind, metadata["name"], patch, *namespace)
    except client.ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def tenant_of(hub: client.Cluster, namespace: str) -> str | None:
    """The CloudTenant owning `namespace` (its tenant label, which only the operator sets)."""
    found = hub.get("v1", "Namespace", namespace)
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    owner = labels.get(constants.LABEL_TENANT)
    return str(owner) if owner else None
