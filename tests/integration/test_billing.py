"""Metering on the real control plane: exact accrual, restarts, closing, statements, metrics."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from _billing_helpers import CPU_PRICE, billing_operator, condition, with_rate_card

from govcloud import constants
from govcloud.billing import periods
from govcloud.dev import cluster, testing
from govcloud.k8s import client

pytestmark = pytest.mark.integration

TZ = periods.zone(8)


CHECKPOINT_ENV = "GOVCLOUD_METERING_CHECKPOINT_SECONDS"


@pytest.fixture(scope="module")
def operator_b(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess
) -> Iterator[testing.OperatorProcess]:
    """The billing operator, writing every report every tick (checkpoint 0): most tests here
    count ticks by the reports' samples. `at_checkpoint` gives it a checkpoint instead."""
    billing = billing_operator(hub, operator)
    yield next(billing)
    next(billing, None)


@contextlib.contextmanager
def at_checkpoint(process: testing.OperatorProcess, seconds: int) -> Iterator[datetime.datetime]:
    """The operator restarted with a metering checkpoint of `seconds`; yields when it started."""
    process.stop()
    process.env[CHECKPOINT_ENV] = str(seconds)
    started = datetime.datetime.now(datetime.UTC)
    try:
        process.start()
        yield started
    finally:
        process.stop()
        process.env[CHECKPOINT_ENV] = "0"
        process.start()


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    """For the module: the operator holds a finalizer on it (the metering timer), so it is
    deleted while the operator still runs, and never re-created while still terminating."""
    yield from with_rate_card(kubectl)


def current_period() -> periods.Period:
    return periods.period_of(datetime.datetime.now(datetime.UTC), TZ)


def pod(name: str, cpu: str = "100m") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ]
        },
    }


def report(kubectl: testing.Kubectl, name: str) -> dict[str, Any]:
    return kubectl.get("usagereport", name) or {}


def line(found: dict[str, Any], resource: str) -> dict[str, Any]:
    for item in (found.get("status") or {}).get("resources") or []:
        if item["resource"] == resource:
            return dict(item)
    return {}


