"""Helpers for the SubCenter integration tests: kubeconfigs, sites, watches, a silent server."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _tenant_helpers as helpers
import yaml

from govcloud.dev import cluster, testing

Manifest = dict[str, Any]

SYSTEM_NAMESPACE = "govcloud-system"
KUBECONFIG_KEY = "kubeconfig"
# Fast probing so that hysteresis and outages show within seconds.
FAST_PROBE = {"intervalSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 3}
TENANT_KINDS = ("resourcequota", "limitrange", "rolebinding", "networkpolicy")
ADMINS = {"groups": ["county-admins"]}


# -- kubeconfigs ---------------------------------------------------------------------------


def kubeconfig_of(plane: cluster.ControlPlane) -> Manifest:
    """The cluster's admin kubeconfig with everything embedded, as a sub-center Secret holds it."""
    loaded: Manifest = yaml.safe_load(plane.flat_kubeconfig())
    return loaded


def with_server(config: Manifest, server: str) -> Manifest:
    changed = copy.deepcopy(config)
    changed["clusters"][0]["cluster"]["server"] = server
    return changed


def with_ca(config: Manifest, ca_pem: bytes) -> Manifest:
    changed = copy.deepcopy(config)
    changed["clusters"][0]["cluster"]["certificate-authority-data"] = b64(ca_pem)
    return changed


def with_user(config: Manifest, user: Manifest) -> Manifest:
    changed = copy.deepcopy(config)
    changed["users"][0]["user"] = user
    return changed


def cert_user(cert: Path, key: Path) -> Manifest:
    return {
        "client-certificate-data": b64(cert.read_bytes()),
        "client-key-data": b64(key.read_bytes()),
    }


def yaml_text(config: Manifest) -> str:
    return str(yaml.safe_dump(config))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_pieces(config: Manifest) -> list[str]:
    """Strings that would betray the kubeconfig's credentials if they showed up anywhere."""
    user = config["users"][0]["user"]
    pieces: list[str] = []
    if "token" in user:
        token = str(user["token"])
        pieces += [token, *[part for part in token.split(".") if len(part) >= 16]]
    if "client-key-data" in user:
        encoded = str(user["client-key-data"])
        pieces += [encoded, encoded[100:160]]
        pem = base64.b64decode(encoded).decode()
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        pieces += body[1:3]
    return pieces


# -- SubCenters ----------------------------------------------------------------------------


def subcenter_manifest(name: str, secret: str, **spec: Any) -> Manifest:
    body: Manifest = {
        "displayName": f"测试分中心 {name}",
        "region": "肥西县",
        "tier": "county",
        "mode": "federated",
        "maxSecurityLevel": 2,
        "kubeconfigSecretRef": {"name": secret, "namespace": SYSTEM_NAMESPACE},
        "probe": dict(FAST_PROBE),
    }
    body.update(spec)
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "SubCenter",
        "metadata": {"name": name},
        "spec": body,
    }


def condition(body: Manifest | None, kind: str) -> Manifest:
    return helpers.condition(body, kind)


def is_true(body: Manifest | None, kind: str) -> bool:
    return condition(body, kind).get("status") == "True"


def reason(body: Manifest | None, kind: str) -> str | None:
    return condition(body, kind).get("reason")


