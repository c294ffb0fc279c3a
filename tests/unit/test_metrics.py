"""Pre-rendered /metrics: the collectors' samples, kept current, never half an object, over HTTP."""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from govcloud import metrics, metrics_http

ESCAPED_TIER = 'silver "quoted" \\ back\nslash'

Families = dict[str, tuple[str, str, frozenset[tuple[str, frozenset[tuple[str, str]], float]]]]


def families(text: bytes) -> Families:
    """Every family by name: its type, HELP and the set of its samples."""
    return {
        family.name: (
            family.type,
            family.documentation,
            frozenset(
                (sample.name, frozenset(sample.labels.items()), sample.value)
                for sample in family.samples
            ),
        )
        for family in text_string_to_metric_families(text.decode())
    }


def assert_same_as_the_collectors(recorder: metrics.Recorder) -> bytes:
    """The served text and `generate_latest(registry)` agree sample for sample and line for
    line (family order aside); returns the served text."""
    served = recorder.exposition()
    collected = generate_latest(recorder.registry)
    assert families(served) == families(collected)
    assert sorted(served.splitlines()) == sorted(collected.splitlines())
    for family in metrics.GAUGE_FAMILIES:
        assert family_lines(served, family) == family_lines(collected, family), family.name
    return served


def family_lines(text: bytes, family: metrics.Family) -> list[str]:
    """A gauge family's HELP, TYPE and sample lines, in the order written."""
    name = family.name
    return [
        line
        for line in text.decode().splitlines()
        if line.startswith((f"# HELP {name} ", f"{name}{{", f"{name} "))
        or line == f"# TYPE {name} gauge"
    ]


def gauge_lines(text: bytes, name: str) -> list[str]:
    return [
        line for line in text.decode().splitlines() if line.startswith((f"{name}{{", f"{name} "))
    ]


ALPHA = metrics.TenantSnapshot(
    tier="gold",
    phase="Active",
    namespaces=3,
    hard={"cpu": 8.0, "memory": 17179869184.0, "pods": 100},
    used={"cpu": 2.5, "memory": 1.5e9},
    conditions={"Ready": "True", "QuotaExceeded": "False", "Degraded": "Unknown"},
    reconciled_at=1733540123.456,
)


def tenant(tier: str = "gold", **changes: Any) -> metrics.TenantSnapshot:
    return dataclasses.replace(ALPHA, tier=tier, **changes)


