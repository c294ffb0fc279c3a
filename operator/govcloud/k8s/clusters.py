"""Clients for sub-center clusters, built from their kubeconfig Secrets and rebuilt on rotation.

The Secret is read on every use (one GET) and fingerprinted; a changed fingerprint builds a
new client, so rotating credentials takes effect on the next probe without a restart. The
client is built from an `Endpoint` (server, CA, client certificate and key, token) and nothing
else: the kubernetes config loader, which runs exec plugins and reads files, is never used on
a site's kubeconfig. Errors describe what is wrong, never the credentials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException
from kubernetes.utils import parse_quantity

from govcloud.desired import quantity
from govcloud.k8s import cache, client

PROBE_OUTCOMES = ("Healthy", "Unreachable", "Unhealthy", "Unauthorized", "InvalidCredentials")
# Every call to a sub-center is bounded (seconds to connect, seconds per read): a site that
# accepts connections but never answers costs a reconcile a bounded wait, not a thread forever.
REQUEST_TIMEOUT = (5.0, 15.0)


class CredentialsError(Exception):
    """The kubeconfig Secret is missing or unusable; `reason` is a condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class SecretRef:
    name: str
    namespace: str
    key: str = "kubeconfig"


@dataclass(frozen=True)
class Credentials:
    """A parsed kubeconfig and the fingerprint of the Secret data it came from."""

    kubeconfig: dict[str, Any]
    fingerprint: str


class Endpoint(Protocol):
    """What the hub needs to reach a site: the allow-listed fields of its kubeconfig."""

    @property
    def server(self) -> str: ...
    @property
    def ca_pem(self) -> bytes | None: ...
    @property
    def certificate_pem(self) -> bytes | None: ...
    @property
    def key_pem(self) -> bytes | None: ...
    @property
    def token(self) -> str | None: ...


class SecretOutsideNamespaceError(CredentialsError):
    """The SubCenter names a Secret outside the one namespace kubeconfigs may be read from."""


@dataclass(frozen=True)
class RawProbe:
    """What one probe of a cluster found, before any health policy is applied."""

    outcome: str
    message: str
    latency_seconds: float
    version: str = ""
    node_count: int = 0
    allocatable: dict[str, str] = field(default_factory=dict)


