"""The scenarios of issue #8, each the operator beside its floor, in the order they run.

Every wait is a poll with a deadline; the only plain sleeps are measurement windows (one resync
period of steady state).
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes import client as k8s_client

from bench import floor, probes
from govcloud import constants
from govcloud.dev import testing
from govcloud.k8s import client
from govcloud.migration import transform

if TYPE_CHECKING:
    from bench.runner import Options, Session

MIB = 1024 * 1024
RESYNC_JITTER = 0.1  # the scheduler spreads each resync by +-10 % (reconcile/scheduler.py)
WINDOW_MARGIN = 5.0
SITE = "bench-site"
IDLE_WINDOW = 20.0
SYSTEM_NAMESPACE = "govcloud-system"
APP_SELECTOR = "app=bench-legacy"
RATECARD = testing.REPO_ROOT / "examples" / "billing" / "ratecard.yaml"


def tenant_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index:04d}" for index in range(count)]


def burst_timeout(count: int) -> float:
    return 120.0 + 3.0 * count


# -- shared steps ------------------------------------------------------------------------------


def create_tenants(
    session: Session, names: Sequence[str], placement: str | None = None
) -> dict[str, float]:
    """Create the CloudTenants through `workers` threads; when each create was issued."""
    assert session.tracker is not None
    assert session.hub_api is not None
    custom = k8s_client.CustomObjectsApi(session.hub_api)
    for name in names:
        session.tracker.expect(name, floor.render(name, placement).hards)
    issued: dict[str, float] = {}

    def create(name: str) -> None:
        issued[name] = time.monotonic()
        custom.create_cluster_custom_object(
            constants.GROUP,
            constants.VERSION,
            "cloudtenants",
            floor.tenant_manifest(name, placement),
        )

    with futures.ThreadPoolExecutor(session.options.workers) as pool:
        list(pool.map(create, names))
    return issued


def operator_writes(session: Session) -> float:
    return probes.total(session.metrics_text(), "govcloud_api_writes_total")


def settle(session: Session, timeout: float = 900.0) -> float:
    """Wait until the operator has written nothing for `quiet_seconds`; how long that took."""
    quiet = session.options.quiet_seconds
    began = time.monotonic()
    last = operator_writes(session)
    last_change = time.monotonic()
    while time.monotonic() - last_change < quiet:
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"the operator kept writing for {timeout:.0f}s after onboarding")
        session.operator_alive()
        time.sleep(0.5)
        now = operator_writes(session)
        if now != last:
            last, last_change = now, time.monotonic()
    return last_change - began


def onboard(session: Session, floor_too: bool) -> None:
    """Scenario 1 when asked for; otherwise only the operator's onboarding, unmeasured."""
    if session.onboarded:
        return
    names = tenant_names("t", session.options.tenants)
    if not floor_too:
        create_tenants(session, names)
        assert session.tracker is not None
        session.tracker.wait(names, "ready", burst_timeout(len(names)), session.operator_alive)
        session.onboarded = names
        return
    burst(session)


# -- 1. onboarding burst -----------------------------------------------------------------------


