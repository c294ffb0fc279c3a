"""Helpers for the CloudTenant integration tests: tenant manifests, a cleanup factory, polling."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from govcloud.dev import testing

Manifest = dict[str, Any]

TESTS_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_QUOTA: dict[str, str] = {
    "requests.cpu": "4",
    "requests.memory": "8Gi",
    "limits.cpu": "8",
    "limits.memory": "16Gi",
    "pods": "20",
}
DEFAULT_LIMITS: dict[str, dict[str, str]] = {
    "defaultRequest": {"cpu": "50m", "memory": "64Mi"},
    "default": {"cpu": "100m", "memory": "128Mi"},
}


CONFIRM_DELETE = "govcloud.io/confirm-delete"


def unique(prefix: str) -> str:
    """A name nobody else in this cluster uses: `prefix` and six random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def load_tenant_cases() -> ModuleType:
    """tests/unit/api/tenant_cases.py, loaded by path (tests/ is not a package)."""
    loaded = sys.modules.get("tenant_cases")
    if loaded is not None:
        return loaded
    path = TESTS_ROOT / "unit" / "api" / "tenant_cases.py"
    spec = importlib.util.spec_from_file_location("tenant_cases", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tenant_cases"] = module  # dataclasses look their module up while executing
    spec.loader.exec_module(module)
    return module


def tenant_manifest(
    name: str,
    *,
    namespaces: tuple[str, ...] | list[Any] = ("apps",),
    admins: Manifest | None = None,
    editors: Manifest | None = None,
    viewers: Manifest | None = None,
    level: int = 3,
    quota: dict[str, str] | None = None,
    limit_range: dict[str, dict[str, str]] | None = None,
    deletion_policy: str = "Delete",
    suspended: bool = False,
    confirm_delete: bool = True,
) -> Manifest:
    """A valid CloudTenant; namespace entries are short names or whole `{name, adopt, ...}`.

    With Delete it carries the confirmation (govcloud.io/confirm-delete) unless told not to,
    so the tests' cleanup deletes what they created."""
    spec: Manifest = {
        "displayName": f"测试单位 {name}",
        "unit": {"code": name, "tier": "city"},
        "contacts": [{"name": "测试员", "email": f"{name}@test.gov.cn"}],
        "securityLevel": level,
        "namespaces": [
            entry if isinstance(entry, dict) else {"name": entry} for entry in namespaces
        ],
        "quota": dict(DEFAULT_QUOTA if quota is None else quota),
        "limitRange": copy.deepcopy(DEFAULT_LIMITS if limit_range is None else limit_range),
        "deletionPolicy": deletion_policy,
        "suspended": suspended,
    }
    for role, members in (("admins", admins), ("editors", editors), ("viewers", viewers)):
        if members:
            spec[role] = members
    metadata: Manifest = {"name": name}
    if deletion_policy == "Delete" and confirm_delete:
        metadata["annotations"] = {CONFIRM_DELETE: name}
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "CloudTenant",
        "metadata": metadata,
        "spec": spec,
    }