def feed(recorder: metrics.Recorder) -> None:
    """Tenants with and without conditions and quota, label values that need escaping, large,
    tiny and infinite values, sub-centers with and without latency and expiry, migrations in
    several phases, usage whose tier sums round, plans in every review state, a metering tick."""
    recorder.record_tenant("alpha", tenant())
    recorder.record_tenant(
        "beta",
        tenant(
            ESCAPED_TIER,
            phase="Pending",
            namespaces=0,
            hard={},
            used={},
            conditions={"Ready": "weird"},
            reconciled_at=0.0,
        ),
    )
    recorder.record_tenant(
        "gamma", tenant(hard={"cpu": 1e-7, "storage": 1e21}, used={"cpu": float("inf")})
    )
    recorder.record_subcenter(
        "feixi",
        metrics.SubCenterSnapshot(
            mode="push",
            tier="gold",
            up=True,
            ready=True,
            latency_seconds=0.0123,
            allocatable={"cpu": 64, "memory": 274877906944.0},
            allocated={"cpu": 10.0},
            tenants=2,
            credential_expiry=1.8e9,
        ),
    )
    recorder.record_subcenter(
        "lujiang",
        metrics.SubCenterSnapshot(
            mode="pull", tier=ESCAPED_TIER, up=False, ready=False, latency_seconds=None
        ),
    )
    for key, plan in {
        "alpha/m1": metrics.MigrationSnapshot("alpha", "gold", "Running", overdue=True),
        "alpha/m2": metrics.MigrationSnapshot("alpha", "gold", "Running", at_risk=True),
        "alpha/m3": metrics.MigrationSnapshot("alpha", "gold", "Completed", completed_on_time=True),
        "beta/m1": metrics.MigrationSnapshot("beta", ESCAPED_TIER, "Pending"),
        "gamma/m1": metrics.MigrationSnapshot(
            "gamma", "gold", "Failed", overdue=True, at_risk=True
        ),
    }.items():
        recorder.record_migration(key, plan)
    billing = recorder.billing
    for name, tier, charge in (
        ("alpha", "gold", 0.1),
        ("gamma", "gold", 0.2),
        ("beta", ESCAPED_TIER, 1234567.891),
        ("delta", "gold", 0.7),
        # In tenant order 0.1 + 0.2 + 0.3 is 0.6000000000000001; in any other, or exactly, 0.6.
        ("z3", "copper", 0.3),
        ("z2", "copper", 0.2),
        ("z1", "copper", 0.1),
    ):
        billing.record_usage(
            name,
            metrics.UsageSnapshot(
                tier=tier,
                period="2026-12",
                charge=charge,
                requested_hours={"cpu": 10.5, "memory": 20.25},
                allocated_hours={"cpu": 30.0},
            ),
        )
    billing.record_plan(
        "alpha",
        metrics.PlanSnapshot(
            "gold",
            "Approved",
            {"cpu": 16},
            estimated_annual_cost=1.5,
            payer="county:庐江",
            apps_missing=2,
        ),
    )
    billing.record_plan(
        "epsilon",
        metrics.PlanSnapshot(
            "gold",
            "Approved",
            {"cpu": 4, "memory": 2.0},
            estimated_annual_cost=0.1,
            payer="county:庐江",
        ),
    )
    billing.record_plan(
        "zeta", metrics.PlanSnapshot("gold", "Pending", {"cpu": 100}, payer="county:庐江")
    )
    billing.record_plan("beta", metrics.PlanSnapshot(ESCAPED_TIER, "Pending", pending_since=1.7e9))
    billing.record_plan("gamma", metrics.PlanSnapshot("gold", "Rejected", pending_since=1.7e9))
    billing.record_assessments(
        {
            "alpha": metrics.AssessmentSnapshot(
                "gold",
                "county:庐江",
                1234.5,
                {"requests.cpu": 0.125, "requests.memory": 1 / 3},
                lagging=True,
                reasons=2,
            ),
            "beta": metrics.AssessmentSnapshot(ESCAPED_TIER, "city", 0.0),
        }
    )
    billing.record_tick(1733540200.25)
    recorder.reconciles.labels(kind="CloudTenant", result="success").inc()
    recorder.reconcile_seconds.labels(kind="CloudTenant").observe(0.25)
    recorder.count_write("hub", "apply", "Namespace")
    billing.ticks.labels(result="success").inc()
    billing.tick_seconds.observe(1.5)


@pytest.fixture
def recorder() -> metrics.Recorder:
    fed = metrics.Recorder(CollectorRegistry())
    feed(fed)
    return fed


def test_an_empty_recorder_serves_every_family_with_help_and_type() -> None:
    served = assert_same_as_the_collectors(metrics.Recorder(CollectorRegistry()))
    for family in metrics.GAUGE_FAMILIES:
        assert served.decode().count(f"# TYPE {family.name} gauge\n") == 1


def test_the_served_text_holds_the_same_samples_as_the_collectors(
    recorder: metrics.Recorder,
) -> None:
    served = assert_same_as_the_collectors(recorder)
    text = served.decode()
    assert 'tier="silver \\"quoted\\" \\\\ back\\nslash"' in text
    assert (
        'govcloud_tenant_resourcequota{resource="cpu",tenant="gamma",tier="gold",type="used"}'
        " +Inf" in text
    )
    assert gauge_lines(served, "govcloud_usage_tier_charge_cny")[:2] == [
        'govcloud_usage_tier_charge_cny{tier="copper"} 0.6000000000000001',
        'govcloud_usage_tier_charge_cny{tier="gold"} 1.0',
    ]
    assert gauge_lines(served, "govcloud_metering_last_tick_timestamp_seconds") == [
        "govcloud_metering_last_tick_timestamp_seconds 1.73354020025e+09"
    ]


