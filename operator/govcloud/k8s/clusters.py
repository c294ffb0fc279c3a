"""Clients for sub-center clusters, built from their kubeconfig Secrets and rebuilt on rotation.

Each probe reads the Secret (one GET) and fingerprints it; tenant passes and metering use what
the last probe read, so rotating credentials takes effect on the next probe without a restart
and a pass costs no GET. A changed fingerprint builds a new client. The client is built from
an `Endpoint` (server, CA, client certificate and key, token) and nothing else: the kubernetes
config loader, which runs exec plugins and reads files, is never used on a site's kubeconfig.
Errors describe what is wrong, never the credentials.

A site is untrusted and may be dead: each has a gate (`SiteGate`) that dials nothing while its
probes hold it unreachable and lets only a few calls wait on it at once (a bulkhead); calls
fail fast instead of retrying for long; LISTs are paginated and capped, and what a site
reports (quantities, labels) is parsed defensively.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import logging
import os
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException

from govcloud.desired import quantity
from govcloud.k8s import cache, client

log = logging.getLogger(__name__)

PROBE_OUTCOMES = ("Healthy", "Unreachable", "Unhealthy", "Unauthorized", "InvalidCredentials")
# Every call to a sub-center is bounded (seconds to connect, seconds per read): a site that
# accepts connections but never answers costs a reconcile a bounded wait, not a thread forever.
REQUEST_TIMEOUT = (5.0, 15.0)
# A failed call to a site is retried this long at most (429, 5xx, a dropped connection), not
# for the hub's 30 s: the pass reports the site and its scheduler retries later.
SITE_RETRY_DEADLINE = 2.0
# The bulkhead: calls to one site in flight at once, fewer than half the default 8 workers,
# so a site that does not answer can hold only these threads. A call waits for a slot at most
# SLOT_WAIT s, and not at all once a call in flight has run SLOW_CALL s (the site is slow).
SITE_CALLS = 3
SLOT_WAIT = 10.0
SLOW_CALL = 3.0
# LISTs of a site are paginated; a site holding more objects of a kind than the cap is refused
# (GOVCLOUD_SITE_LIST_CAP), not read: a hostile or broken site cannot exhaust our memory.
LIST_PAGE = 500
SITE_LIST_CAP = 10_000


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


class SiteRefusedError(client.ApiError):
    """A call to a site not attempted (known unreachable, bulkhead full) or its answer refused
    (too large); the message is ours, never the site's."""


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
    site's watch-fed caches); a client replaced or forgotten is stopped if it can be. Each
    site's `SiteGate` outlives its clients (a rotation keeps what the probes found), and the
    credentials the last read found are kept for the passes that use the site.
    """

    def __init__(
        self,
        hub: client.Cluster,
        on_write: client.WriteHook | None = None,
        secret_namespace: str | None = None,
        wrap: Callable[[client.Cluster], Any] | None = None,
        on_read: client.WriteHook | None = None,
        *,
        site_calls: int = SITE_CALLS,
        list_cap: int = SITE_LIST_CAP,
    ) -> None:
        self.hub = hub
        self.secret_namespace = secret_namespace  # None: any (only unit tests build it so)
        self.site_calls = site_calls
        self.list_cap = list_cap
        self._on_write = on_write
        self._wrap = wrap
        self._on_read = on_read
        self._lock = threading.Lock()
        self._clusters: dict[str, tuple[str, client.Cluster]] = {}
        self._uids: dict[str, tuple[str, str]] = {}
        self._credentials: dict[tuple[str, SecretRef], Credentials] = {}
        self._gates: dict[str, SiteGate] = {}

    def configure(self, *, site_calls: int, list_cap: int) -> None:
        """Set the bulkhead and the LIST cap (the operator's settings) for every site."""
        with self._lock:
            self.site_calls, self.list_cap = site_calls, list_cap
            gates = list(self._gates.values())
        for gate in gates:
            gate.limit = site_calls

    def read_credentials(
        self, ref: SecretRef, *, site: str = "", fresh: bool = True
    ) -> Credentials:
        """`read_credentials` from the hub, only ever from the registry's Secret namespace.

        Without `fresh`, what the last read for `site` found (a pass reads no Secret: the
        probes do, so a rotation is seen on the site's next probe); an unusable Secret is
        forgotten, so that the passes read it again themselves.
        """
        key = (site, ref)
        if not fresh:
            with self._lock:
                known = self._credentials.get(key)
            if known is not None:
                return known
        try:
            found = read_credentials(self.hub, ref, self.secret_namespace)
        except CredentialsError:
            with self._lock:
                self._credentials.pop(key, None)
            raise
        with self._lock:
            self._credentials[key] = found
        return found

    def gate(self, name: str) -> SiteGate:
        """The site's gate (made on first use)."""
        with self._lock:
            found = self._gates.get(name)
            if found is None:
                found = self._gates[name] = SiteGate(name, limit=self.site_calls)
            return found

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
            _bounded(api, REQUEST_TIMEOUT),
            name,
            on_write=self._on_write,
            on_read=self._on_read,
            gate=self.gate(name),
            list_cap=self.list_cap,
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
            self._gates.pop(name, None)
            for key in [key for key in self._credentials if key[0] == name]:
                del self._credentials[key]
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


class SiteGate:
    """What every call to one site passes: a breaker and a bulkhead.

    The breaker: while the site's probes hold it unreachable (`mark`), nothing is dialled; a
    call fails at once. Until this process has probed the site, the SubCenter's status says
    (`observe`), so a restart does not dial a site known to be dead either. The bulkhead: at
    most `limit` calls wait on the site at once; another waits for a slot only while the site
    answers briskly, so a site that hangs holds `limit` threads and fails the rest at once.
    """

    def __init__(
        self,
        site: str,
        *,
        limit: int = SITE_CALLS,
        slot_wait: float = SLOT_WAIT,
        slow_call: float = SLOW_CALL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.limit = limit
        self.slot_wait = slot_wait
        self.slow_call = slow_call
        self._clock = clock
        self._changed = threading.Condition()
        self._in_flight: dict[int, float] = {}  # id of a call -> when it started
        self._unreachable = ""
        self._probed = False
        self.refused = 0  # calls failed at once (breaker or bulkhead), for tests and logs

    @property
    def unreachable(self) -> str:
        """Why the site is held unreachable ("": it is not)."""
        return self._unreachable

    @property
    def in_flight(self) -> int:
        with self._changed:
            return len(self._in_flight)

    def mark(self, unreachable: str) -> None:
        """What the site's probe found: "" (it answered) or why it is unreachable."""
        with self._changed:
            self._probed = True
            self._unreachable = unreachable

    def observe(self, unreachable: str) -> None:
        """What the SubCenter's status says, heeded only until this process has probed."""
        with self._changed:
            if not self._probed:
                self._unreachable = unreachable

    def check(self, what: str) -> None:
        """SiteRefusedError if the site is held unreachable: nothing is dialled."""
        why = self._unreachable
        if why:
            self.refused += 1
            raise SiteRefusedError(
                f"{what} not attempted: sub-center {self.site} is unreachable ({why})"
            )

    @contextlib.contextmanager
    def call(self, what: str) -> Iterator[None]:
        """Hold one of the site's slots for the call (SiteRefusedError if none is to be had)."""
        self.check(what)
        token = object()
        with self._changed:
            if not self._wait_for_slot():
                self.refused += 1
                raise SiteRefusedError(
                    f"{what} not attempted: sub-center {self.site} is slow to answer"
                    f" ({len(self._in_flight)} calls to it still waiting)"
                )
            self._in_flight[id(token)] = self._clock()
        try:
            yield
        finally:
            with self._changed:
                self._in_flight.pop(id(token), None)
                self._changed.notify()

    def _wait_for_slot(self) -> bool:
        deadline = self._clock() + self.slot_wait
        while len(self._in_flight) >= max(1, self.limit):
            now = self._clock()
            if now >= deadline or now - min(self._in_flight.values()) >= self.slow_call:
                return False
            self._changed.wait(min(0.1, deadline - now))
        return True


class SiteCluster(client.Cluster):
    """A sub-center's client. What a site answers is its own text (internal addresses, or
    whatever a hostile site wants shown): its errors say only what failed and the HTTP status,
    so nothing of it reaches a status, an Event or a log line tenants can read. Every call
    passes the site's gate and fails fast; a LIST is paginated and capped at `list_cap`."""

    def __init__(
        self,
        api: k8s_client.ApiClient,
        name: str,
        on_write: client.WriteHook | None = None,
        on_read: client.WriteHook | None = None,
        *,
        gate: SiteGate | None = None,
        list_cap: int = SITE_LIST_CAP,
    ) -> None:
        super().__init__(api, name, on_write=on_write, on_read=on_read)
        self.gate = gate if gate is not None else SiteGate(name)
        self.list_cap = list_cap

    def resource(self, api_version: str, kind: str) -> Any:
        # Also what the site's caches ask before each LIST or WATCH: they stop dialling too.
        self.gate.check("discovery")
        return super().resource(api_version, kind)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        retry_deadline: float = client.RETRY_DEADLINE,
    ) -> list[client.Manifest]:
        """Every object of the kind, page by page; SiteRefusedError past `list_cap` objects."""
        resource = self.resource(api_version, kind)
        items: list[client.Manifest] = []
        token: str | None = None
        while True:
            self._counted_read("list", kind)
            page = self._retry(
                "list",
                functools.partial(
                    resource.get,
                    namespace=namespace,
                    label_selector=label_selector,
                    limit=LIST_PAGE,
                    _continue=token,
                ),
                retry_deadline,
            ).to_dict()
            found = page.get("items") or []
            if len(found) > LIST_PAGE or len(items) + len(found) > self.list_cap:
                raise too_many(self.name, kind, self.list_cap)
            items += [untrusted(kind, item) for item in found]
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def _retry(self, what: str, call: Any, retry_deadline: float = client.RETRY_DEADLINE) -> Any:
        with self.gate.call(what):
            try:
                return super()._retry(what, call, min(retry_deadline, SITE_RETRY_DEADLINE))
            except client.ApiError as error:
                raise client.ApiError(
                    site_error(what, self.name, error.status, error.reason),
                    error.status,
                    error.reason if _REASON_RE.match(error.reason) else "",
                ) from None


def too_many(site: str, kind: str, cap: int) -> SiteRefusedError:
    return SiteRefusedError(
        f"sub-center {site} holds more than {cap} {kind} objects (GOVCLOUD_SITE_LIST_CAP):"
        " they are not read"
    )


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


def probe(cluster: client.Cluster, timeout: float, node_cap: int = SITE_LIST_CAP) -> RawProbe:
    """Ask a cluster for /readyz, its version and its nodes, each call bounded by `timeout`.

    The nodes are listed page by page; a site with more than `node_cap` is Unhealthy (its
    capacity is not read), and nodes reporting absurd allocatable amounts are not counted.
    """
    started = time.monotonic()
    try:
        return _ask(cluster, timeout, node_cap, started)
    except TooManyNodesError:
        return _failed(
            "Unhealthy",
            f"the site lists more than {node_cap} nodes (GOVCLOUD_SITE_LIST_CAP): its capacity"
            " is not read",
            started,
        )
    except ApiException as error:
        if error.status in (401, 403):
            return _refused(error.status, started)
        return _failed("Unhealthy", f"the API server answered {error.status}", started)
    except (urllib3.exceptions.HTTPError, ssl.SSLError, OSError) as error:
        return _classify_connection_error(error, started)


def _ask(cluster: client.Cluster, timeout: float, node_cap: int, started: float) -> RawProbe:
    ready_status, _ = _get_raw(cluster.api, "/readyz", timeout)
    if ready_status in (401, 403):
        return _refused(ready_status, started)
    if ready_status != 200:  # the body is the site's text: never echoed into status
        return _failed("Unhealthy", f"/readyz answered {ready_status}", started)
    version = k8s_client.VersionApi(cluster.api).get_code(_request_timeout=timeout)
    nodes = list_nodes(cluster.api, timeout, node_cap)
    return RawProbe(
        outcome="Healthy",
        message="/readyz ok",
        latency_seconds=time.monotonic() - started,
        version=str(version.git_version)[:64],
        node_count=len(nodes),
        allocatable=_sum_allocatable(nodes),
    )


def _refused(status: int, started: float) -> RawProbe:
    return _failed("Unauthorized", f"the API server refused the credentials ({status})", started)


class TooManyNodesError(Exception):
    """The site lists more nodes than the cap."""


def list_nodes(api: k8s_client.ApiClient, timeout: float, cap: int) -> list[Any]:
    """The site's nodes, page by page; TooManyNodesError past `cap`."""
    core = k8s_client.CoreV1Api(api)
    nodes: list[Any] = []
    token: str | None = None
    while True:
        page = core.list_node(_request_timeout=timeout, limit=LIST_PAGE, _continue=token)
        found = page.items or []
        if len(found) > LIST_PAGE or len(nodes) + len(found) > cap:
            raise TooManyNodesError
        nodes += found
        token = (page.metadata._continue if page.metadata else None) or None
        if token is None:
            return nodes


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
    """Allocatable cpu/memory/pods summed over the nodes, as exact quantity strings.

    A node whose allocatable is not a sane quantity (unparsable, negative, absurdly large) is
    not counted at all: a site cannot claim capacity it does not have.
    """
    totals: dict[str, Decimal] = {"cpu": Decimal(0), "memory": Decimal(0), "pods": Decimal(0)}
    refused = 0
    for node in nodes:
        allocatable = (node.status.allocatable or {}) if node.status else {}
        amounts = {key: amount(key, allocatable[key]) for key in totals if key in allocatable}
        if any(value is None for value in amounts.values()):
            refused += 1
            continue
        for resource, value in amounts.items():
            totals[resource] += value or Decimal(0)
    if refused:
        log.warning("%d nodes report absurd allocatable amounts: not counted", refused)
    return {
        resource: _format(value, binary=resource == "memory") for resource, value in totals.items()
    }


# -- what a site reports is untrusted input ------------------------------------------------

# The largest amount of one resource one object may report: a million cores, an exbibyte,
# a billion of anything counted. Beyond, the value is refused (not counted, not billed).
_MOST_CORES = Decimal(10**6)
_MOST_BYTES = Decimal(2**60)
_MOST_COUNT = Decimal(10**9)
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_./]{0,251}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def amount(resource: str, text: Any) -> Decimal | None:
    """The quantity `text` of `resource` a site reports, or None if it is not sane."""
    if not isinstance(text, str | int) or isinstance(text, bool):
        return None
    try:
        value = quantity.parse(str(text))
    except ValueError:
        return None
    return value if Decimal(0) <= value <= _most(resource) else None


