"""Test reads straight from the API server: what `kubectl get -o json` prints, without a process.

The integration suite polls the API server thousands of times; a kubectl process per poll cost
a third of the suite's CPU. A `Reader` resolves a kind the way kubectl does (plural, singular,
kind or short name, optionally `.group`) from the server's aggregated discovery and GETs it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Resource:
    """One served resource at its preferred version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    names: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def resources_of(discovery: dict[str, Any]) -> list[Resource]:
    """Every top-level resource of an aggregated discovery document, preferred version first."""
    found: list[Resource] = []
    for group in discovery.get("items") or []:
        group_name = (group.get("metadata") or {}).get("name") or ""
        versions = group.get("versions") or []
        if not versions:
            continue
        preferred = versions[0]  # aggregated discovery lists versions by preference
        for item in preferred.get("resources") or []:
            plural = item["resource"]
            kind = (item.get("responseKind") or {}).get("kind") or ""
            names = {plural, item.get("singularResource") or "", kind.lower()}
            names.update(item.get("shortNames") or [])
            found.append(
                Resource(
                    group=group_name,
                    version=preferred["version"],
                    plural=plural,
                    kind=kind,
                    namespaced=item.get("scope") == "Namespaced",
                    names=frozenset(name for name in names if name),
                )
            )
    return found


def without_managed_fields(item: dict[str, Any]) -> dict[str, Any]:
    """kubectl hides managedFields unless asked (`--show-managed-fields`)."""
    (item.get("metadata") or {}).pop("managedFields", None)
    return item


class Reader:
    """GETs for one kubeconfig's admin, with kinds resolved like kubectl resolves them."""

    def __init__(self, kubeconfig: Path) -> None:
        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._resources: list[Resource] = []
        self._lock = threading.Lock()

    def resolve(self, kind: str) -> Resource | None:
        """The resource `kind` names, or None when the server serves nothing by that name."""
        name, _, group = kind.lower().partition(".")
        found = self._match(name, group)
        if found is None:
            with self._lock:  # a CRD may have been created since the last discovery
                self._resources = self._discover()
            found = self._match(name, group)
        return found

    def get(self, resource: Resource, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            body = self._get_json(resource.path(namespace or "default", name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise AssertionError(f"GET {resource.plural}/{name} failed: {error}") from error
        return without_managed_fields(body)

    def collection(
        self, resource: Resource, namespace: str | None, selector: str | None
    ) -> dict[str, Any]:
        """The objects as kubectl's `List`: namespace None means every namespace."""
        query = [("labelSelector", selector)] if selector else []
        try:
            body = self._get_json(resource.path(namespace), query)
        except ApiException as error:
            raise AssertionError(f"LIST {resource.plural} failed: {error}") from error
        items = [
            without_managed_fields({"apiVersion": resource.api_version, "kind": resource.kind, **i})
            for i in body.get("items") or []
        ]
        return {
            "apiVersion": "v1",
            "items": items,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        *,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """One call as the kubeconfig's user: the HTTP status and the decoded answer (an
        error's Status too)."""
        try:
            response = self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=TIMEOUT_SECONDS,
            )
            status, data = int(response.status), response.data
        except ApiException as error:
            status, data = int(error.status or 0), error.body or b""
        except HTTPError as error:
            raise AssertionError(f"{method} {path} failed: {error}") from error
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {
                "message": data.decode(errors="replace") if isinstance(data, bytes) else str(data)
            }
        return status, decoded if isinstance(decoded, dict) else {"message": str(decoded)}

    def _match(self, name: str, group: str) -> Resource | None:
        for resource in self._resources:
            if name in resource.names and group in ("", resource.group):
                return resource
        return None

    def _discover(self) -> list[Resource]:
        core = self._get_json("/api", accept=DISCOVERY)
        groups = self._get_json("/apis", accept=DISCOVERY)
        return resources_of(core) + resources_of(groups)

    def _get_json(
        self,
        path: str,
        query: list[tuple[str, str]] | None = None,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        try:
            response = self._api.call_api(
                path,
                "GET",
                query_params=query or [],
                header_params={"Accept": accept},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=TIMEOUT_SECONDS,
            )
        except HTTPError as error:
            raise AssertionError(f"GET {path} failed: {error}") from error
        found: dict[str, Any] = json.loads(response.data)
        return found


_readers: dict[tuple[Path, int], Reader] = {}
_readers_lock = threading.Lock()


def reader_for(kubeconfig: Path) -> Reader:
    """One Reader per kubeconfig file as it is now (a rewritten file gets a new one)."""
    key = (kubeconfig, kubeconfig.stat().st_mtime_ns)
    with _readers_lock:
        if key not in _readers:
            _readers[key] = Reader(kubeconfig)
        return _readers[key]