def test_each_gauge_family_is_contiguous_under_one_help_and_type(
    recorder: metrics.Recorder,
) -> None:
    lines = recorder.exposition().decode().splitlines()
    for family in metrics.GAUGE_FAMILIES:
        help_line, type_line = f"# HELP {family.name} ", f"# TYPE {family.name} gauge"
        own = [
            index
            for index, line in enumerate(lines)
            if line.startswith((help_line, f"{family.name}{{", f"{family.name} "))
            or line == type_line
        ]
        assert lines[own[0]].startswith(help_line), family.name
        assert lines[own[1]] == type_line
        assert own == list(range(own[0], own[-1] + 1)), f"{family.name} is split"
        assert sum(line.startswith(help_line) for line in lines) == 1


def test_the_pre_rendered_text_is_what_prometheus_client_wrote_before(
    recorder: metrics.Recorder,
) -> None:
    """Lines of the collectors this recorder replaced, as they wrote them for `feed`."""
    text = recorder.exposition().decode()
    for line in (
        "# HELP govcloud_tenant_resourcequota Tenant-wide quota per resource in base units;"
        " type is hard or used.",
        'govcloud_tenant_resourcequota{resource="memory",tenant="alpha",tier="gold",type="hard"}'
        " 1.7179869184e+10",
        'govcloud_tenant_resourcequota{resource="storage",tenant="gamma",tier="gold",type="hard"}'
        " 1e+21",
        'govcloud_tenant_resourcequota{resource="cpu",tenant="gamma",tier="gold",type="hard"}'
        " 1e-07",
        'govcloud_tenant_status_condition{condition="Ready",status="unknown",tenant="beta"} 0.0',
        'govcloud_tenant_last_reconcile_timestamp_seconds{tenant="alpha"} 1.733540123456e+09',
        'govcloud_subcenter_up{mode="push",subcenter="feixi",tier="gold"} 1.0',
        'govcloud_subcenter_capacity{resource="cpu",subcenter="feixi",type="allocatable"} 64.0',
        'govcloud_migration_plans{phase="Running",tenant="alpha",tier="gold"} 2.0',
        'govcloud_migration_plans_overdue{tenant="alpha",tier="gold"} 1.0',
        "# HELP govcloud_usage_resource_hours Unit-hours of the current period (cores, GiB or"
        " units); type is requested (billed: quota used x hours) or allocated (quota hard x"
        " hours).",
        'govcloud_usage_charge_cny{tenant="beta",tier="silver \\"quoted\\" \\\\ back\\nslash"}'
        " 1.234567891e+06",
        'govcloud_plan_review_state{state="ChangesRequested",tenant="alpha"} 0.0',
        'govcloud_plan_pending_since_timestamp_seconds{tenant="beta",'
        'tier="silver \\"quoted\\" \\\\ back\\nslash"} 1.7e+09',
    ):
        assert f"\n{line}\n" in text
    assert 'govcloud_plan_pending_since_timestamp_seconds{tenant="gamma"' not in text
    assert 'govcloud_subcenter_probe_latency_seconds{subcenter="lujiang"}' not in text


def test_forget_drops_every_series_of_the_object_and_record_brings_them_back(
    recorder: metrics.Recorder,
) -> None:
    before = recorder.exposition()
    recorder.forget_tenant("alpha")
    recorder.forget_subcenter("feixi")
    recorder.forget_migration("gamma/m1")
    recorder.billing.forget_plan("beta")
    served = assert_same_as_the_collectors(recorder)
    text = served.decode()
    assert 'tenant="alpha"' not in "".join(
        line
        for line in text.splitlines()
        if line.startswith(("govcloud_tenant", "govcloud_usage", "govcloud_assessment"))
    )
    assert 'tenant="alpha"' not in "".join(gauge_lines(served, "govcloud_plan_review_state"))
    assert 'subcenter="feixi"' not in text
    assert 'tenant="gamma"' not in "".join(
        line for line in text.splitlines() if line.startswith("govcloud_migration")
    )
    assert not gauge_lines(served, "govcloud_plan_pending_since_timestamp_seconds")
    # alpha's charge left its tier's sum; its migrations are plans of their own, still there.
    assert 'govcloud_usage_tier_charge_cny{tier="gold"} 0.8999999999999999' in text
    assert 'govcloud_migration_plans{phase="Running",tenant="alpha",tier="gold"} 2.0' in text
    feed(recorder)
    recorder.forget_tenant("nobody")
    recorder.forget_subcenter("nowhere")
    recorder.forget_migration("nobody/m1")
    recorder.billing.forget_plan("nobody")
    assert_same_as_the_collectors(recorder)
    assert gauge_lines(recorder.exposition(), "govcloud_tenant_phase") == gauge_lines(
        before, "govcloud_tenant_phase"
    )