def sample_time(found: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(found["status"]["lastSampleTime"].replace("Z", "+00:00"))


@pytest.fixture
def busy_tenant(
    kubectl: testing.Kubectl, tenants: Any, operator_b: testing.OperatorProcess, rate_card: Any
) -> str:
    """A tenant with three pods of 100m CPU each (quota used: 300m), metered."""
    name = tenants.create("meter")
    tenants.wait_ready(name)
    namespace = f"{name}-app"
    for index in range(3):
        kubectl("apply", "-n", namespace, "-f", "-", stdin=testing.json_text(pod(f"p{index}")))
    testing.eventually(
        lambda: (
            (kubectl.get("resourcequota", "govcloud-quota", namespace) or {})
            .get("status", {})
            .get("used", {})
            .get("requests.cpu")
            in ("300m", "0.3")
        ),
        what="quota used 300m",
    )
    return name


def steady_pair(kubectl: testing.Kubectl, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two readings of the report, both taken after the usage was already 300m."""

    def accrued_at_300m() -> dict[str, Any] | None:
        found = report(kubectl, name)
        samples = (found.get("status") or {}).get("samples") or 0
        return (
            found
            if samples >= 3
            and Decimal(line(found, "requests.cpu").get("requestedHours") or "0") > 0
            else None
        )

    first = testing.eventually(accrued_at_300m, timeout=60, what=f"{name} to accrue")
    testing.eventually(
        lambda: (
            (report(kubectl, name).get("status") or {}).get("samples", 0)
            >= first["status"]["samples"] + 5
        ),
        timeout=60,
        what="five more ticks",
    )
    return first, report(kubectl, name)


def test_requested_hours_accrue_exactly_usage_times_time(
    kubectl: testing.Kubectl, busy_tenant: str
) -> None:
    name = f"{busy_tenant}-{current_period().name}"
    first, second = steady_pair(kubectl, name)
    elapsed = Decimal(str((sample_time(second) - sample_time(first)).total_seconds()))
    got = Decimal(line(second, "requests.cpu")["requestedHours"]) - Decimal(
        line(first, "requests.cpu")["requestedHours"]
    )
    analytic = Decimal("0.3") * elapsed / 3600
    assert abs(got - analytic) <= analytic * Decimal("0.01"), (got, analytic)
    assert abs(got - analytic) < Decimal("1e-7")  # exact but for storage rounding
    allocated = Decimal(line(second, "requests.cpu")["allocatedHours"]) - Decimal(
        line(first, "requests.cpu")["allocatedHours"]
    )
    assert abs(allocated - Decimal(2) * elapsed / 3600) < Decimal("1e-7")
    cpu = line(second, "requests.cpu")
    expected = Decimal(cpu["requestedHours"]) * Decimal(CPU_PRICE) * Decimal("0.8")  # county
    assert abs(Decimal(cpu["amount"]) - expected) < Decimal("1e-7")
    status = second["status"]
    assert status["tier"] == "county"
    assert status["closed"] is False
    assert condition(second, "Rated")["status"] == "True"
    assert sum(Decimal(item["charge"]) for item in status["resources"]) == Decimal(status["total"])


CHECKPOINT = 8  # seconds, for the test below; the operator ticks every second


def written_after(kubectl: testing.Kubectl, name: str, moment: datetime.datetime) -> dict[str, Any]:
    """The report once it was written with a lastSampleTime after `moment`."""
    found: dict[str, Any] = testing.eventually(
        lambda: (
            found
            if (found := report(kubectl, name)).get("status", {}).get("lastSampleTime")
            and sample_time(found) > moment
            else None
        ),
        timeout=60,
        what=f"{name} written after {moment:%H:%M:%S.%f}",
    )
    return found


def quiet_write(kubectl: testing.Kubectl, name: str, since: dict[str, Any]) -> dict[str, Any]:
    """The first write after `since` that came a whole checkpoint after the one before it."""
    earlier = since
    deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)
    while datetime.datetime.now(datetime.UTC) < deadline:
        later = written_after(kubectl, name, sample_time(earlier))
        if (sample_time(later) - sample_time(earlier)).total_seconds() >= CHECKPOINT:
            return later
        earlier = later
    raise AssertionError(f"{name} was never quiet for {CHECKPOINT} s")


def cpu_hours(found: dict[str, Any]) -> Decimal:
    return Decimal(line(found, "requests.cpu")["requestedHours"])


def test_unchanged_usage_is_written_only_at_the_checkpoint_and_a_change_at_once(
    kubectl: testing.Kubectl, busy_tenant: str, operator_b: testing.OperatorProcess
) -> None:
    """300m (3 fen an hour) changes no charge for minutes: a report is written only every
    CHECKPOINT seconds although a tick runs every second, and nothing of the skipped ticks is
    lost; a pod more (400m) is written on the next tick."""
    name = f"{busy_tenant}-{current_period().name}"
    namespace = f"{busy_tenant}-app"
    with at_checkpoint(operator_b, CHECKPOINT) as started:
        # The first ticks after the restart write (each quota the watch lists is a usage
        # change, seen for the first time); then the report is quiet until its checkpoint.
        first = quiet_write(kubectl, name, written_after(kubectl, name, started))
        ticks = operator_b.metric_value("govcloud_metering_ticks_total")
        second = written_after(kubectl, name, sample_time(first))
        third = written_after(kubectl, name, sample_time(second))
        ticked = operator_b.metric_value("govcloud_metering_ticks_total") - ticks
        assert third["status"]["samples"] == first["status"]["samples"] + 2  # two writes ...
        assert ticked >= 6, ticked  # ... in many more ticks
        for earlier, later in ((first, second), (second, third)):
            apart = (sample_time(later) - sample_time(earlier)).total_seconds()
            assert CHECKPOINT <= apart < CHECKPOINT + 4, apart  # at the checkpoint, not before
            elapsed = Decimal(str(apart))
            # The skipped ticks are in the next write, exactly once: 0.3 cores x the interval.
            got = cpu_hours(later) - cpu_hours(earlier)
            assert abs(got - Decimal("0.3") * elapsed / 3600) < Decimal("1e-7"), (got, elapsed)

        # A billable change: one more pod of 100m, written on the next tick.
        changed = datetime.datetime.now(datetime.UTC)
        kubectl("apply", "-n", namespace, "-f", "-", stdin=testing.json_text(pod("p3")))
        after_change = written_after(kubectl, name, sample_time(third))
        early = (sample_time(after_change) - sample_time(third)).total_seconds()
        assert early < CHECKPOINT - 2, early  # the change did not wait for the checkpoint
        steady = written_after(kubectl, name, sample_time(after_change))
    # From the last write at 300m to the write at the change: 300m until the pod was admitted,
    # 400m after; solving for that moment puts it between applying the pod and the write.
    span = Decimal(str((sample_time(after_change) - sample_time(third)).total_seconds()))
    got = (cpu_hours(after_change) - cpu_hours(third)) * 3600
    admitted = sample_time(third) + datetime.timedelta(
        seconds=float((got - Decimal("0.3") * span) / Decimal("-0.1") + span)
    )
    assert changed - datetime.timedelta(seconds=1) <= admitted <= sample_time(after_change)
    elapsed = Decimal(str((sample_time(steady) - sample_time(after_change)).total_seconds()))
    got = cpu_hours(steady) - cpu_hours(after_change)
    assert abs(got - Decimal("0.4") * elapsed / 3600) < Decimal("1e-7"), (got, elapsed)
    cpu = line(steady, "requests.cpu")
    expected = Decimal(cpu["requestedHours"]) * Decimal(CPU_PRICE) * Decimal("0.8")  # county
    assert abs(Decimal(cpu["amount"]) - expected) < Decimal("1e-7")
    status = steady["status"]
    assert sum(Decimal(item["charge"]) for item in status["resources"]) == Decimal(status["total"])


def test_a_restart_neither_resets_nor_double_counts(
    kubectl: testing.Kubectl, busy_tenant: str, operator_b: testing.OperatorProcess
) -> None:
    name = f"{busy_tenant}-{current_period().name}"
    before, _ = steady_pair(kubectl, name)
    operator_b.kill()
    before = report(kubectl, name)  # the last write before the kill
    try:
        # The operator stays down until the report is 6 s behind: the gap to be billed.
        testing.eventually(
            lambda: (
                datetime.datetime.now(datetime.UTC) - sample_time(before)
                > datetime.timedelta(seconds=6)
            ),
            timeout=30,
            what="a 6 s gap since the last sample",
        )
    finally:
        operator_b.start()
    after = testing.eventually(
        lambda: (
            found
            if (found := report(kubectl, name))["status"]["samples"] > before["status"]["samples"]
            else None
        ),
        timeout=60,
        what="metering to resume after the restart",
    )
    elapsed = Decimal(str((sample_time(after) - sample_time(before)).total_seconds()))
    assert elapsed > 6
    got = Decimal(line(after, "requests.cpu")["requestedHours"]) - Decimal(
        line(before, "requests.cpu")["requestedHours"]
    )
    analytic = Decimal("0.3") * elapsed / 3600  # the gap is billed at the usage after it
    assert abs(got - analytic) < Decimal("1e-7"), (got, analytic)
    assert Decimal(after["status"]["gapSeconds"]) > Decimal(before["status"].get("gapSeconds") or 0)


def test_a_stale_write_is_refused_so_two_replicas_cannot_both_accrue(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, busy_tenant: str
) -> None:
    name = f"{busy_tenant}-{current_period().name}"
    stale = testing.eventually(  # created, then its status written by the same tick
        lambda: (found := report(kubectl, name)) and found.get("status") and found,
        what="the report with its status",
    )
    testing.eventually(
        lambda: (
            report(kubectl, name)["metadata"]["resourceVersion"]
            != stale["metadata"]["resourceVersion"]
        ),
        what="a tick after the read",
    )
    other_replica = client.Cluster(client.load_api_client(str(hub.kubeconfig)))
    with pytest.raises(client.ApiError) as refused:
        other_replica.patch_status(
            constants.API_VERSION,
            "UsageReport",
            name,
            {"samples": stale["status"]["samples"] + 1},
            resource_version=stale["metadata"]["resourceVersion"],
        )
    assert refused.value.status == 409


def _leave_open_report(
    kubectl: testing.Kubectl,
    tenant: str,
    previous: periods.Period,
    name: str,
    last_minute: datetime.datetime,
) -> None:
    """Last month's report, open, last sampled a minute before the month ended."""
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "UsageReport",
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/managed-by": "govcloud-operator",
                    "govcloud.io/tenant": tenant,
                    "govcloud.io/period": previous.name,
                },
            },
            "spec": {"tenant": tenant, "period": previous.name},
        }
    )
    started = {"lastSampleTime": last_minute.strftime("%Y-%m-%dT%H:%M:%SZ"), "samples": 7}
    kubectl(
        "patch", "usagereport", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": started}),
    )  # fmt: skip