def _most(resource: str) -> Decimal:
    name = resource.rsplit("/", 1)[-1]
    if name.endswith("cpu"):
        return _MOST_CORES
    if any(word in name for word in ("memory", "storage", "hugepages-")):
        return _MOST_BYTES
    return _MOST_COUNT


def sane_amounts(values: Any) -> dict[str, str]:
    """The resource -> quantity entries of `values` that are sane; the rest are dropped."""
    if not isinstance(values, Mapping):
        return {}
    return {
        str(key): str(text)
        for key, text in values.items()
        if isinstance(key, str) and _RESOURCE_NAME.match(key) and amount(key, text) is not None
    }


def sane_labels(values: Any) -> dict[str, str]:
    """The labels of `values` whose value is a valid label value; the rest are dropped."""
    if not isinstance(values, Mapping):
        return {}
    return {
        str(key): text
        for key, text in values.items()
        if isinstance(key, str)
        and len(key) <= 317
        and isinstance(text, str)
        and _LABEL_VALUE.match(text)
    }


def untrusted(kind: str, item: Any) -> client.Manifest:
    """An object a site listed, made safe to read: labels and, for a ResourceQuota, its
    amounts (spec.hard, status.hard, status.used) keep only what is sane. Dropped values are
    logged, never billed."""
    if not isinstance(item, dict):
        return {}
    metadata = item.get("metadata")
    if isinstance(metadata, dict) and "labels" in metadata:
        metadata["labels"] = sane_labels(metadata.get("labels"))
    if kind != "ResourceQuota":
        return item
    dropped = 0
    for part, key in (("spec", "hard"), ("status", "hard"), ("status", "used")):
        section = item.get(part)
        if isinstance(section, dict) and key in section:
            kept = sane_amounts(section.get(key))
            dropped += len(section.get(key) or {}) - len(kept)
            section[key] = kept
    if dropped:
        log.warning(
            "a ResourceQuota of a sub-center reports %d absurd amounts: they are not read", dropped
        )
    return item


def _format(value: Decimal, *, binary: bool = False) -> str:
    """Whole amounts exactly (memory as 128Gi rather than 137438953472), others in millis."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return quantity.to_string(Decimal(int(normalized)), binary=binary)
    return f"{int(value * 1000)}m"