def test_a_plan_that_changes_phase_or_tier_moves_its_count(recorder: metrics.Recorder) -> None:
    recorder.record_migration("alpha/m1", metrics.MigrationSnapshot("alpha", "bronze", "Running"))
    recorder.record_migration(
        "alpha/m2", metrics.MigrationSnapshot("alpha", "gold", "Completed", at_risk=True)
    )
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_migration_plans_overdue")[:2] == [
        'govcloud_migration_plans_overdue{tenant="alpha",tier="bronze"} 0.0',
        'govcloud_migration_plans_overdue{tenant="alpha",tier="gold"} 0.0',
    ]
    assert 'phase="Running",tenant="alpha",tier="gold"' not in served.decode()
    assert (
        'govcloud_migration_plans{phase="Completed",tenant="alpha",tier="gold"} 2.0'
        in served.decode()
    )
    for key in ("alpha/m1", "alpha/m2", "alpha/m3"):
        recorder.forget_migration(key)
    served = assert_same_as_the_collectors(recorder)
    assert 'tenant="alpha"' not in "".join(gauge_lines(served, "govcloud_migration_plans_at_risk"))


def test_a_tenant_that_changes_tier_moves_its_charge(recorder: metrics.Recorder) -> None:
    recorder.billing.record_usage("delta", metrics.UsageSnapshot("bronze", "2026-12", 2.5))
    recorder.billing.record_usage("gamma", metrics.UsageSnapshot("gold", "2026-12", 0.25))
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_usage_tier_charge_cny")[:3] == [
        'govcloud_usage_tier_charge_cny{tier="bronze"} 2.5',
        'govcloud_usage_tier_charge_cny{tier="copper"} 0.6000000000000001',
        'govcloud_usage_tier_charge_cny{tier="gold"} 0.35',
    ]
    recorder.forget_tenant("delta")
    served = assert_same_as_the_collectors(recorder)
    assert 'tier="bronze"' not in served.decode()


def test_the_registry_still_yields_every_family_after_a_scrape(
    recorder: metrics.Recorder,
) -> None:
    recorder.exposition()
    collected = families(generate_latest(recorder.registry))
    for family in (*metrics.TENANT_FAMILIES, *metrics.SUBCENTER_FAMILIES):
        assert collected[family.name][2], family.name


def one_tenant(version: int) -> metrics.TenantSnapshot:
    return tenant(
        namespaces=version,
        hard={"cpu": version},
        used={"cpu": version},
        conditions={"Ready": "True"},
        reconciled_at=version,
    )


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Threads switch every microsecond, so a scrape lands between any two steps of a record."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fine_switching")
def test_a_scrape_never_sees_a_half_recorded_tenant() -> None:
    recorder = metrics.Recorder(CollectorRegistry())
    recorder.record_tenant("alpha", one_tenant(1))
    stop = threading.Event()

    def flip() -> None:
        version = 1
        while not stop.is_set():
            version = 3 - version
            recorder.record_tenant("alpha", one_tenant(version))

    writer = threading.Thread(target=flip)
    writer.start()
    try:
        versions_seen: set[float] = set()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            served = families(recorder.exposition())
            values = {
                sample[2]
                for name in ("govcloud_tenant_resourcequota", "govcloud_tenant_namespaces")
                for sample in served[name][2]
            } | {
                sample[2]
                for sample in served["govcloud_tenant_last_reconcile_timestamp_seconds"][2]
            }
            assert len(values) == 1, f"one scrape saw two versions of alpha: {values}"
            versions_seen |= values
    finally:
        stop.set()
        writer.join()
    assert versions_seen == {1.0, 2.0}


