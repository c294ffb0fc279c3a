"""One connection to one API server: get/list/apply/delete/patch_status, retried, writes counted."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    ApiException,
    ConflictError,
    NotFoundError,
    ResourceNotFoundError,
)

from govcloud import __version__, constants

Manifest = dict[str, Any]
WriteHook = Callable[[str, str], None]

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
RETRY_DEADLINE = 30.0
# Backoff between attempts: doubling from RETRY_BASE to RETRY_CAP, each delay drawn from its
# upper half so that clients throttled at the same instant do not come back in step.
RETRY_BASE, RETRY_CAP = 0.1, 2.0
# A Retry-After (429 from API Priority and Fairness, 503 from a proxy) is honoured up to this:
# a sub-center's API server is not trusted to park a pass for an hour.
RETRY_AFTER_CAP = 10.0
USER_AGENT = f"govcloud-operator/{__version__}"


class ApiError(RuntimeError):
    """An API call failed for good; `status` is the HTTP code (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _message(error: ApiException) -> tuple[int, str, str]:
    status = int(getattr(error, "status", 0) or 0)
    body = getattr(error, "body", None) or ""
    try:
        decoded = json.loads(body)
        return status, str(decoded.get("message", body)), str(decoded.get("reason", ""))
    except (TypeError, ValueError):
        return status, str(body or error), ""


def load_api_client(kubeconfig: str | None = None) -> k8s_client.ApiClient:
    """An ApiClient from a kubeconfig file, else $KUBECONFIG/~/.kube/config, else in-cluster."""
    configuration = k8s_client.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_kube_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_incluster_config(client_configuration=configuration)
    return api_client_from(configuration)


# Connections kept per API server: each watch of the caches holds one for good, and the
# reconcile, probe and metering threads need theirs besides (else every call reconnects).
CONNECTION_POOL = 64


def api_client_from(configuration: k8s_client.Configuration) -> k8s_client.ApiClient:
    configuration.retries = False
    configuration.connection_pool_maxsize = CONNECTION_POOL
    api = k8s_client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


class Cluster:
    """Typed-enough helpers over the dynamic client for one API server."""

    def __init__(
        self,
        api: k8s_client.ApiClient,
        name: str = "hub",
        on_write: WriteHook | None = None,
        on_read: WriteHook | None = None,
    ):
        self.name = name
        self.api = api
        self._on_write = on_write
        self._on_read = on_read
        self._dynamic: DynamicClient | None = None
        # The discovery cache of the kubernetes client is not thread-safe: one thread
        # invalidating it while another searches it fails the search (KeyError).
        self._discovery = threading.RLock()

    @property
    def dynamic(self) -> DynamicClient:
        with self._discovery:
            if self._dynamic is None:
                self._dynamic = self._retry("discovery", lambda: DynamicClient(self.api))
            return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        with self._discovery:
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self.dynamic.resources.invalidate_cache()
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as error:
                raise ApiError(
                    f"{kind} ({api_version}) is not served by {self.name}", 404
                ) from error

    # -- reads -----------------------------------------------------------------------------

    def changed_at(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> float | None:
        """When (time.monotonic) the object last changed as this client saw it; None when it
        does not know (no cache of the kind, as here)."""
        del api_version, kind, name, namespace
        return None

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Manifest | None:
        resource = self.resource(api_version, kind)
        self._counted_read("get", kind)
        try:
            found = self._retry("get", lambda: resource.get(name=name, namespace=namespace))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return _to_dict(found)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        retry_deadline: float = RETRY_DEADLINE,
    ) -> list[Manifest]:
        """Every object of the kind; transient failures are retried for `retry_deadline` s."""
        resource = self.resource(api_version, kind)
        self._counted_read("list", kind)
        found = self._retry(
            "list",
            lambda: resource.get(namespace=namespace, label_selector=label_selector),
            retry_deadline,
        )
        items: Iterable[Any] = found.items or []
        return [_to_dict(item) for item in items]

    # -- writes ----------------------------------------------------------------------------

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply as the operator's field manager, taking ownership of set fields."""
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        self._count("apply", manifest["kind"], meta["name"], meta.get("namespace"))
        applied = self._retry(
            "apply",
            lambda: resource.server_side_apply(
                body=manifest,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=constants.FIELD_MANAGER,
                force_conflicts=True,
            ),
        )
        return _to_dict(applied)

    def create(self, manifest: Manifest) -> Manifest:
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        self._count(
            "create",
            manifest["kind"],
            meta.get("name") or meta.get("generateName"),
            meta.get("namespace"),
        )
        created = self._retry(
            "create",
            lambda: resource.create(body=manifest, namespace=manifest["metadata"].get("namespace")),
        )
        return _to_dict(created)

    def patch_json(
        self,
        api_version: str,
        kind: str,
        name: str,
        operations: Sequence[Manifest],
        namespace: str | None = None,
    ) -> Manifest:
        """An RFC 6902 JSON patch: list edits (append, test-and-remove) that race no one."""
        resource = self.resource(api_version, kind)
        self._count("patch", kind, name, namespace)
        patched = self._retry(
            "patch",
            lambda: resource.patch(
                body=[*operations],
                name=name,
                namespace=namespace,
                content_type="application/json-patch+json",
            ),
        )
        return _to_dict(patched)

    def add_finalizer(self, body: Manifest, finalizer: str) -> Manifest:
        """Append `finalizer` to the object's finalizers, leaving everyone else's alone."""
        metadata = body["metadata"]
        existing = metadata.get("finalizers")
        operation: Manifest = (
            {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}
            if existing
            else {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}
        )
        return self.patch_json(
            body["apiVersion"],
            body["kind"],
            metadata["name"],
            [operation],
            metadata.get("namespace"),
        )

    def remove_finalizer(self, body: Manifest, finalizer: str) -> Manifest | None:
        """Remove `finalizer` if it is still where we saw it (test-and-remove); None if gone."""
        metadata = body["metadata"]
        finalizers = metadata.get("finalizers") or []
        if finalizer not in finalizers:
            return None
        index = finalizers.index(finalizer)
        path = f"/metadata/finalizers/{index}"
        try:
            return self.patch_json(
                body["apiVersion"],
                body["kind"],
                metadata["name"],
                [{"op": "test", "path": path, "value": finalizer}, {"op": "remove", "path": path}],
                metadata.get("namespace"),
            )
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def patch_merge(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Manifest,
        namespace: str | None = None,
    ) -> Manifest:
        resource = self.resource(api_version, kind)
        self._count("patch", kind, name, namespace)
        patched = self._retry(
            "patch",
            lambda: resource.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            ),
        )
        return _to_dict(patched)

    def patch_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        status: Manifest,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> Manifest:
        """Merge-patch the status; with `resource_version`, only if nobody wrote since (409)."""
        resource = self.resource(api_version, kind).status
        body: Manifest = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self._count("patch_status", kind, name, namespace)
        patched = self._retry(
            "patch_status",
            lambda: resource.patch(
                body=body,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            ),
        )
        return _to_dict(patched)

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
    ) -> bool:
        """Delete one object; False when it was already gone."""
        resource = self.resource(api_version, kind)
        body: Manifest = {"propagationPolicy": "Background"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        self._count("delete", kind, name, namespace)
        try:
            self._retry(
                "delete", lambda: resource.delete(name=name, namespace=namespace, body=body)
            )
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    # -- plumbing --------------------------------------------------------------------------

    def _count(self, verb: str, kind: str, name: str | None, namespace: str | None) -> None:
        # Names only, never bodies: with --verbose, which object a write counter counts.
        log.debug("write %s %s %s%s", verb, kind, f"{namespace}/" if namespace else "", name)
        if self._on_write is not None:
            self._on_write(verb, kind)

    def _counted_read(self, verb: str, kind: str) -> None:
        if self._on_read is not None:
            self._on_read(verb, kind)

    def _retry(
        self, what: str, call: Callable[[], Any], retry_deadline: float = RETRY_DEADLINE
    ) -> Any:
        """Retry throttling (429), 5xx ('storage is (re)initializing', etcd down) and transient
        network failures with jittered exponential backoff until `retry_deadline` s are spent."""
        deadline = time.monotonic() + retry_deadline
        attempt = 0
        while True:
            try:
                return call()
            except (NotFoundError, ConflictError) as error:
                status, message, reason = _message(error)
                raise ApiError(message, status, reason) from error
            except ApiException as error:
                status, message, reason = _message(error)
                if status not in RETRYABLE_STATUS or time.monotonic() > deadline:
                    raise ApiError(f"{what} failed: {message}", status, reason) from error
                delay = retry_delay(attempt, retry_after(error))
                log.debug("%s on %s: HTTP %s, retrying in %.2fs", what, self.name, status, delay)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                if time.monotonic() > deadline:
                    raise ApiError(f"{what} failed: {self.name} unreachable: {error}") from error
                delay = retry_delay(attempt)
            attempt += 1
            # Never past the deadline (a Retry-After may ask for more): one last try there.
            time.sleep(min(delay, max(0.0, deadline - time.monotonic()) + 0.01))


def retry_delay(attempt: int, server_hint: float | None = None) -> float:
    """The wait before retry number `attempt` + 1: jittered exponential backoff, and never
    sooner than the server asked (Retry-After, capped), jittered above it as well."""
    ceiling = min(RETRY_CAP, RETRY_BASE * 2 ** min(attempt, 16))
    delay = random.uniform(ceiling / 2, ceiling)
    if server_hint is not None and server_hint > 0:
        hint = min(server_hint, RETRY_AFTER_CAP)
        delay = max(delay, random.uniform(hint, hint * 1.2))
    return delay


def retry_after(error: ApiException) -> float | None:
    """The seconds of an answer's Retry-After header, if it has one in seconds."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: the backoff alone decides
        return None


def _to_dict(value: Any) -> Manifest:
    if isinstance(value, dict):
        return value
    converted: Manifest = value.to_dict()
    return converted