def test_last_months_report_is_closed_once_and_never_changes_again(
    kubectl: testing.Kubectl, busy_tenant: str, operator_b: testing.OperatorProcess
) -> None:
    previous = current_period().previous()
    # Metered at 300m for a while: the first usage the operator knows is 300m.
    steady_pair(kubectl, f"{busy_tenant}-{current_period().name}")
    name = f"{busy_tenant}-{previous.name}"
    last_minute = previous.end(TZ) - datetime.timedelta(seconds=60)
    # Last month's report is set up as an earlier run left it, with no operator racing the
    # two writes (a report without lastSampleTime would otherwise be closed in between).
    operator_b.kill()
    try:
        _leave_open_report(kubectl, busy_tenant, previous, name, last_minute)
    finally:
        operator_b.start()
    closed = testing.eventually(
        lambda: found if (found := report(kubectl, name)).get("status", {}).get("closed") else None,
        timeout=30,
        what="last month's report to be closed",
    )
    status = closed["status"]
    # The last minute of the month is accrued (at the usage observed: 300m), then it closes.
    assert Decimal(line(closed, "requests.cpu")["requestedHours"]) == Decimal("0.005")
    assert status["samples"] == 8
    assert sample_time(closed) == previous.end(TZ)
    assert status["closedAt"]
    # Final: nobody can change it, not even the status subresource.
    changed = kubectl.run(
        "patch", "usagereport", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"total": "99.99"}}),
    )  # fmt: skip
    assert changed.returncode != 0
    assert "a closed UsageReport never changes" in changed.stderr
    events = kubectl.json(
        "get", "events", "-A", "--field-selector", f"involvedObject.name={name},reason=ReportClosed"
    )["items"]
    assert len(events) == 1
    assert (events[0].get("count") or 1) == 1
    # Metering keeps ticking (the current month's report gains samples); last month's stays.
    current = f"{busy_tenant}-{current_period().name}"
    samples = report(kubectl, current)["status"]["samples"]
    testing.eventually(
        lambda: report(kubectl, current)["status"]["samples"] >= samples + 2,
        timeout=30,
        what="two more metering ticks",
    )
    assert (
        report(kubectl, name)["metadata"]["resourceVersion"]
        == closed["metadata"]["resourceVersion"]
    )
    kubectl.run("delete", "usagereport", name, "--wait=false")