def burst(session: Session) -> None:
    assert session.tracker is not None
    assert session.hub is not None
    options = session.options
    names = tenant_names("t", options.tenants)
    floor_wall, floor_latency, floor_writes = floor.burst(session.floor, names, options.workers)
    session.log(f"floor: {len(names)} tenants written in {floor_wall:.2f}s")

    cursor = probes.AuditCursor.at_end(session.hub)
    before = probes.proc_stat(session.operator_pid)
    with (
        probes.RssSampler(session.operator_pid) as rss,
        session.profiled("burst", burst_timeout(len(names))) as profile,
    ):
        start = time.monotonic()
        issued = create_tenants(session, names)
        created = time.monotonic() - start
        ready = session.tracker.wait(
            names, "ready", burst_timeout(len(names)), session.operator_alive
        )
        ready_wall = max(ready.values()) - start
        converged = session.tracker.wait(
            names, "converged", burst_timeout(len(names)), session.operator_alive
        )
        converged_wall = max(converged.values()) - start
    after = probes.proc_stat(session.operator_pid)
    calls = probes.calls_by(cursor.events())
    session.onboarded = names
    ready_latency = [ready[name] - issued[name] for name in names]
    converged_latency = [converged[name] - issued[name] for name in names]
    floor_values = [floor_latency[name] for name in names]
    result: dict[str, Any] = {
        "tenants": len(names),
        "objects_per_tenant": len(floor.render(names[0]).manifests),
        "floor": {
            "wall_seconds": floor_wall,
            "latency": probes.summary(floor_values),
            "writes": floor_writes,
        },
        "operator": {
            "create_calls_seconds": created,
            "ready_wall_seconds": ready_wall,
            "converged_wall_seconds": converged_wall,
            "ready_latency": probes.summary(ready_latency),
            "converged_latency": probes.summary(converged_latency),
            "writes": probes.writes(calls),
            "reads": probes.reads(calls),
            "calls": probes.flat(calls),
            "cpu_seconds": after.cpu_seconds - before.cpu_seconds,
            "cpu_utilisation": (after.cpu_seconds - before.cpu_seconds) / max(ready_wall, 1e-9),
            "peak_rss_mib": rss.peak / MIB,
        },
        "profile": profile,
    }
    result["ratio"] = {
        "ready_wall": probes.ratio(ready_wall, floor_wall),
        "converged_wall": probes.ratio(converged_wall, floor_wall),
        "ready_p50": probes.ratio(
            result["operator"]["ready_latency"]["p50"], result["floor"]["latency"]["p50"]
        ),
    }
    session.results["burst"] = result
    n = len(names)
    session.add("1 burst", f"{n} tenants: all Ready", ready_wall, floor_wall)
    session.add("1 burst", f"{n} tenants: all quotas final", converged_wall, floor_wall)
    for pct in ("p50", "p95", "max"):
        session.add(
            "1 burst",
            f"per-tenant create→Ready {pct}",
            result["operator"]["ready_latency"][pct],
            result["floor"]["latency"][pct],
        )
    session.add("1 burst", "API writes", probes.writes(calls), floor_writes, "")
    session.add("1 burst", "operator CPU during burst", result["operator"]["cpu_seconds"])


# -- 3. steady state ---------------------------------------------------------------------------


def steady(session: Session) -> None:
    onboard(session, floor_too=False)
    assert session.hub is not None
    settled = settle(session)
    window = session.options.resync_seconds * (1 + RESYNC_JITTER) + WINDOW_MARGIN
    text = session.metrics_text()
    writes_before = probes.total(text, "govcloud_api_writes_total")
    passes_before = probes.total(text, "govcloud_reconcile_total", kind="CloudTenant")
    cursor = probes.AuditCursor.at_end(session.hub)
    before = probes.proc_stat(session.operator_pid)
    with (
        probes.RssSampler(session.operator_pid) as rss,
        session.profiled("steady", window) as profile,
    ):
        time.sleep(window)  # the measurement itself: one resync period of an idle operator
    after = probes.proc_stat(session.operator_pid)
    text = session.metrics_text()
    calls = probes.calls_by(cursor.events())
    passes = probes.total(text, "govcloud_reconcile_total", kind="CloudTenant") - passes_before
    tenants = len(session.onboarded)
    cpu = after.cpu_seconds - before.cpu_seconds
    result: dict[str, Any] = {
        "tenants": tenants,
        "settle_seconds": settled,
        "window_seconds": window,
        "resync_seconds": session.options.resync_seconds,
        "writes_audit": probes.writes(calls),
        "writes_self_reported": probes.total(text, "govcloud_api_writes_total") - writes_before,
        "reads_audit": probes.reads(calls),
        "calls": probes.flat(calls),
        "tenant_passes": passes,
        "reads_per_pass": probes.reads(calls) / passes if passes else None,
        "cpu_seconds": cpu,
        "cpu_percent_of_one_core": 100.0 * cpu / window,
        # Every tenant is looked at once per resync period: the resync period is held.
        "resync_held": passes >= tenants,
        "passes_per_tenant": passes / tenants if tenants else None,
        "peak_rss_mib_window": rss.peak / MIB,
        "peak_rss_mib_lifetime": after.peak_rss_bytes / MIB,
        "profile": profile,
    }
    session.results["steady"] = result
    label = f"{tenants} tenants, {window:.0f}s"
    session.add("3 steady", f"write calls ({label})", result["writes_audit"], None, "")
    session.add("3 steady", "read calls / tenant pass", result["reads_per_pass"], None, "")
    session.add("3 steady", "CPU, % of one core", result["cpu_percent_of_one_core"], None, "%")
    session.add(
        "3 steady",
        "tenant passes / tenant (resync held: >= 1)",
        result["passes_per_tenant"],
        None,
        "",
    )
    session.add("3 steady", "peak RSS (window)", result["peak_rss_mib_window"], None, "MiB")


