"""The floor: a tenant's objects, rendered by the operator's own desired-state code, written
directly by a plain client with no operator in between."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s_client

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import quotas
from govcloud.desired import tenant as desired_tenant
from govcloud.k8s import client

Manifest = dict[str, Any]
PLATFORM_NAMESPACES = ("monitoring",)


def tenant_spec(name: str, placement: str | None = None) -> Manifest:
    """The benchmark tenant: 3 namespaces, a quota, a LimitRange, 3 RoleBindings and a
    NetworkPolicy in each namespace (23 objects, 2 of them cluster-scoped)."""
    spec: Manifest = {
        "displayName": f"基准测试单位 {name}",
        "unit": {"code": name[:63], "tier": "county"},
        "contacts": [{"name": "测试员", "email": "bench@example.gov.cn"}],
        "admins": {"groups": [f"{name}-admins"]},
        "editors": {"users": [f"dev@{name}.example.gov.cn"]},
        "viewers": {"groups": [f"{name}-staff"]},
        "securityLevel": 2,
        "namespaces": [{"name": "prod"}, {"name": "staging"}, {"name": "data"}],
        "quota": {"requests.cpu": "6", "requests.memory": "12Gi", "pods": "30"},
        "limitRange": {
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"cpu": "500m", "memory": "512Mi"},
        },
        "deletionPolicy": "Delete",
    }
    if placement:
        spec["placement"] = {"subCenter": placement}
    return spec


def tenant_manifest(name: str, placement: str | None = None) -> Manifest:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "CloudTenant",
        "metadata": {"name": name},
        "spec": tenant_spec(name, placement),
    }


@dataclass(frozen=True)
class Rendered:
    """A tenant's objects in the order a careful client writes them, and its final quotas."""

    manifests: tuple[Manifest, ...]
    hards: Mapping[str, Mapping[str, str]]


def render(name: str, placement: str | None = None) -> Rendered:
    """Namespaces, the final quotas (before anyone gets access), then LimitRanges,
    NetworkPolicies, RoleBindings and the cluster-scoped self-view: what the operator builds."""
    spec = cloudtenant.CloudTenantSpec.model_validate(tenant_spec(name, placement))
    names = desired_tenant.namespace_names(name, spec)
    allocation = quotas.allocate(spec.quota, names, {}, suspended=spec.suspended)
    wanted = desired_tenant.build(
        name, spec, platform_namespaces=PLATFORM_NAMESPACES, allocation=allocation
    )
    manifests = (*wanted.namespaces, *wanted.quotas, *wanted.namespaced, *wanted.cluster_scoped)
    return Rendered(manifests, {key: dict(value) for key, value in allocation.hard.items()})


def connect(kubeconfig: str, agent: str) -> tuple[k8s_client.ApiClient, client.Cluster]:
    """An API client with its own userAgent (so the audit log tells it from the operator)."""
    api = client.load_api_client(kubeconfig)
    api.user_agent = agent
    return api, client.Cluster(api, agent)


def warm(target: client.Cluster) -> None:
    """Resolve every kind the benchmarks write, so discovery is not part of any figure."""
    kinds = {(item["apiVersion"], item["kind"]) for item in render("warm-up").manifests}
    kinds |= {(constants.API_VERSION, "CloudTenant"), ("v1", "ConfigMap"), ("v1", "Secret")}
    kinds |= {("v1", "Service"), (constants.API_VERSION, "MigrationPlan")}
    for api_version, kind in sorted(kinds):
        target.resource(api_version, kind)


def write(target: client.Cluster, rendered: Rendered) -> int:
    """Server-side apply every object, as the operator does; returns the number of writes."""
    for manifest in rendered.manifests:
        target.apply(manifest)
    return len(rendered.manifests)


def burst(
    target: client.Cluster,
    names: Sequence[str],
    workers: int,
    placement: str | None = None,
    on_start: Callable[[], None] | None = None,
) -> tuple[float, dict[str, float], int]:
    """Write every tenant at once through `workers` threads.

    Returns the wall time, each tenant's latency from the start of the burst to its last
    write, and the number of writes.
    """
    rendered = {name: render(name, placement) for name in names}  # rendering is not timed
    done: dict[str, float] = {}

    def one(name: str) -> int:
        count = write(target, rendered[name])
        done[name] = time.monotonic()
        return count

    if on_start is not None:
        on_start()
    start = time.monotonic()
    with futures.ThreadPoolExecutor(workers, thread_name_prefix="floor") as pool:
        count = sum(pool.map(one, names))
    wall = time.monotonic() - start
    return wall, {name: stamp - start for name, stamp in done.items()}, count
