"""Metering tenants placed on a sub-center, on two real control planes (hub and site).

The site's quotas are read by one LIST per site per metering tick. While the site's API
server is stopped its tenant is billed nothing (the time is counted in unmeteredSeconds), and
billing resumes, exactly, once it answers again.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from _billing_helpers import billing_operator, with_rate_card

from govcloud.billing import periods
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

TZ = periods.zone(8)
USAGE = Decimal("0.3")  # three pods of 100m
EXACT = Decimal("1e-6")  # 9 stored decimals, summed over a few dozen ticks


@pytest.fixture(scope="module")
def operator_b(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess
) -> Iterator[testing.OperatorProcess]:
    yield from billing_operator(hub, operator)


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, operator_b: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    yield from with_rate_card(kubectl)


@pytest.fixture(scope="module")
def site(
    kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    operator_b: testing.OperatorProcess,
    system_namespace: str,
) -> Iterator[str]:
    registry = sc.Sites(kubectl)
    name = registry.create(helpers.unique("meter-site"), sc.kubeconfig_of(subcenter))
    try:
        registry.wait_ready(name, timeout=60)
        yield name
    finally:
        registry.cleanup()


@pytest.fixture(scope="module")
def placed(
    kubectl: testing.Kubectl, site_kubectl: testing.Kubectl, site: str
) -> Iterator[sc.PlacedTenants]:
    made = sc.PlacedTenants(kubectl, site_kubectl)
    yield made
    made.cleanup()


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
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


class Report:
    """One reading of the tenant's current UsageReport."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        status = body.get("status") or {}
        self.samples = int(status.get("samples") or 0)
        self.at = datetime.datetime.fromisoformat(
            str(status.get("lastSampleTime") or "1970-01-01T00:00:00Z").replace("Z", "+00:00")
        )
        self.unmetered = Decimal(status.get("unmeteredSeconds") or "0")
        cpu = next(
            (item for item in status.get("resources") or [] if item["resource"] == "requests.cpu"),
            {},
        )
        self.requested = Decimal(cpu.get("requestedHours") or "0")
        self.allocated = Decimal(cpu.get("allocatedHours") or "0")

    def seconds_since(self, earlier: Report) -> Decimal:
        return Decimal(str((self.at - earlier.at).total_seconds()))


def test_a_tenant_on_a_subcenter_is_billed_exactly_and_not_while_its_site_is_down(
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    subcenter: cluster.ControlPlane,
    site: str,
    placed: sc.PlacedTenants,
    rate_card: Any,
) -> None:
    name = helpers.unique("bhmeter")
    placed.place(name, site, quota={"requests.cpu": "2", "requests.memory": "4Gi", "pods": "20"})
    helpers.wait_phase(kubectl, name, "Active", timeout=60)
    namespace = f"{name}-apps"
    # Nothing of the tenant is on the hub: its usage can only come from the site.
    assert kubectl.get("namespace", namespace) is None
    for index in range(3):
        site_kubectl("apply", "-n", namespace, "-f", "-", stdin=testing.json_text(pod(f"p{index}")))
    testing.eventually(
        lambda: (
            (site_kubectl.json("get", "resourcequota", "-n", namespace)["items"] or [{}])[0]
            .get("status", {})
            .get("used", {})
            .get("requests.cpu")
            in ("300m", "0.3")
        ),
        timeout=30,
        what="the site's quota to count 300m",
    )
    period = periods.period_of(datetime.datetime.now(datetime.UTC), TZ)
    report_name = f"{name}-{period.name}"

    def read() -> Report:
        return Report(kubectl.get("usagereport", report_name) or {})

    def after(reading: Report, ticks: int, what: str, timeout: float = 60) -> Report:
        found: Report = testing.eventually(
            lambda: now if (now := read()).samples >= reading.samples + ticks else None,
            timeout=timeout,
            what=what,
        )
        return found

    def billing_300m() -> Report | None:
        now = read()
        return now if now.samples >= 2 and now.requested > 0 else None

    # 1. Accrues at the site's usage: requested = 0.3 cores x time, allocated = 2 x time.
    testing.eventually(billing_300m, timeout=60, what=f"{report_name} to accrue")
    first = after(read(), 1, "one tick after the usage was seen")
    second = after(first, 5, "five more ticks")
    elapsed = second.seconds_since(first)
    expected = USAGE * elapsed / 3600
    got = second.requested - first.requested
    assert abs(got - expected) <= expected * Decimal("0.01"), (got, expected)
    assert abs((second.allocated - first.allocated) - 2 * elapsed / 3600) <= Decimal("0.02") * (
        2 * elapsed / 3600
    )
    assert second.unmetered == first.unmetered

    # 2. The site's API server stops: nothing is billed while it cannot be read.
    before_stop = read()
    try:
        subcenter.stop_component("kube-apiserver")
        down = testing.eventually(
            lambda: now if (now := read()).unmetered > before_stop.unmetered else None,
            timeout=30,
            what="the report to count unmetered time",
        )
        still_down = after(down, 3, "three ticks while the site is down", timeout=45)
    finally:
        subcenter.start_component("kube-apiserver")
    assert still_down.requested == down.requested
    assert still_down.allocated == down.allocated
    assert abs((still_down.unmetered - down.unmetered) - still_down.seconds_since(down)) < Decimal(
        "0.01"
    )

    # 3. Billing resumes once the site answers, exactly as before.
    resumed = testing.eventually(
        lambda: now if (now := read()).requested > still_down.requested else None,
        timeout=60,
        what="billing to resume after the site is back",
    )
    third = after(resumed, 1, "a tick after resuming")
    fourth = after(third, 5, "five more ticks after resuming")
    elapsed = fourth.seconds_since(third)
    expected = USAGE * elapsed / 3600
    got = fourth.requested - third.requested
    assert abs(got - expected) <= expected * Decimal("0.01"), (got, expected)
    assert fourth.unmetered == third.unmetered

    # Nothing lost, nothing counted twice: from the first reading to the last, every second
    # is either billed at 300m or counted as unmetered.
    billed_seconds = fourth.seconds_since(first) - (fourth.unmetered - first.unmetered)
    assert abs((fourth.requested - first.requested) - USAGE * billed_seconds / 3600) < EXACT
    assert fourth.unmetered - first.unmetered >= still_down.seconds_since(down)