# -- 4. memory at scale ------------------------------------------------------------------------


def memory(session: Session) -> None:
    onboard(session, floor_too=False)
    stat = probes.proc_stat(session.operator_pid)
    tenants = len(session.onboarded)
    session.results["memory"] = {
        "tenants": tenants,
        "namespaces": 3 * tenants,
        "rss_mib": stat.rss_bytes / MIB,
        "peak_rss_mib": stat.peak_rss_bytes / MIB,
    }
    label = f"{tenants} tenants / {3 * tenants} ns"
    session.add("4 memory", f"RSS, {label}", stat.rss_bytes / MIB, None, "MiB")
    session.add("4 memory", "peak RSS since start", stat.peak_rss_bytes / MIB, None, "MiB")


# -- 2. single-tenant latency ------------------------------------------------------------------


def single(session: Session) -> None:
    assert session.tracker is not None
    operator_ready: list[float] = []
    operator_converged: list[float] = []
    floor_times: list[float] = []
    for index in range(session.options.trials):
        name = f"one-{index:04d}"
        rendered = floor.render(name)
        began = time.monotonic()
        floor.write(session.floor, rendered)
        floor_times.append(time.monotonic() - began)
        issued = create_tenants(session, [name])[name]
        ready = session.tracker.wait([name], "ready", 120, session.operator_alive)[name]
        converged = session.tracker.wait([name], "converged", 120, session.operator_alive)[name]
        operator_ready.append(ready - issued)
        operator_converged.append(converged - issued)
    result: dict[str, Any] = {
        "trials": len(floor_times),
        "operator_ready": probes.summary(operator_ready),
        "operator_converged": probes.summary(operator_converged),
        "floor": probes.summary(floor_times),
    }
    session.results["single"] = result
    session.add(
        "2 single",
        "create→Ready p50",
        result["operator_ready"]["p50"],
        result["floor"]["p50"],
    )
    session.add(
        "2 single",
        "create→quotas final p50",
        result["operator_converged"]["p50"],
        result["floor"]["p50"],
    )


# -- 7. drift repair ---------------------------------------------------------------------------


def drift(session: Session) -> None:
    onboard(session, floor_too=False)
    restored: list[float] = []
    healed: list[float] = []
    floor_times: list[float] = []
    names = session.onboarded
    # py-spy stops when the block ends; the duration is only an upper bound.
    with session.profiled("drift", 30 + 10 * session.options.trials) as profile:
        repair_trials(session, names, restored, healed, floor_times)
    result: dict[str, Any] = {
        "trials": len(restored),
        "restored": probes.summary(restored),
        "healed": probes.summary(healed),
        "floor_single_write": probes.summary(floor_times),
        "profile": profile,
    }
    session.results["drift"] = result
    for pct in ("p50", "p95"):
        session.add(
            "7 drift",
            f"quota deleted→recreated {pct}",
            result["restored"][pct],
            result["floor_single_write"][pct],
        )
        session.add(
            "7 drift",
            f"quota deleted→original hard {pct}",
            result["healed"][pct],
            result["floor_single_write"][pct],
        )