def restricted_pod(name: str, namespace: str) -> Manifest:
    """A pod that Pod Security `restricted` admits; requests come from the LimitRange."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": pod_spec(),
    }


def pod_spec() -> Manifest:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": "registry.example.gov.cn/app:1.0",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def deployment(name: str, namespace: str, replicas: int = 1) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec()},
        },
    }


def create(kubectl: testing.Kubectl, manifest: Manifest) -> Any:
    """`kubectl create` as whoever `kubectl` impersonates; the CompletedProcess, never raises."""
    return kubectl.run("create", "-f", "-", stdin=json.dumps(manifest))


def forbidden(result: Any, *needles: str) -> bool:
    """Whether a kubectl call failed with Forbidden (and its stderr says every needle)."""
    return (
        result.returncode != 0
        and " is forbidden: " in result.stderr
        and all(needle in result.stderr for needle in needles)
    )


def condition(body: Manifest | None, kind: str) -> Manifest:
    """The condition `kind` of a CloudTenant's status, or {} when it has none."""
    for item in ((body or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            found: Manifest = item
            return found
    return {}


def phase(body: Manifest | None) -> str | None:
    return ((body or {}).get("status") or {}).get("phase")


def wait_tenant(
    kubectl: testing.Kubectl,
    name: str,
    predicate: Callable[[Manifest], bool],
    what: str,
    timeout: float = 60.0,
) -> Manifest:
    """Poll the CloudTenant `name` until `predicate` holds; on timeout, show its last status."""
    last: list[Manifest | None] = [None]

    def check() -> Manifest | None:
        body = kubectl.get("cloudtenant", name)
        last[0] = body
        return body if body is not None and predicate(body) else None

    try:
        found: Manifest = testing.eventually(check, timeout=timeout, what=f"{name}: {what}")
    except testing.WaitTimeoutError as error:
        status = json.dumps((last[0] or {}).get("status"), ensure_ascii=False, indent=1)
        raise testing.WaitTimeoutError(f"{error}\nlast status of {name}: {status}") from None
    return found


def current(body: Manifest) -> bool:
    """Whether the operator's status describes the tenant's current generation."""
    status = body.get("status") or {}
    return bool(status.get("observedGeneration") == body["metadata"].get("generation"))


def wait_phase(kubectl: testing.Kubectl, name: str, wanted: str, timeout: float = 60.0) -> Manifest:
    """Poll until the CloudTenant `name` reports `wanted` for its current generation."""
    return wait_tenant(
        kubectl,
        name,
        lambda body: current(body) and phase(body) == wanted,
        what=f"phase {wanted}",
        timeout=timeout,
    )


def labels_of(body: Manifest | None) -> dict[str, str]:
    return dict(((body or {}).get("metadata") or {}).get("labels") or {})


def tenant_writes(
    hub: Any, name: str, agents: tuple[str, ...], since: str = ""
) -> list[dict[str, Any]]:
    """Audited writes, by callers whose user agent starts with one of `agents` and received
    after `since`, to the tenant `name`, its objects and its Events."""
    found = []
    for event in hub.audit_events():
        if not str(event.get("userAgent", "")).startswith(agents):
            continue
        if since and str(event.get("requestReceivedTimestamp", "")) <= since:
            continue
        ref = event.get("objectRef") or {}
        touched = (
            str(ref.get("namespace", "")).startswith(f"{name}-")
            or str(ref.get("name", "")).startswith(name)
            or f":{name}:" in str(ref.get("name", ""))
        )
        if touched:
            found.append(event)
    return found


# Kinds no tenant pass writes: an operator serving one module also serves what earlier modules
# on its worker left (a plan whose rate card went is re-priced), and the at-rest checks are
# about the tenants' passes.
OTHER_MODULES_KINDS = ("ResourcePlan", "ResourceRequest", "NetworkGrant", "UsageReport")


def writes_by_series(operator: testing.OperatorProcess) -> dict[str, float]:
    """Each govcloud_api_writes_total series (cluster, verb, kind) and its count."""
    found = {}
    for line in operator.metrics().splitlines():
        if line.startswith("govcloud_api_writes_total{"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


def new_writes(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Writes made since `before`, by series, except those of other modules' kinds."""
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if not any(f'kind="{kind}"' in key for kind in OTHER_MODULES_KINDS)
        if value != before.get(key, 0.0)
    }


def writes_logged(operator: testing.OperatorProcess, offset: int = 0) -> list[str]:
    """The objects a --verbose operator wrote after byte `offset` of its log (verb, kind, name)."""
    with operator.log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [line for line in text.splitlines() if "govcloud.k8s.client: write " in line]


def events_for(kubectl: testing.Kubectl, name: str, kind: str = "CloudTenant") -> list[Manifest]:
    """Every Event about the object `kind`/`name`, in any namespace."""
    found: list[Manifest] = kubectl.json(
        "get",
        "events",
        "--all-namespaces",
        f"--field-selector=involvedObject.kind={kind},involvedObject.name={name}",
    )["items"]
    return found


class Tenants:
    """Creates uniquely named tenants and removes them, and their namespaces, at the end."""

    def __init__(self, kubectl: testing.Kubectl) -> None:
        self.kubectl = kubectl
        self.names: list[str] = []
        self.namespaces: list[str] = []

    def create(self, name: str, **options: Any) -> Manifest:
        return self.apply(tenant_manifest(name, **options))

    def apply(self, manifest: Manifest) -> Manifest:
        name = manifest["metadata"]["name"]
        if name not in self.names:
            self.names.append(name)
        self.kubectl.apply(manifest)
        return manifest

    def track_namespace(self, namespace: str) -> None:
        """A namespace the test made itself; deleted at the end as well."""
        self.namespaces.append(namespace)

    def patch(self, name: str, spec: Manifest) -> None:
        self.kubectl("patch", "cloudtenant", name, "--type=merge", "-p", json.dumps({"spec": spec}))

    def cleanup(self) -> None:
        """Delete every tenant (policy Delete) and wait until the operator has let go."""
        stuck: list[str] = []
        for name in self.names:
            if self.kubectl.get("cloudtenant", name) is None:
                continue
            with contextlib.suppress(AssertionError):
                self.patch(name, {"deletionPolicy": "Delete"})
                self.kubectl(
                    "annotate", "--overwrite", "cloudtenant", name, f"{CONFIRM_DELETE}={name}"
                )
            self.kubectl.run("delete", "cloudtenant", name, "--wait=false")
        for name in self.names:
            try:
                testing.eventually(
                    lambda name=name: self.kubectl.get("cloudtenant", name) is None,
                    timeout=60,
                    what=f"CloudTenant {name} to be deleted",
                )
            except testing.WaitTimeoutError:
                stuck.append(name)
                self.kubectl.run(
                    "patch",
                    "cloudtenant",
                    name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                )
        leftovers = set(self.namespaces)
        for name in self.names:
            for selector in (f"govcloud.io/tenant={name}", f"govcloud.io/orphaned={name}"):
                found = self.kubectl.json("get", "namespaces", "-l", selector)["items"]
                leftovers.update(item["metadata"]["name"] for item in found)
        for namespace in sorted(leftovers):
            self.kubectl.run("delete", "namespace", namespace, "--wait=false")
        assert not stuck, f"the operator never released the deleted tenants {stuck}"


@pytest.fixture
def tenants(kubectl: testing.Kubectl, operator: testing.OperatorProcess) -> Iterator[Tenants]:
    """Tenants a test creates, removed with their namespaces when it ends (a file that wants
    these instead of conftest's says `tenants = helpers.tenants`)."""
    made = Tenants(kubectl)
    yield made
    made.cleanup()


def refusing_policy(name: str, rule: Manifest, expression: str, message: str) -> list[Manifest]:
    """A ValidatingAdmissionPolicy and its binding refusing each request that `rule` matches and
    `expression` (CEL) rejects: a stand-in for a webhook, a missing permission or an API
    server that keeps failing."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [{"expression": expression, "message": message}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


def wait_reconciled_after(
    operator: testing.OperatorProcess, name: str, since: float, timeout: float = 30.0
) -> None:
    """Poll until the operator finished a reconcile pass of `name` that started after `since`."""
    metric = "govcloud_tenant_last_reconcile_timestamp_seconds"
    testing.eventually(
        lambda: operator.metric_value(metric, tenant=name) > since,
        timeout=timeout,
        what=f"a reconcile pass of {name} after {since:.0f}",
    )


def json_of(result: Any) -> Any:
    """The JSON a successful `kubectl ... -o json` printed."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