def read_credentials(
    hub: client.Cluster, ref: SecretRef, allowed_namespace: str | None = None
) -> Credentials:
    """The kubeconfig held by the Secret `ref`, parsed; CredentialsError if it is unusable.

    A Secret outside `allowed_namespace` (when given) is refused without being read.
    """
    if allowed_namespace is not None and ref.namespace != allowed_namespace:
        raise SecretOutsideNamespaceError(
            "SecretUnreadable",
            f"Secret {ref.namespace}/{ref.name} is not read: the operator reads kubeconfig"
            f" Secrets only from namespace {allowed_namespace}; store the kubeconfig there",
        )
    try:
        secret = hub.get("v1", "Secret", ref.name, ref.namespace)
    except client.ApiError as error:
        raise CredentialsError(
            "SecretUnreadable", f"cannot read Secret {ref.namespace}/{ref.name}: {error.reason}"
        ) from error
    if secret is None:
        raise CredentialsError(
            "SecretNotFound", f"Secret {ref.namespace}/{ref.name} does not exist"
        )
    encoded = (secret.get("data") or {}).get(ref.key)
    if not encoded:
        raise CredentialsError(
            "SecretKeyMissing", f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
        parsed = yaml.safe_load(raw)
    except (binascii.Error, ValueError, yaml.YAMLError) as error:
        raise CredentialsError(
            "MalformedKubeconfig",
            f"key {ref.key!r} of Secret {ref.namespace}/{ref.name} is not a kubeconfig YAML",
        ) from error
    if not isinstance(parsed, dict):
        raise CredentialsError(
            "MalformedKubeconfig",
            f"key {ref.key!r} of Secret {ref.namespace}/{ref.name} is not a kubeconfig YAML",
        )
    return Credentials(parsed, hashlib.sha256(raw).hexdigest())


class ClusterRegistry:
    """One `client.Cluster` per sub-center, rebuilt whenever its credentials change.

    With `wrap`, each site's client is handed to it once built (the operator wraps it in the
    site's watch-fed caches); a client replaced or forgotten is stopped if it can be.
    """

    def __init__(
        self,
        hub: client.Cluster,
        on_write: client.WriteHook | None = None,
        secret_namespace: str | None = None,
        wrap: Callable[[client.Cluster], Any] | None = None,
        on_read: client.WriteHook | None = None,
    ) -> None:
        self.hub = hub
        self.secret_namespace = secret_namespace  # None: any (only unit tests build it so)
        self._on_write = on_write
        self._wrap = wrap
        self._on_read = on_read
        self._lock = threading.Lock()
        self._clusters: dict[str, tuple[str, client.Cluster]] = {}
        self._uids: dict[str, tuple[str, str]] = {}

    def read_credentials(self, ref: SecretRef) -> Credentials:
        """`read_credentials` from the hub, only ever from the registry's Secret namespace."""
        return read_credentials(self.hub, ref, self.secret_namespace)

    def client_for(self, name: str, fingerprint: str, endpoint: Endpoint) -> client.Cluster:
        with self._lock:
            cached = self._clusters.get(name)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
        try:
            api = api_client_for(endpoint)
        except (ssl.SSLError, ValueError, OSError) as error:
            raise CredentialsError(
                "InvalidKubeconfig", f"the kubeconfig cannot be used: {type(error).__name__}"
            ) from None
        built: Any = SiteCluster(
            _bounded(api, REQUEST_TIMEOUT), name, on_write=self._on_write, on_read=self._on_read
        )
        if self._wrap is not None:
            built = self._wrap(built)
        with self._lock:
            replaced = self._clusters.get(name)
            self._clusters[name] = (fingerprint, built)
        if isinstance(built, cache.CachedCluster):
            built.start()
        if replaced is not None:
            _stop(replaced[1])
        result: client.Cluster = built
        return result

    def kube_system_uid(self, name: str, fingerprint: str, *, fresh: bool = False) -> str:
        """The UID of the kube-system namespace the site's client reaches (cached per
        credentials unless `fresh`); ApiError if it cannot be read."""
        with self._lock:
            cached = self._uids.get(name)
            built = self._clusters.get(name)
        if not fresh and cached is not None and cached[0] == fingerprint:
            return cached[1]
        if built is None or built[0] != fingerprint:
            raise client.ApiError("no client for these credentials", 0)
        namespace = cache.uncached(built[1]).get("v1", "Namespace", "kube-system")
        uid = str(((namespace or {}).get("metadata") or {}).get("uid") or "")
        if not uid:
            raise client.ApiError("the site has no kube-system namespace", 404)
        with self._lock:
            self._uids[name] = (fingerprint, uid)
        return uid

    def cached(self, name: str) -> client.Cluster | None:
        with self._lock:
            found = self._clusters.get(name)
        return found[1] if found else None

    def built(self) -> list[tuple[str, client.Cluster]]:
        """Every site's client built so far, by SubCenter name."""
        with self._lock:
            return [(name, entry[1]) for name, entry in self._clusters.items()]

    def forget(self, name: str) -> None:
        with self._lock:
            forgotten = self._clusters.pop(name, None)
            self._uids.pop(name, None)
        if forgotten is not None:
            _stop(forgotten[1])

    def stop(self) -> None:
        """Stop every site's caches (the operator is stopping)."""
        with self._lock:
            built = [entry[1] for entry in self._clusters.values()]
        for cluster in built:
            _stop(cluster)


def _stop(cluster: Any) -> None:
    if isinstance(cluster, cache.CachedCluster):
        cluster.stop()


class SiteCluster(client.Cluster):
    """A sub-center's client. What a site answers is its own text (internal addresses, or
    whatever a hostile site wants shown): its errors say only what failed and the HTTP status,
    so nothing of it reaches a status, an Event or a log line tenants can read."""

    def _retry(self, what: str, call: Any, retry_deadline: float = client.RETRY_DEADLINE) -> Any:
        try:
            return super()._retry(what, call, retry_deadline)
        except client.ApiError as error:
            raise client.ApiError(
                site_error(what, self.name, error.status, error.reason),
                error.status,
                error.reason if _REASON_RE.match(error.reason) else "",
            ) from None


_REASON_RE = re.compile(r"^[A-Za-z]{1,40}$")


def site_error(what: str, site: str, status: int, reason: str) -> str:
    """The fixed message of a failed call to a site: the call, the site, the HTTP status."""
    if not status:
        return f"{what} failed: sub-center {site} did not answer"
    shown = f" {reason}" if _REASON_RE.match(reason) else ""
    return f"{what} failed: sub-center {site} answered HTTP {status}{shown}"


def api_client_for(endpoint: Endpoint) -> k8s_client.ApiClient:
    """A client for `endpoint` alone: TLS verified against its CA, no proxy, no plugin."""
    configuration = k8s_client.Configuration(host=endpoint.server.rstrip("/"))
    configuration.proxy = None
    if endpoint.token:  # as the kubeconfig loader stores it, which every client path reads
        configuration.api_key = {"authorization": f"Bearer {endpoint.token}"}
    api = client.api_client_from(configuration)
    api.rest_client.pool_manager = urllib3.PoolManager(
        num_pools=4,
        maxsize=client.CONNECTION_POOL,
        cert_reqs=ssl.CERT_REQUIRED,
        ssl_context=tls_context(endpoint),
        retries=False,
    )
    return api


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """Verification against the site's CA (else the system roots), with its client certificate.

    The standard library loads a certificate chain only from files: the pair is written to a
    private temporary directory and removed as soon as it is loaded.
    """
    context = ssl.create_default_context(
        cadata=endpoint.ca_pem.decode("ascii") if endpoint.ca_pem else None
    )
    if endpoint.certificate_pem and endpoint.key_pem:
        with tempfile.TemporaryDirectory(prefix="govcloud-site-") as private:
            certificate, key = os.path.join(private, "tls.crt"), os.path.join(private, "tls.key")
            for path, content in ((certificate, endpoint.certificate_pem), (key, endpoint.key_pem)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(content)
            context.load_cert_chain(certificate, key)
    return context


def _bounded(api: k8s_client.ApiClient, timeout: tuple[float, float]) -> k8s_client.ApiClient:
    """`api`, with `timeout` on every request that does not bring its own.

    It also hands on a TLS failure (e.g. a wrong CA) as the urllib3 SSLError it is: the client
    wraps it in an ApiException without a body, which its own caller then fails to decode
    (AttributeError), so neither the probe nor the retry loop would recognise it.
    """
    request = api.request

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = timeout
        try:
            return request(*args, **kwargs)
        except ApiException as error:
            cause = error.__context__
            if error.body is None and isinstance(cause, urllib3.exceptions.SSLError):
                raise cause from None
            raise

    api.request = bounded
    return api


def probe(cluster: client.Cluster, timeout: float) -> RawProbe:
    """Ask a cluster for /readyz, its version and its nodes, each call bounded by `timeout`."""
    started = time.monotonic()
    try:
        ready_status, _ = _get_raw(cluster.api, "/readyz", timeout)
        if ready_status in (401, 403):
            return _failed(
                "Unauthorized", f"the API server refused the credentials ({ready_status})", started
            )
        if ready_status != 200:  # the body is the site's text: never echoed into status
            return _failed("Unhealthy", f"/readyz answered {ready_status}", started)
        version = k8s_client.VersionApi(cluster.api).get_code(_request_timeout=timeout)
        nodes = k8s_client.CoreV1Api(cluster.api).list_node(_request_timeout=timeout).items
    except ApiException as error:
        if error.status in (401, 403):
            return _failed(
                "Unauthorized", f"the API server refused the credentials ({error.status})", started
            )
        return _failed("Unhealthy", f"the API server answered {error.status}", started)
    except (urllib3.exceptions.HTTPError, ssl.SSLError, OSError) as error:
        return _classify_connection_error(error, started)
    return RawProbe(
        outcome="Healthy",
        message="/readyz ok",
        latency_seconds=time.monotonic() - started,
        version=str(version.git_version),
        node_count=len(nodes),
        allocatable=_sum_allocatable(nodes),
    )


def _get_raw(api: k8s_client.ApiClient, path: str, timeout: float) -> tuple[int, str]:
    try:
        response = api.call_api(
            path,
            "GET",
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=timeout,
            _return_http_data_only=False,
        )
    except ApiException as error:
        return int(error.status or 0), str(error.body or "")
    # Without preloading, the client hands back the urllib3 response itself.
    raw = response[0] if isinstance(response, tuple) else response
    return int(raw.status), bytes(raw.data).decode(errors="replace")


def _classify_connection_error(error: Exception, started: float) -> RawProbe:
    text = repr(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text or isinstance(error, ssl.SSLError):
        return _failed(
            "InvalidCredentials",
            "TLS verification of the sub-center's API server failed (wrong CA in the kubeconfig?)",
            started,
        )
    if "timed out" in text.lower() or "Timeout" in text:
        return _failed("Unreachable", "the API server did not answer in time", started)
    return _failed("Unreachable", "cannot connect to the API server", started)


def _failed(outcome: str, message: str, started: float) -> RawProbe:
    return RawProbe(outcome=outcome, message=message, latency_seconds=time.monotonic() - started)


def _sum_allocatable(nodes: list[Any]) -> dict[str, str]:
    """Allocatable cpu/memory/pods summed over the nodes, as exact quantity strings."""
    totals: dict[str, Decimal] = {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(0)}
    for node in nodes:
        allocatable = (node.status.allocatable or {}) if node.status else {}
        for resource in totals:
            if resource in allocatable:
                totals[resource] += parse_quantity(str(allocatable[resource]))
    return {
        resource: _format(value, binary=resource == "memory") for resource, value in totals.items()
    }


def _format(value: Decimal, *, binary: bool = False) -> str:
    """Whole amounts exactly (memory as 128Gi rather than 137438953472), others in millis."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return quantity.to_string(Decimal(int(normalized)), binary=binary)
    return f"{int(value * 1000)}m"