def repair_trials(
    session: Session,
    names: list[str],
    restored: list[float],
    healed: list[float],
    floor_times: list[float],
) -> None:
    """Delete a quota (the floor's copy, then the operator's) and time each repair."""
    hub = session.driver
    for index in range(session.options.trials):
        tenant = names[index % len(names)]
        namespace = f"{tenant}-{('prod', 'staging', 'data')[(index // len(names)) % 3]}"
        expected = floor.render(tenant).hards[namespace]
        quota_manifest = next(
            item
            for item in floor.render(tenant).manifests
            if item["kind"] == "ResourceQuota" and item["metadata"]["namespace"] == namespace
        )
        # The floor: the one write a repair needs at least, into the floor's copy (written
        # here when no burst wrote it first).
        if session.floor.get("v1", "Namespace", namespace) is None:
            floor.write(session.floor, floor.render(tenant))
        session.floor.delete("v1", "ResourceQuota", "govcloud-quota", namespace)
        began = time.monotonic()
        session.floor.apply(quota_manifest)
        floor_times.append(time.monotonic() - began)

        before = quota_of(hub, namespace)
        began = time.monotonic()
        hub.delete("v1", "ResourceQuota", "govcloud-quota", namespace)
        seen = wait_repaired(hub, namespace, before["metadata"]["uid"], expected)
        restored.append(seen["restored"] - began)
        healed.append(seen["healed"] - began)


def quota_of(hub: client.Cluster, namespace: str) -> dict[str, Any]:
    def found() -> Any:
        return hub.get("v1", "ResourceQuota", "govcloud-quota", namespace)

    quota: dict[str, Any] = testing.eventually(found, timeout=60, what=f"quota of {namespace}")
    return quota


def wait_repaired(
    hub: client.Cluster, namespace: str, uid: str, expected: Mapping[str, str]
) -> dict[str, float]:
    """Poll until the quota is back (a new uid) and holds its original hard; when each was."""
    seen: dict[str, float] = {}

    def repaired() -> bool:
        found = hub.get("v1", "ResourceQuota", "govcloud-quota", namespace)
        if found is None or found["metadata"]["uid"] == uid:
            return False
        seen.setdefault("restored", time.monotonic())
        if probes.hards_equal((found.get("spec") or {}).get("hard") or {}, expected):
            seen["healed"] = time.monotonic()
            return True
        return False

    testing.eventually(repaired, timeout=90, what=f"{namespace} quota repaired", interval=0.05)
    return seen


# -- 9. sub-center propagation -----------------------------------------------------------------


def subcenter(session: Session) -> None:
    assert session.hub is not None
    assert session.second is not None
    assert session.tracker is not None
    count = min(session.options.subcenter_tenants, max(session.options.tenants, 1))
    register_site(session)
    floor_names = tenant_names("pf", count)
    floor_wall, floor_latency, _ = floor.burst(
        session.floor, floor_names, session.options.workers, placement=SITE
    )
    names = tenant_names("p", count)
    cursor = probes.AuditCursor.at_end(session.second)
    start = time.monotonic()
    issued = create_tenants(session, names, placement=SITE)
    ready = session.tracker.wait(names, "ready", burst_timeout(count), session.operator_alive)
    ready_wall = max(ready.values()) - start
    converged = session.tracker.wait(
        names, "converged", burst_timeout(count), session.operator_alive
    )
    converged_wall = max(converged.values()) - start
    site_calls = probes.calls_by(cursor.events())
    idle = idle_calls(session, IDLE_WINDOW)
    ready_latency = [ready[name] - issued[name] for name in names]
    result: dict[str, Any] = {
        "tenants": count,
        "floor": {
            "wall_seconds": floor_wall,
            "latency": probes.summary(list(floor_latency.values())),
        },
        "operator": {
            "ready_wall_seconds": ready_wall,
            "converged_wall_seconds": converged_wall,
            "ready_latency": probes.summary(ready_latency),
            "site_writes": probes.writes(site_calls),
            "site_reads": probes.reads(site_calls),
        },
        "idle_after": idle,
    }
    session.results["subcenter"] = result
    session.add("9 sub-center", f"{count} placed tenants: all Ready", ready_wall, floor_wall)
    session.add(
        "9 sub-center", f"{count} placed tenants: all quotas final", converged_wall, floor_wall
    )
    label = f"idle {IDLE_WINDOW:.0f}s after"
    session.add("9 sub-center", f"hub writes, {label}", idle["hub_writes"], None, "")
    session.add("9 sub-center", f"hub reads, {label}", idle["hub_reads"], None, "")
    session.add(
        "9 sub-center",
        "per-tenant create→Ready p50",
        result["operator"]["ready_latency"]["p50"],
        result["floor"]["latency"]["p50"],
    )


