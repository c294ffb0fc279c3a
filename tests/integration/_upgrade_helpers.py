"""Helpers of the upgrade test: the release before #13/#14 (commit 100c552) and its operator,
snapshots of what the platform holds, and the operator's audited writes in a window."""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _chart_helpers as charts

from govcloud.dev import cluster, testing

Manifest = dict[str, Any]
OLD_COMMIT = "100c552"
REPO_ROOT = testing.REPO_ROOT
OPERATOR_AGENTS = ("govcloud-operator/", "kopf/")
# Kinds a tenant owns on the hub, and the user-facing kinds, as snapshotted.
CHILD_KINDS = ("resourcequotas", "limitranges", "networkpolicies", "rolebindings")
CUSTOM_KINDS = ("cloudtenants", "resourceplans", "usagereports", "migrationplans")


def old_tree(root: Path) -> Path:
    """charts/, crds/ and operator/ as of OLD_COMMIT, unpacked under `root`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", OLD_COMMIT, "charts", "crds", "operator"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def old_operator(hub: cluster.ControlPlane, tree: Path, peering: str) -> testing.OperatorProcess:
    """The old operator (the old tree first on the path), with kopf peering as it shipped."""
    return testing.OperatorProcess(
        hub.kubeconfig,
        REPO_ROOT / ".cache" / "logs" / "operator-upgrade-old.log",
        env={
            "PYTHONPATH": str(tree / "operator"),
            "GOVCLOUD_STANDALONE": "false",
            "GOVCLOUD_PEERING_NAME": peering,
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
        },
    )


def new_operator(hub: cluster.ControlPlane, lease: str) -> testing.OperatorProcess:
    return testing.OperatorProcess(
        hub.kubeconfig,
        REPO_ROOT / ".cache" / "logs" / "operator-upgrade-new.log",
        env={
            "GOVCLOUD_LEASE_NAME": lease,
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
        },
    )


def helm_ok(*args: str, hub: cluster.ControlPlane) -> None:
    result = charts.helm(*args, kubeconfig=hub.kubeconfig)
    assert result.returncode == 0, f"helm {' '.join(args[:2])}: {result.stderr}"


def now_stamp() -> str:
    """Now, written as the audit log writes requestReceivedTimestamp (comparable as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def operator_writes(hub: cluster.ControlPlane, since: str, until: str = "~") -> list[Manifest]:
    """The operator's audited writes received in (since, until]."""
    return [
        event
        for event in hub.audit_events()
        if str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS)
        and since < str(event.get("requestReceivedTimestamp", "")) <= until
    ]


def write_key(event: Manifest) -> tuple[str, str, str, str]:
    """(verb, resource[/subresource], namespace, name) of an audited write."""
    ref = event.get("objectRef") or {}
    resource = str(ref.get("resource", ""))
    if ref.get("subresource"):
        resource += "/" + str(ref["subresource"])
    return (
        str(event.get("verb")),
        resource,
        str(ref.get("namespace", "")),
        str(ref.get("name", "")),
    )


def tally(events: list[Manifest]) -> Counter[tuple[str, str, str, str]]:
    return Counter(write_key(event) for event in events)


def snapshot(kubectl: testing.Kubectl, tenants: list[str], namespaces: list[str]) -> Manifest:
    """What a platform team would check after an upgrade, without server-set fields."""
    found: Manifest = {}
    for kind in CUSTOM_KINDS:
        items = kubectl.json("get", kind, "-A")["items"]
        for item in items:
            meta = item["metadata"]
            if not any(meta["name"].startswith(tenant) for tenant in tenants) and (
                meta.get("namespace") not in namespaces
            ):
                continue
            found[f"{kind}/{meta.get('namespace', '')}/{meta['name']}"] = {
                "uid": meta["uid"],
                "spec": item.get("spec"),
                "labels": meta.get("labels") or {},
                "status": item.get("status") or {},
            }
    for namespace in namespaces:
        body = kubectl.get("namespace", namespace)
        assert body is not None, f"namespace {namespace} is gone"
        found[f"namespaces//{namespace}"] = {
            "uid": body["metadata"]["uid"],
            "labels": body["metadata"].get("labels") or {},
        }
        for kind in CHILD_KINDS:
            for item in kubectl.json("get", kind, "-n", namespace)["items"]:
                content = {key: item.get(key) for key in ("spec", "subjects", "roleRef")}
                found[f"{kind}/{namespace}/{item['metadata']['name']}"] = {
                    "uid": item["metadata"]["uid"],
                    "labels": item["metadata"].get("labels") or {},
                    "content": content,
                }
    return found