@pytest.fixture
def served(recorder: metrics.Recorder) -> Iterator[metrics_http.MetricsServer]:
    server = metrics.serve(recorder, 0, "127.0.0.1")
    yield server
    server.shutdown()


def scrape(port: int) -> tuple[str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        return response.headers["Content-Type"], response.read()


def test_serve_answers_metrics_over_http_and_stays_current(
    recorder: metrics.Recorder, served: metrics_http.MetricsServer
) -> None:
    content_type, body = scrape(served.port)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert body == recorder.exposition()
    assert families(body) == families(generate_latest(recorder.registry))
    recorder.record_tenant("epsilon", tenant())
    recorder.forget_subcenter("feixi")
    _, body = scrape(served.port)
    assert 'govcloud_tenant_phase{phase="Active",tenant="epsilon"} 1.0' in body.decode()
    assert 'subcenter="feixi"' not in body.decode()
    assert families(body) == families(generate_latest(recorder.registry))


def test_a_server_that_is_shut_down_refuses_scrapes(recorder: metrics.Recorder) -> None:
    server = metrics.serve(recorder, 0, "127.0.0.1")
    scrape(server.port)
    server.shutdown()
    with pytest.raises(urllib.error.URLError):
        scrape(server.port)


def test_a_request_other_than_get_is_refused(served: metrics_http.MetricsServer) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{served.port}/metrics", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405


def test_a_client_that_stalls_is_cut_off_and_the_next_scrape_answered(
    recorder: metrics.Recorder,
) -> None:
    server = metrics_http.serve(recorder.exposition, 0, "127.0.0.1", client_timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as stalled:
            stalled.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the end of the headers
            _, body = scrape(server.port)
            assert body == recorder.exposition()
            assert stalled.recv(1) == b"", "the stalled client was not cut off"
    finally:
        server.shutdown()


def test_approved_plans_add_up_per_paying_level(recorder: metrics.Recorder) -> None:
    """The budget basis of each level: approved plans only, summed per payer."""
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_plan_approved_ceiling_by_payer") == [
        'govcloud_plan_approved_ceiling_by_payer{payer="county:庐江",resource="cpu"} 20.0',
        'govcloud_plan_approved_ceiling_by_payer{payer="county:庐江",resource="memory"} 2.0',
    ]
    assert gauge_lines(served, "govcloud_plan_approved_cost_by_payer_cny") == [
        'govcloud_plan_approved_cost_by_payer_cny{payer="county:庐江"} 1.6'
    ]
    recorder.billing.record_plan(
        "epsilon", metrics.PlanSnapshot("gold", "Approved", {"cpu": 4}, payer="city")
    )
    recorder.billing.forget_plan("alpha")
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_plan_approved_ceiling_by_payer") == [
        'govcloud_plan_approved_ceiling_by_payer{payer="city",resource="cpu"} 4.0'
    ]
    assert gauge_lines(served, "govcloud_plan_approved_cost_by_payer_cny") == []


def test_planned_apps_past_their_date_without_a_migration_count_for_approved_plans_only(
    recorder: metrics.Recorder,
) -> None:
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_plan_apps_missing") == [
        'govcloud_plan_apps_missing{tenant="alpha",tier="gold"} 2.0',
        'govcloud_plan_apps_missing{tenant="epsilon",tier="gold"} 0.0',
    ]