def idle_calls(session: Session, window: float) -> dict[str, Any]:
    """Calls the operator makes to the hub and the site while nobody changes anything."""
    assert session.hub is not None
    assert session.second is not None
    hub_cursor = probes.AuditCursor.at_end(session.hub)
    site_cursor = probes.AuditCursor.at_end(session.second)
    time.sleep(window)  # the measurement itself: an idle window
    hub_calls = probes.calls_by(hub_cursor.events())
    site_calls = probes.calls_by(site_cursor.events())
    return {
        "window_seconds": window,
        "hub_writes": probes.writes(hub_calls),
        "hub_reads": probes.reads(hub_calls),
        "site_writes": probes.writes(site_calls),
        "site_reads": probes.reads(site_calls),
        "hub_calls": probes.flat(hub_calls),
        "site_calls": probes.flat(site_calls),
    }


def site_nodes(options: Options) -> int:
    """kwok nodes (32 cpu, 128Gi, 110 pods each) to hold the placed tenants' quotas."""
    count = min(options.subcenter_tenants, max(options.tenants, 1))
    spec = floor.tenant_spec("sizing")["quota"]
    cpu = float(spec["requests.cpu"]) * count / 32
    memory = float(spec["requests.memory"].removesuffix("Gi")) * count / 128
    pods = float(spec["pods"]) * count / 110
    return max(1, math.ceil(max(cpu, memory, pods) * 1.1))


def register_site(session: Session) -> None:
    assert session.second is not None
    hub = session.driver
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}})
    hub.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{SITE}-kubeconfig", "namespace": SYSTEM_NAMESPACE},
            "stringData": {"kubeconfig": session.second.flat_kubeconfig()},
        }
    )
    hub.apply(
        {
            "apiVersion": constants.API_VERSION,
            "kind": "SubCenter",
            "metadata": {"name": SITE},
            "spec": {
                "displayName": "基准测试分中心",
                "region": "肥西县",
                "tier": "county",
                "mode": "federated",
                "maxSecurityLevel": 3,
                "kubeconfigSecretRef": {
                    "name": f"{SITE}-kubeconfig",
                    "namespace": SYSTEM_NAMESPACE,
                },
            },
        }
    )

    def site_ready() -> bool:
        found = hub.get(constants.API_VERSION, "SubCenter", SITE) or {}
        return any(
            item.get("type") == "Ready" and item.get("status") == "True"
            for item in (found.get("status") or {}).get("conditions") or []
        )

    testing.eventually(site_ready, timeout=90, what=f"SubCenter {SITE} Ready")


# -- 8. migration copy -------------------------------------------------------------------------


def legacy_app(namespace: str, count: int) -> list[dict[str, Any]]:
    """An app of `count` objects: ConfigMaps, Secrets and Services (no workloads, so verify
    is immediate and the figure is the copy itself)."""
    objects: list[dict[str, Any]] = []
    labels = {"app": "bench-legacy"}
    for index in range(count):
        kind = ("ConfigMap", "ConfigMap", "Secret", "Service")[index % 4]
        metadata = {"name": f"legacy-{index:03d}", "namespace": namespace, "labels": labels}
        if kind == "ConfigMap":
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": kind,
                    "metadata": metadata,
                    "data": {"MODE": "production", "INDEX": str(index), "BLOB": "x" * 512},
                }
            )
        elif kind == "Secret":
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": kind,
                    "metadata": metadata,
                    "stringData": {"password": f"change-me-{index}"},
                }
            )
        else:
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": kind,
                    "metadata": metadata,
                    "spec": {
                        "selector": labels,
                        "ports": [{"port": 80, "targetPort": 8080}],
                    },
                }
            )
    return objects


