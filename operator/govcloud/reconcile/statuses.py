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
    object deleted meanwhile has nothing left to report on: no write, no error.

    The patch nulls every key `status` leaves out, nested ones too (a merge patch keeps what
    it does not name: a ceiling emptied by a missing rate card would stay as it was, and
    every later pass would find it different and write it again)."""
    wanted = present(status)
    current = body.get("status") or {}
    held = {key: value for key, value in current.items() if key not in kept or key in wanted}
    if held == wanted:
        return False
    patch = compare.merge_patch(held, wanted)
    metadata = body["metadata"]
    namespace = [metadata["namespace"]] if metadata.get("namespace") else []
    try:
        hub.patch_status(api_version, kind, metadata["name"], patch, *namespace)
    except client.ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def present(value: Any) -> Any:
    """`value` without the keys set to None at any depth: None means absent in a status."""
    if isinstance(value, dict):
        return {key: present(item) for key, item in value.items() if item is not None}
    return value


def tenant_of(hub: client.Cluster, namespace: str) -> str | None:
    """The CloudTenant owning `namespace` (its tenant label, which only the operator sets)."""
    found = hub.get("v1", "Namespace", namespace)
    labels = ((found or {}).get("metadata") or {}).get("labels") or {}
    owner = labels.get(constants.LABEL_TENANT)
    return str(owner) if owner else None