def test_the_assessment_of_each_tenant_is_served_and_follows_the_last_tick(
    recorder: metrics.Recorder,
) -> None:
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_assessment_quota_utilisation_ratio") == [
        'govcloud_assessment_quota_utilisation_ratio{resource="requests.cpu",tenant="alpha",'
        'tier="gold"} 0.125',
        'govcloud_assessment_quota_utilisation_ratio{resource="requests.memory",tenant="alpha",'
        'tier="gold"} 0.3333333333333333',
    ]
    assert gauge_lines(served, "govcloud_assessment_lagging") == [
        'govcloud_assessment_lagging{payer="county:庐江",tenant="alpha",tier="gold"} 1.0',
        'govcloud_assessment_lagging{payer="city",tenant="beta",tier="silver \\"quoted\\"'
        ' \\\\ back\\nslash"} 0.0',
    ]
    assert gauge_lines(served, "govcloud_assessment_lagging_reasons")[0] == (
        'govcloud_assessment_lagging_reasons{tenant="alpha",tier="gold"} 2.0'
    )
    assert gauge_lines(served, "govcloud_assessment_spend_cny")[0] == (
        'govcloud_assessment_spend_cny{tenant="alpha",tier="gold"} 1234.5'
    )
    assert ("metrics_assessments", 2) in recorder.entries()
    # The next tick's assessments replace them: alpha on track, beta gone meanwhile.
    recorder.billing.record_assessments(
        {"alpha": metrics.AssessmentSnapshot("gold", "county:庐江", 1300.0, {"requests.cpu": 0.5})}
    )
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_assessment_lagging") == [
        'govcloud_assessment_lagging{payer="county:庐江",tenant="alpha",tier="gold"} 0.0'
    ]
    assert gauge_lines(served, "govcloud_assessment_quota_utilisation_ratio") == [
        'govcloud_assessment_quota_utilisation_ratio{resource="requests.cpu",tenant="alpha",'
        'tier="gold"} 0.5'
    ]
    assert ("metrics_assessments", 1) in recorder.entries()
    recorder.forget_tenant("alpha")
    assert not gauge_lines(recorder.exposition(), "govcloud_assessment_spend_cny")
    assert ("metrics_assessments", 0) in recorder.entries()


def test_grants_are_counted_per_tenant_and_side_and_expiring_by_the_clock() -> None:
    registry = CollectorRegistry()
    now = [1_000_000.0]
    grants = metrics.GrantRecorder(registry, window=3600.0, clock=lambda: now[0])
    grants.record("mz-app/a", metrics.GrantSnapshot("rsj", "mz", "Active", 1_000_000.0 + 7200))
    grants.record("mz-app/b", metrics.GrantSnapshot("rsj", "mz", "Active", 1_000_000.0 + 60))
    grants.record("mz-app/c", metrics.GrantSnapshot("gaj", "mz", "Pending", 1_000_000.0 + 60))

    def value(name: str, tenant: str, side: str) -> float | None:
        return registry.get_sample_value(name, {"tenant": tenant, "side": side})

    assert value("govcloud_network_grants_active", "rsj", "provider") == 2
    assert value("govcloud_network_grants_active", "mz", "consumer") == 2
    assert value("govcloud_network_grants_expiring", "mz", "consumer") == 1
    assert value("govcloud_network_grants_pending", "gaj", "provider") == 1
    now[0] += 3600  # a grant crosses into "expiring" without a pass; one has ended
    assert value("govcloud_network_grants_expiring", "rsj", "provider") == 1
    assert value("govcloud_network_grants_active", "rsj", "provider") == 1
    grants.forget("mz-app/a")
    grants.forget("mz-app/b")
    assert value("govcloud_network_grants_active", "rsj", "provider") is None


def test_a_tenants_backups_are_served_as_the_collectors_see_them_and_forgotten_with_it() -> None:
    recorder = metrics.Recorder(CollectorRegistry())
    recorder.backup.record("alpha", metrics.BackupSnapshot(True, 93600.0, 1_765_000_000.0))
    recorder.backup.record("beta", metrics.BackupSnapshot(False, 93600.0))
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_tenant_backup_rpo_met") == [
        'govcloud_tenant_backup_rpo_met{tenant="alpha"} 1.0',
        'govcloud_tenant_backup_rpo_met{tenant="beta"} 0.0',
    ]
    assert gauge_lines(served, "govcloud_tenant_backup_last_success_timestamp_seconds") == [
        'govcloud_tenant_backup_last_success_timestamp_seconds{tenant="alpha"} 1.765e+09'
    ]
    recorder.forget_tenant("alpha")
    recorder.backup.record("beta", None)  # no longer backed up
    served = assert_same_as_the_collectors(recorder)
    assert gauge_lines(served, "govcloud_tenant_backup_rpo_met") == []
    assert gauge_lines(served, "govcloud_tenant_backup_rpo_seconds") == []
