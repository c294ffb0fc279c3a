"""Every version of one tenant's ResourceQuotas, streamed by a watch: what the over-commit
invariant is checked against in the fencing and free-quota tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch

from govcloud.desired import meta, quantity


@dataclass
class QuotaVersions:
    """Run `run` on a thread; `on_version` is called with every version of the tenant's quota
    in any namespace, `latest` holding the newest version of each namespace's."""

    api: Any
    tenant: str
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: int = 0
    errors: list[Any] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        core = k8s_client.CoreV1Api(self.api)
        since: dict[str, str] = {}
        while not self.stop.is_set():
            for event in k8s_watch.Watch().stream(
                core.list_resource_quota_for_all_namespaces,
                label_selector=f"govcloud.io/tenant={self.tenant}",
                timeout_seconds=2,
                **since,
            ):
                if event["type"] == "ERROR":  # e.g. 410 Gone: versions were missed
                    self.errors.append(event["raw_object"])
                    return
                quota = core.api_client.sanitize_for_serialization(event["object"])
                since = {"resource_version": quota["metadata"]["resourceVersion"]}
                if quota["metadata"]["name"] == meta.QUOTA_NAME:
                    self.versions += 1
                    self.latest[quota["metadata"]["namespace"]] = quota
                    self.on_version()

    def on_version(self) -> None:
        """Called after each version is recorded in `latest`."""

    def total(self, part: str, field_name: str, resource: str) -> int:
        """The sum over the tenant's namespaces of `<part>.<field_name>[resource]`, in milli."""
        return sum(
            quantity.to_milli(((item.get(part) or {}).get(field_name) or {}).get(resource, "0"))
            for item in self.latest.values()
        )
