"""A condition that goes False posts a Warning Event once, not on every pass.

A tenant asks for a namespace someone else already made (NamespacesReady=False,
NamespaceConflict) and for deletionPolicy Delete without the confirmation
(DeletionConfirmed=False, NotConfirmed). Each is said in one Warning Event on the
CloudTenant, with count 1 after several resync passes (every 5 s in the test operator).
"""

from __future__ import annotations

import uuid
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration

REASONS = ("NamespaceConflict", "NotConfirmed")

RESYNCS = 2
RESYNC_SECONDS = 5


def warnings_about(kubectl: testing.Kubectl, name: str) -> dict[str, list[dict[str, Any]]]:
    """The Warning Events about CloudTenant `name` (in `default`), by reason."""
    found = kubectl.json(
        "get", "events", "-n", "default", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for item in found:
        if item["type"] == "Warning" and item["involvedObject"].get("kind") == "CloudTenant":
            by_reason.setdefault(item["reason"], []).append(item)
    return by_reason


def test_a_conflict_and_an_unconfirmed_deletion_are_each_said_once(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> None:
    name = f"news-{uuid.uuid4().hex[:5]}"
    taken = f"{name}-app"
    kubectl("create", "namespace", taken)  # someone else's: not the tenant's to take
    manifest = helpers.tenant_manifest(name, namespaces=("app", "web"), confirm_delete=False)
    try:
        kubectl.apply(manifest)

        def bad_news_stored(body: dict[str, Any]) -> bool:
            namespaces = helpers.condition(body, "NamespacesReady")
            deletion = helpers.condition(body, "DeletionConfirmed")
            return (
                namespaces.get("reason") == "NamespaceConflict"
                and deletion.get("reason") == "NotConfirmed"
            )

        helpers.wait_tenant(kubectl, name, bad_news_stored, what="the conflict and NotConfirmed")
        testing.eventually(
            lambda: {"NamespaceConflict", "NotConfirmed"} <= set(warnings_about(kubectl, name)),
            timeout=30,
            what="a Warning Event for each",
        )
        seen = operator.metric_value(
            "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
        )
        testing.eventually(
            lambda: (
                operator.metric_value(
                    "govcloud_tenant_last_reconcile_timestamp_seconds", tenant=name
                )
                >= seen + RESYNCS * RESYNC_SECONDS
            ),
            timeout=60,
            what=f"{RESYNCS} resync passes more",
        )

        # Events are posted from a background thread after the pass: wait for them to show.
        def each_said() -> dict[str, list[dict[str, Any]]] | None:
            found = warnings_about(kubectl, name)
            return found if all(found.get(reason) for reason in REASONS) else None

        warnings = testing.eventually(each_said, timeout=30, what=f"a Warning of each of {REASONS}")
        for reason in REASONS:
            assert len(warnings[reason]) == 1, warnings[reason]
            assert (warnings[reason][0].get("count") or 1) == 1, warnings[reason]
        assert taken in warnings["NamespaceConflict"][0]["message"]
        assert "not confirmed" in warnings["NotConfirmed"][0]["message"]
    finally:
        kubectl.run("delete", "cloudtenant", name, "--wait=false")
        testing.eventually(
            lambda: kubectl.get("cloudtenant", name) is None,
            timeout=60,
            what=f"CloudTenant {name} to be deleted",
        )
        # Unconfirmed, the tenant's own namespace is released, not deleted.
        kubectl.run("delete", "namespace", taken, f"{name}-web", "--wait=false")
