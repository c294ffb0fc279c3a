"""An in-memory stand-in for the hub's API, for metering logic only: reports with
resourceVersions, every write recorded."""

from __future__ import annotations

import copy
import re
from typing import Any

from govcloud.k8s import client

REPORT_LABELS = ("govcloud.io/period", "govcloud.io/tenant")


class Hub:
    """Just enough of `client.Cluster` for a metering tick; `writes` lists (name, status)."""

    def __init__(self, tenants: list[dict[str, Any]]) -> None:
        self.tenants = tenants
        self.reports: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.lists: list[str | None] = []  # the label selector of each LIST of reports
        self.bills: list[tuple[str, dict[str, Any]]] = []  # CloudTenant status.billing writes
        self.plans: list[dict[str, Any]] = []  # ResourcePlans (the operator's cache holds them)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        if kind == "CloudTenant":
            return copy.deepcopy(self.tenants)
        if kind == "ResourcePlan":
            return copy.deepcopy(self.plans)
        self.lists.append(label_selector)
        # A snapshot: metering's writer threads may create reports while a tick lists them.
        return [
            copy.deepcopy(body)
            for body in list(self.reports.values())
            if selected(body["metadata"].get("labels") or {}, label_selector)
        ]

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        if name in self.reports:
            raise client.ApiError(f'usagereports "{name}" already exists', 409, "AlreadyExists")
        self.version += 1
        body = copy.deepcopy(manifest)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.reports[name] = body
        return copy.deepcopy(body)

    def patch_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        status: dict[str, Any],
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        if kind == "RateCard":
            return {}
        if kind == "CloudTenant":
            return self._tenant_status(name, status)
        body = self.reports[name]
        assert body["metadata"]["resourceVersion"] == resource_version
        assert not (body.get("status") or {}).get("closed"), f"{name} changed after closing"
        self.version += 1
        body["status"] = {**(body.get("status") or {}), **without_nulls(status)}
        body["metadata"]["resourceVersion"] = str(self.version)
        self.writes.append((name, copy.deepcopy(body["status"])))
        return copy.deepcopy(body)

    def _tenant_status(self, name: str, status: dict[str, Any]) -> dict[str, Any]:
        for found in self.tenants:
            if found["metadata"]["name"] == name:
                found["status"] = {**(found.get("status") or {}), **without_nulls(status)}
                self.bills.append((name, copy.deepcopy(status)))
                return copy.deepcopy(found)
        raise client.ApiError(f'cloudtenants "{name}" not found', 404, "NotFound")

    def writes_of(self, name: str) -> list[dict[str, Any]]:
        return [status for written, status in self.writes if written == name]


def selected(labels: dict[str, str], selector: str | None) -> bool:
    """The two selector forms metering sends: `key in (a,b)` and `key=value`."""
    if listed := re.fullmatch(r"(\S+) in \((.*)\)", selector or ""):
        return labels.get(listed[1]) in listed[2].split(",")
    if equal := re.fullmatch(r"(\S+)=(\S+)", selector or ""):
        return labels.get(equal[1]) == equal[2]
    return True


def without_nulls(value: Any) -> Any:
    """As the API server stores a status: a null field (not nullable in the CRD) is dropped."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def tenant(
    name: str, tier: str = "city", deleting: bool = False, uid: str = "", created: str = ""
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if uid:
        metadata["uid"] = uid
    if created:
        metadata["creationTimestamp"] = created
    if deleting:
        metadata["deletionTimestamp"] = "2027-01-10T08:00:00Z"
    return {"metadata": metadata, "spec": {"unit": {"tier": tier}}, "status": {}}