class Sites:
    """Creates SubCenters and their kubeconfig Secrets, and removes them at the end."""

    def __init__(self, kubectl: testing.Kubectl) -> None:
        self.kubectl = kubectl
        self.names: list[str] = []
        self.secrets: list[str] = []

    def put_secret(self, secret: str, data: dict[str, str]) -> None:
        """Create or replace the Secret (server-side apply: no last-applied copy of the data)."""
        if secret not in self.secrets:
            self.secrets.append(secret)
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": SYSTEM_NAMESPACE},
            "type": "Opaque",
            "data": {key: b64(value.encode()) for key, value in data.items()},
        }
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=subcenter-tests",
            "-f",
            "-",
            stdin=json.dumps(manifest),
        )

    def put_kubeconfig(self, name: str, kubeconfig: Manifest | str) -> None:
        text = kubeconfig if isinstance(kubeconfig, str) else yaml_text(kubeconfig)
        self.put_secret(secret_of(name), {KUBECONFIG_KEY: text})

    def create(self, name: str, kubeconfig: Manifest | str | None, **spec: Any) -> str:
        """A SubCenter `name` whose Secret `<name>-kubeconfig` holds `kubeconfig` (None: none)."""
        if kubeconfig is not None:
            self.put_kubeconfig(name, kubeconfig)
        else:
            self.secrets.append(secret_of(name))
        if name not in self.names:
            self.names.append(name)
        self.kubectl.apply(subcenter_manifest(name, secret_of(name), **spec))
        return name

    def patch(self, name: str, spec: Manifest) -> None:
        self.kubectl("patch", "subcenter", name, "--type=merge", "-p", json.dumps({"spec": spec}))

    def get(self, name: str) -> Manifest:
        found = self.kubectl.get("subcenter", name)
        assert found is not None, f"SubCenter {name} is gone"
        return found

    def wait(
        self,
        name: str,
        predicate: Callable[[Manifest], bool],
        what: str,
        timeout: float = 30.0,
    ) -> Manifest:
        """Poll the SubCenter until `predicate` holds; on timeout, show its last status."""
        last: list[Manifest | None] = [None]

        def check() -> Manifest | None:
            body = self.kubectl.get("subcenter", name)
            last[0] = body
            return body if body is not None and predicate(body) else None

        try:
            found: Manifest = testing.eventually(check, timeout=timeout, what=f"{name}: {what}")
        except testing.WaitTimeoutError as error:
            status = json.dumps((last[0] or {}).get("status"), ensure_ascii=False, indent=1)
            raise testing.WaitTimeoutError(f"{error}\nlast status of {name}: {status}") from None
        return found

    def wait_ready(self, name: str, timeout: float = 30.0) -> Manifest:
        return self.wait(name, lambda body: is_true(body, "Ready"), "Ready=True", timeout)

    def wait_gone(self, name: str, timeout: float = 60.0) -> None:
        try:
            testing.eventually(
                lambda: self.kubectl.get("subcenter", name) is None,
                timeout=timeout,
                what=f"SubCenter {name} to be gone",
            )
        except testing.WaitTimeoutError as error:
            last = self.kubectl.get("subcenter", name) or {}
            shown = {key: last.get(key) for key in ("metadata", "status")}
            raise testing.WaitTimeoutError(
                f"{error}\nlast seen: {json.dumps(shown, ensure_ascii=False, indent=1)}"
            ) from None

    def cleanup(self) -> None:
        """Delete every SubCenter (tenants must be gone first) and its Secret."""
        stuck: list[str] = []
        for name in self.names:
            self.kubectl.run("delete", "subcenter", name, "--ignore-not-found", "--wait=false")
        for name in self.names:
            try:
                self.wait_gone(name, timeout=60)
            except testing.WaitTimeoutError:
                stuck.append(name)
                self.kubectl.run(
                    "patch",
                    "subcenter",
                    name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                )
        for secret in self.secrets:
            self.kubectl.run(
                "delete", "secret", secret, "-n", SYSTEM_NAMESPACE, "--ignore-not-found"
            )
        assert not stuck, f"the operator never let go of the deleted SubCenters {stuck}"


def secret_of(name: str) -> str:
    return f"{name}-kubeconfig"


# -- tenants placed on a sub-center --------------------------------------------------------


def placed_manifest(name: str, site: str, **options: Any) -> Manifest:
    """A valid CloudTenant (MLPS level 2 unless told) placed on the SubCenter `site`."""
    options.setdefault("level", 2)
    options.setdefault("admins", ADMINS)
    manifest = helpers.tenant_manifest(name, **options)
    manifest["spec"]["placement"] = {"subCenter": site}
    return manifest


class PlacedTenants(helpers.Tenants):
    """Like `helpers.Tenants`, and also removes what the tenants left in the sub-center."""

    def __init__(self, kubectl: testing.Kubectl, site_kubectl: testing.Kubectl) -> None:
        super().__init__(kubectl)
        self.site_kubectl = site_kubectl
        self.site_namespaces: list[str] = []

    def place(self, name: str, site: str, **options: Any) -> Manifest:
        return self.apply(placed_manifest(name, site, **options))

    def track_site_namespace(self, namespace: str) -> None:
        self.site_namespaces.append(namespace)

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            leftovers = set(self.site_namespaces)
            for name in self.names:
                for selector in (f"govcloud.io/tenant={name}", f"govcloud.io/orphaned={name}"):
                    found = self.site_kubectl.json("get", "namespaces", "-l", selector)["items"]
                    leftovers.update(item["metadata"]["name"] for item in found)
            for namespace in sorted(leftovers):
                self.site_kubectl.run("delete", "namespace", namespace, "--wait=false")