def seed_legacy(target: client.Cluster, namespace: str, tenant: str, count: int) -> None:
    target.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "annotations": {transform.ANNOTATION_GRANT: tenant},
            },
        }
    )
    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(target.apply, legacy_app(namespace, count)))


def migration(session: Session) -> None:
    count = session.options.migration_objects
    tenant = "mig-0000"
    source, target_namespace = "legacy-bench", f"{tenant}-prod"
    # The tenant (and its floor twin) exist first; neither is timed.
    rendered = floor.render(tenant)
    floor.write(session.floor, rendered)
    create_tenants(session, [tenant])
    assert session.tracker is not None
    session.tracker.wait([tenant], "converged", 120, session.operator_alive)
    seed_legacy(session.driver, source, tenant, count)
    seed_legacy(session.floor, source, tenant, count)

    # Floor: list the source, transform each object (pure, same code), apply sequentially.
    began = time.monotonic()
    found: list[dict[str, Any]] = []
    for kind in ("ConfigMap", "Secret", "Service"):
        for item in session.floor.list("v1", kind, namespace=source, label_selector=APP_SELECTOR):
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", "v1")
            found.append(item)
    plan = transform.PlanRef(uid="floor", namespace=target_namespace, name="bench")
    decisions = [
        transform.decide(item, target_namespace=target_namespace, plan=plan) for item in found
    ]
    manifests = [decision.manifest for decision in decisions if decision.manifest is not None]
    applied_at = time.monotonic()
    for manifest in manifests:
        session.floor.apply(manifest)
    floor_total = time.monotonic() - began
    floor_apply = time.monotonic() - applied_at

    plan_manifest = {
        "apiVersion": constants.API_VERSION,
        "kind": "MigrationPlan",
        "metadata": {"name": "bench", "namespace": target_namespace},
        "spec": {
            "app": {"name": "基准测试遗留应用", "securityLevel": 2},
            "source": {
                "namespace": source,
                "selector": {"app": "bench-legacy"},
                "kinds": ["ConfigMap", "Secret", "Service"],
            },
            "targetNamespace": target_namespace,
            "deadline": "2099-12-31T00:00:00Z",
            "approvalsRequired": ["cutover"],
        },
    }
    stamps: dict[str, float] = {}

    def stage_done() -> bool:
        plan_body = session.driver.get(
            constants.API_VERSION, "MigrationPlan", "bench", target_namespace
        )
        status = (plan_body or {}).get("status") or {}
        now = time.monotonic()
        for stage in status.get("stages") or []:
            if stage.get("state") in ("Succeeded", "Failed"):
                stamps.setdefault(str(stage.get("name")), now)
        if status.get("phase") == "Failed":
            raise AssertionError(f"the migration failed: {status.get('message')}")
        return "copy" in stamps

    with session.profiled("migration", 300) as profile:
        began = time.monotonic()
        session.driver.apply(plan_manifest)
        testing.eventually(stage_done, timeout=300, what="the migration copy", interval=0.05)
    copied = len(
        [
            item
            for kind in ("ConfigMap", "Secret", "Service")
            for item in session.driver.list(
                "v1", kind, namespace=target_namespace, label_selector=APP_SELECTOR
            )
        ]
    )
    result: dict[str, Any] = {
        "objects": count,
        "copied": copied,
        "profile": profile,
        "operator_assess_seconds": stamps.get("assess", began) - began,
        "operator_assess_and_copy_seconds": stamps["copy"] - began,
        "floor_list_transform_apply_seconds": floor_total,
        "floor_apply_seconds": floor_apply,
    }
    session.results["migration"] = result
    session.add(
        "8 migration",
        f"{count} objects: plan created→copy done",
        result["operator_assess_and_copy_seconds"],
        floor_total,
    )
    session.add("8 migration", "of which assess", result["operator_assess_seconds"], None)


# -- 5. metering -------------------------------------------------------------------------------