def test_the_statement_totals_equal_the_sum_of_the_reports(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None
) -> None:
    period = "2020-03"  # a month nobody meters: the reports stay as written
    written = {
        "city-a": ("city", "12.34"),
        "city-b": ("city", "0.66"),
        "zone-c": ("devzone", "5.05"),
    }
    for tenant, (tier, total) in written.items():
        name = f"{tenant}-{period}"
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "UsageReport",
                "metadata": {"name": name, "labels": {"govcloud.io/period": period}},
                "spec": {"tenant": tenant, "period": period},
            }
        )
        status = {
            "tier": tier,
            "currency": "CNY",
            "total": total,
            "closed": True,
            "resources": [
                {"resource": "requests.cpu", "unit": "core", "charge": total, "amount": total}
            ],
        }
        if tier == "devzone":  # as metering writes it now; the city reports as before
            status["unit"] = {"code": tenant, "name": "高新区管委会", "region": "高新区"}
            status["payer"] = "devzone:高新区"
        kubectl(
            "patch", "usagereport", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip
    try:
        env = {**os.environ, "KUBECONFIG": str(hub.kubeconfig)}
        out = subprocess.run(
            [sys.executable, "-m", "govcloud", "report", "--period", period, "--format", "json"],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        found = json.loads(out)
        assert found["total"] == "18.05"
        assert found["tiers"] == {"city": "13.00", "devzone": "5.05"}
        assert [row["tenant"] for row in found["tenants"]] == ["city-a", "city-b", "zone-c"]
        text = subprocess.run(
            [sys.executable, "-m", "govcloud", "report", "--period", period, "--format", "csv"],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        header = "period,payer,tier,tenant,unit,name,requests.cpu,total,closed"
        assert text.splitlines()[0] == header
        assert f"{period},city,,(subtotal),,,,13.00," in text
        assert f"{period},devzone:高新区,,(subtotal),,,,5.05," in text
        assert text.splitlines()[-1] == f"{period},(all),(all),(total),,,,18.05,"
        assert found["payers"] == {"city": "13.00", "devzone:高新区": "5.05"}
        # The zone's finance reads its own statement.
        zone = json.loads(
            subprocess.run(
                [sys.executable, "-m", "govcloud", "report", "--period", period,
                 "--format", "json", "--payer", "devzone:高新区"],
                env=env, capture_output=True, text=True, check=True, timeout=60,
            ).stdout
        )  # fmt: skip
        assert [row["tenant"] for row in zone["tenants"]] == ["zone-c"]
        assert zone["tenants"][0]["name"] == "高新区管委会"
        assert zone["total"] == "5.05"
        # The year's assessment reads the same reports (the units, their spend, who pays).
        year = json.loads(
            subprocess.run(
                [sys.executable, "-m", "govcloud", "report", "assessment", "--year",
                 period[:4], "--format", "json"],
                env=env, capture_output=True, text=True, check=True, timeout=60,
            ).stdout
        )  # fmt: skip
        units = {unit["tenant"]: unit for unit in year["units"] if unit["tenant"] in written}
        assert {name: unit["spend"] for name, unit in units.items()} == {
            "city-a": "12.34",
            "city-b": "0.66",
            "zone-c": "5.05",
        }
        assert units["zone-c"]["payer"] == "devzone:高新区"
        assert units["zone-c"]["verdict"] == "OnTrack"
    finally:
        for tenant in written:
            kubectl.run("delete", "usagereport", f"{tenant}-{period}", "--wait=false")


def test_metrics_equal_the_reports(
    kubectl: testing.Kubectl, busy_tenant: str, operator_b: testing.OperatorProcess
) -> None:
    name = f"{busy_tenant}-{current_period().name}"
    steady_pair(kubectl, name)
    before = Decimal(line(report(kubectl, name), "requests.cpu")["requestedHours"])
    metric = operator_b.metric_value(
        "govcloud_usage_resource_hours",
        tenant=busy_tenant,
        resource="requests.cpu",
        type="requested",
    )
    after = Decimal(line(report(kubectl, name), "requests.cpu")["requestedHours"])
    # The metric is the report's value of some tick between the two reads (one tick apart).
    assert float(before) - 1e-4 <= metric <= float(after) + 1e-4
    charge = operator_b.metric_value("govcloud_usage_charge_cny", tenant=busy_tenant)
    assert charge == float(report(kubectl, name)["status"]["total"])
    assert operator_b.metric_value("govcloud_usage_tier_charge_cny", tier="county") >= charge
    assert operator_b.metric_value("govcloud_metering_last_tick_timestamp_seconds") > 0


def test_a_requested_resource_without_a_rate_is_recorded_and_surfaced(
    kubectl: testing.Kubectl, tenants: Any, operator_b: testing.OperatorProcess, rate_card: Any
) -> None:
    name = tenants.create(
        "gpu", quota={"requests.cpu": "2", "requests.memory": "4Gi", "requests.nvidia.com/gpu": "2"}
    )
    tenants.wait_ready(name)
    gpu_pod = pod("trainer")
    container = gpu_pod["spec"]["containers"][0]
    container["resources"] = {
        "requests": {"cpu": "100m", "memory": "64Mi", "nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    kubectl("apply", "-n", f"{name}-app", "-f", "-", stdin=testing.json_text(gpu_pod))
    found = testing.eventually(
        lambda: (
            found
            if condition(found := report(kubectl, f"{name}-{current_period().name}"), "Rated").get(
                "status"
            )
            == "False"
            else None
        ),
        timeout=60,
        what="the report to say the GPU is unpriced",
    )
    rated = condition(found, "Rated")
    assert rated["reason"] == "MissingRate"
    assert "requests.nvidia.com/gpu" in rated["message"]
    assert found["status"]["unratedResources"] == ["requests.nvidia.com/gpu"]
    assert Decimal(line(found, "requests.nvidia.com/gpu")["requestedHours"]) > 0
    assert line(found, "requests.nvidia.com/gpu")["charge"] == "0.00"
    priced = testing.eventually(
        lambda: condition(kubectl.get("ratecard", "default"), "Priced").get("status") == "False",
        what="the rate card to say so too",
    )
    assert priced