def tenant_namespaces(kubectl: testing.Kubectl, tenant: str) -> list[str]:
    """Names of the namespaces in `kubectl`'s cluster that are the tenant's, by label or name."""
    found = kubectl.json("get", "namespaces")["items"]
    return sorted(
        item["metadata"]["name"]
        for item in found
        if item["metadata"]["name"].startswith(f"{tenant}-")
        or (item["metadata"].get("labels") or {}).get("govcloud.io/tenant") == tenant
    )


def tenant_objects(kubectl: testing.Kubectl, tenant: str) -> list[str]:
    """kind/namespace/name of every namespaced object labelled as the tenant's in that cluster."""
    found: list[str] = []
    for kind in TENANT_KINDS:
        items = kubectl.json("get", kind, "-A", "-l", f"govcloud.io/tenant={tenant}")["items"]
        found += [f"{kind}/{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items]
    return sorted(found)


def uids(kubectl: testing.Kubectl, tenant: str) -> dict[str, str]:
    """kind/namespace/name -> uid of the tenant's namespaces and objects in that cluster."""
    found: dict[str, str] = {}
    for namespace in tenant_namespaces(kubectl, tenant):
        body = kubectl.get("namespace", namespace)
        assert body is not None
        found[f"namespace//{namespace}"] = body["metadata"]["uid"]
    for kind in TENANT_KINDS:
        items = kubectl.json("get", kind, "-A", "-l", f"govcloud.io/tenant={tenant}")["items"]
        for item in items:
            metadata = item["metadata"]
            found[f"{kind}/{metadata['namespace']}/{metadata['name']}"] = metadata["uid"]
    return found


# -- watching an object --------------------------------------------------------------------


class Watch:
    """Every version of one object, as `kubectl get --watch` streams it, kept in a list."""

    def __init__(self, kubectl: testing.Kubectl, kind: str, name: str) -> None:
        argv = kubectl._argv(["get", kind, name, "--watch", "-o", "json"])
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.seen: list[Manifest] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        for line in self.process.stdout:
            buffer += line
            while True:
                stripped = buffer.lstrip()
                if not stripped:
                    buffer = ""
                    break
                try:
                    found, end = decoder.raw_decode(stripped)
                except ValueError:
                    break
                with self._lock:
                    self.seen.append(found)
                buffer = stripped[end:]

    def versions(self) -> list[Manifest]:
        with self._lock:
            return list(self.seen)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._thread.join(10)


@contextlib.contextmanager
def watching(kubectl: testing.Kubectl, kind: str, name: str) -> Iterator[Watch]:
    watch = Watch(kubectl, kind, name)
    try:
        yield watch
    finally:
        watch.stop()


# -- a sub-center that accepts connections and never answers -------------------------------


class SilentServer:
    """A loopback TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for connection in self._held:
            connection.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.accepted += 1

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"


# -- the operator's log --------------------------------------------------------------------


def log_size(operator: testing.OperatorProcess) -> int:
    try:
        return operator.log_path.stat().st_size
    except OSError:
        return 0


def log_since(operator: testing.OperatorProcess, offset: int) -> str:
    with operator.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def elapsed_since(started: float) -> float:
    return time.monotonic() - started


def tenants_listed(body: Manifest) -> list[str]:
    """The names of the tenants a SubCenter's status lists as placed on it."""
    return [entry["name"] for entry in (body.get("status") or {}).get("tenants") or []]


def refused(reason: str) -> Callable[[Manifest], bool]:
    """A check that a tenant's placement is refused for `reason`: Pending, nothing placed."""

    def check(body: Manifest) -> bool:
        return bool(
            helpers.current(body)
            and helpers.phase(body) == "Pending"
            and helpers.condition(body, "Ready").get("reason") == reason
            and helpers.condition(body, "Placed").get("reason") == reason
            and helpers.condition(body, "Placed").get("status") == "False"
        )

    return check