METERING_RESOURCES = ("usagereports", "usagereports/status", "ratecards")


def metering(session: Session) -> None:
    onboard(session, floor_too=False)
    assert session.hub is not None
    options = session.options
    testing.Kubectl(session.hub.kubeconfig).apply(
        yaml.safe_dump(yaml.safe_load(RATECARD.read_text()))
    )

    def ticks() -> float:
        return probes.total(session.metrics_text(), "govcloud_metering_ticks_total")

    # The first tick creates every report (a create and a patch per tenant, one at a time):
    # at 1,000 tenants it took longer than 165 s. Measure the ticks after it.
    first_wait = options.metering_interval * 3 + 120 + 0.5 * len(session.onboarded)
    testing.eventually(lambda: ticks() >= 1, timeout=first_wait, what="the first metering tick")
    text = session.metrics_text()
    ticks_before = probes.total(text, "govcloud_metering_ticks_total")
    duration_before = probes.total(text, "govcloud_metering_tick_duration_seconds_sum")
    cursor = probes.AuditCursor.at_end(session.hub)
    window_began = time.monotonic()
    testing.eventually(
        lambda: ticks() >= ticks_before + options.metering_ticks,
        timeout=options.metering_interval * (options.metering_ticks + 2) + 600,
        what=f"{options.metering_ticks} metering ticks",
        interval=0.5,
    )
    text = session.metrics_text()
    counted = probes.total(text, "govcloud_metering_ticks_total") - ticks_before
    duration = probes.total(text, "govcloud_metering_tick_duration_seconds_sum") - duration_before
    calls = probes.calls_by(cursor.events())
    metering_calls = {
        key: value
        for key, value in calls.items()
        if key[1] in METERING_RESOURCES or key == ("list", "cloudtenants")
    }
    gets = {key: value for key, value in calls.items() if key[0] == "get"}
    tenants = len(session.onboarded) + options.trials  # the single-tenant scenario's too
    result: dict[str, Any] = {
        "tenants_about": tenants,
        "ticks": counted,
        "window_seconds": time.monotonic() - window_began,
        "tick_seconds_mean": duration / counted if counted else None,
        "metering_calls_per_tick": {
            f"{verb} {resource}": value / counted
            for (verb, resource), value in metering_calls.items()
        },
        "metering_reads_per_tick": probes.reads(metering_calls) / counted if counted else None,
        "metering_writes_per_tick": probes.writes(metering_calls) / counted if counted else None,
        "all_operator_gets_per_tick": {
            resource: value / counted for (_, resource), value in gets.items()
        },
    }
    session.results["metering"] = result
    session.add("5 metering", "reads per tick", result["metering_reads_per_tick"], None, "")
    session.add("5 metering", "writes per tick", result["metering_writes_per_tick"], None, "")
    session.add("5 metering", "tick duration (mean)", result["tick_seconds_mean"], None)


# -- 6. /metrics scrape ------------------------------------------------------------------------


def metrics(session: Session) -> None:
    onboard(session, floor_too=False)
    assert session.operator is not None
    url = f"http://127.0.0.1:{session.operator.metrics_port}/metrics"
    times: list[float] = []
    size = 0
    series = 0
    for _ in range(10):
        began = time.monotonic()
        with urllib.request.urlopen(url, timeout=60) as response:
            body = response.read()
        times.append(time.monotonic() - began)
        size = len(body)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    result: dict[str, Any] = {
        "tenants": len(session.onboarded),
        "scrape": probes.summary(times),
        "bytes": size,
        "series": series,
    }
    session.results["metrics"] = result
    session.add("6 /metrics", "scrape time p50", result["scrape"]["p50"], None)
    session.add("6 /metrics", "size", size / 1024, None, "KiB")
    session.add("6 /metrics", "series", float(series), None, "")


RUN: dict[str, Callable[[Session], None]] = {
    "burst": lambda session: onboard(session, floor_too=True),
    "steady": steady,
    "memory": memory,
    "single": single,
    "drift": drift,
    "subcenter": subcenter,
    "migration": migration,
    "metering": metering,
    "metrics": metrics,
}
