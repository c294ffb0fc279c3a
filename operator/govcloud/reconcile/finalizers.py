"""Letting go of an object: the operator's finalizer, and kopf's that earlier versions left."""

from __future__ import annotations

from typing import Any

from govcloud import constants
from govcloud.k8s import client

# Earlier versions served these kinds with kopf timers, and kopf put its own finalizer on each.
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"

Manifest = dict[str, Any]


def let_go(cluster: client.Cluster, body: Manifest) -> Manifest | None:
    """Remove the operator's finalizer, then kopf's if an earlier version left it (each a
    test-and-remove); what the last write answered, or None if there was nothing to remove."""
    current = cluster.remove_finalizer(body, constants.FINALIZER)
    held = body if current is None else current
    if KOPF_FINALIZER in (held["metadata"].get("finalizers") or []):
        typed = {**held, "apiVersion": body["apiVersion"], "kind": body["kind"]}
        current = cluster.remove_finalizer(typed, KOPF_FINALIZER)
    return current
