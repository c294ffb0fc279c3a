"""Billing integrity live (review M5): the operator runs with its clock a year fast the whole
module, and bills by the API server's time; a tenant deleted and created again gets its own
report; a report name somebody else holds is an error that alerts, never a quiet conflict.

The skew: every wall-clock read of the operator's Python (datetime.now, datetime.utcnow,
time.time) is a year ahead, through a `sitecustomize` on its PYTHONPATH; monotonic clocks,
and TLS (OpenSSL reads the system clock), are untouched, as on a node whose clock is wrong.
"""

from __future__ import annotations

import datetime
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _tenant_helpers as helpers
import pytest
from _billing_helpers import condition, with_rate_card
from _chart_helpers import one, render

from govcloud.billing import periods
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

TZ = periods.zone(8)
SKEW_DAYS = 365
SITECUSTOMIZE = f"""
    import datetime as _datetime
    import time as _time

    _SKEW = _datetime.timedelta(days={SKEW_DAYS})
    _real_time = _time.time


    class _Skewed(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _SKEW

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _SKEW


    _datetime.datetime = _Skewed
    _time.time = lambda: _real_time() + _SKEW.total_seconds()
"""


@pytest.fixture(scope="module")
def skewed_operator(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess, tmp_path_factory: Any
) -> Iterator[testing.OperatorProcess]:
    """The shared operator paused; one whose clock is a year fast, metering every second."""
    folder: Path = tmp_path_factory.mktemp("skewed-clock")
    (folder / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    operator.stop()
    process = testing.OperatorProcess(
        hub.kubeconfig,
        testing.REPO_ROOT / ".cache" / "logs" / "operator-billing-skewed.log",
        env={
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(folder), os.environ.get("PYTHONPATH")])
            ),
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "1",
            "GOVCLOUD_METERING_CHECKPOINT_SECONDS": "0",
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()
        operator.start()


@pytest.fixture(scope="module")
def rate_card(
    kubectl: testing.Kubectl, skewed_operator: testing.OperatorProcess
) -> Iterator[dict[str, Any]]:
    yield from with_rate_card(kubectl)


def this_month() -> periods.Period:
    """The month by the host's clock, which the API server shares (only the operator's is
    skewed)."""
    return periods.period_of(datetime.datetime.now(datetime.UTC), TZ)


def reports_of(kubectl: testing.Kubectl, tenant: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", "usagereports")["items"]
    return [item for item in items if item["spec"]["tenant"] == tenant]


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def accruing(kubectl: testing.Kubectl, name: str, samples: int = 2) -> dict[str, Any]:
    return testing.eventually(
        lambda: (
            found
            if ((found := kubectl.get("usagereport", name) or {}).get("status") or {}).get(
                "samples", 0
            )
            >= samples
            else None
        ),
        timeout=90,
        what=f"UsageReport {name} to accrue {samples} samples",
    )


def test_a_node_clock_a_year_fast_bills_this_month_and_closes_nothing(
    kubectl: testing.Kubectl,
    tenants: Any,
    skewed_operator: testing.OperatorProcess,
    rate_card: Any,
) -> None:
    name = tenants.create("skew")
    tenants.wait_ready(name)
    period = this_month()
    report = accruing(kubectl, f"{name}-{period.name}", samples=4)
    status = report["status"]
    assert status["closed"] is False
    # Accrued up to the cluster's time (the 10 s cover a tick and the load), not a year on.
    assert parse_time(status["lastSampleTime"]) <= datetime.datetime.now(
        datetime.UTC
    ) + datetime.timedelta(seconds=10)
    assert [item["spec"]["period"] for item in reports_of(kubectl, name)] == [period.name]
    assert not [item for item in reports_of(kubectl, name) if item["status"].get("closed")]
    # The operator did see its own clock a year ahead, and said so.
    assert "ahead of this node's" in skewed_operator.log_tail(400)
    assert re.search(rf"-(?:{SKEW_DAYS}|{SKEW_DAYS + 1}) days", skewed_operator.log_tail(400))


def test_a_tenant_created_again_under_its_name_gets_its_own_report(
    kubectl: testing.Kubectl,
    tenants: Any,
    skewed_operator: testing.OperatorProcess,
    rate_card: Any,
) -> None:
    name = tenants.create("again")
    first = tenants.wait_ready(name)
    period = this_month()
    old_name = f"{name}-{period.name}"
    old = accruing(kubectl, old_name)
    assert old["spec"]["tenantUID"] == first["metadata"]["uid"]

    kubectl("delete", "cloudtenant", name, "--timeout=120s")
    closed = testing.eventually(
        lambda: (
            found
            if ((found := kubectl.get("usagereport", old_name) or {}).get("status") or {}).get(
                "closed"
            )
            else None
        ),
        timeout=60,
        what=f"{old_name} to be closed once its tenant is gone",
    )
    events = kubectl.json(
        "get",
        "events",
        "-A",
        "--field-selector",
        f"involvedObject.name={old_name},reason=ReportClosed",
    )["items"]
    assert any("is gone" in event["message"] for event in events), events

    tenants.apply(name, first["spec"])
    second = tenants.wait_ready(name)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    new_name = f"{name}-{period.name}-{second['metadata']['uid']}"
    new = accruing(kubectl, new_name)
    assert new["spec"] == {
        "tenant": name,
        "period": period.name,
        "tenantUID": second["metadata"]["uid"],
    }
    # Metered from its own first tick: nothing before it (the gap) is on its bill.
    assert parse_time(new["status"]["firstSampleTime"]) >= parse_time(
        second["metadata"]["creationTimestamp"]
    )
    assert new["status"]["gapSeconds"] == "0"
    # The old tenant's report stays as it was closed.
    after = kubectl.get("usagereport", old_name) or {}
    assert after["metadata"]["resourceVersion"] == closed["metadata"]["resourceVersion"]


def test_a_report_name_somebody_else_holds_is_an_error_that_alerts(
    kubectl: testing.Kubectl,
    tenants: Any,
    skewed_operator: testing.OperatorProcess,
    rate_card: Any,
) -> None:
    name = helpers.unique("squat")
    period = this_month()
    squatted = f"{name}-{period.name}"
    # Made by hand before the tenant exists, without the labels metering lists reports by.
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "UsageReport",
            "metadata": {"name": squatted},
            "spec": {"tenant": name, "period": period.name},
        }
    )
    errors = skewed_operator.metric_value("govcloud_metering_ticks_total", result="error")
    try:
        tenants.created.append(name)
        kubectl.apply(helpers.tenant_manifest(name))
        tenants.wait_ready(name)
        warning = testing.eventually(
            lambda: next(
                iter(
                    kubectl.json(
                        "get", "events", "-A", "--field-selector",
                        f"involvedObject.name={name},reason=UsageReportExists",
                    )["items"]
                ),
                None,
            ),
            timeout=60,
            what="a Warning Event on the tenant",
        )  # fmt: skip
        assert warning["type"] == "Warning"
        assert squatted in warning["message"]
        # Counted as an error, tick after tick: the GovcloudMeteringErrors alert fires on it.
        testing.eventually(
            lambda: (
                skewed_operator.metric_value("govcloud_metering_ticks_total", result="error")
                >= errors + 3
            ),
            timeout=60,
            what="three metering ticks counted as errors",
        )
        assert "already exists" in skewed_operator.log_tail(200)
        rule = one(render("--set", "prometheusRule.enabled=true"), "PrometheusRule")
        alerts = {
            item["alert"]: item["expr"]
            for group in rule["spec"]["groups"]
            for item in group["rules"]
            if "alert" in item
        }
        assert 'govcloud_metering_ticks_total{result="error"' in alerts["GovcloudMeteringErrors"]
        assert condition(kubectl.get("usagereport", squatted), "Rated") == {}  # untouched
    finally:
        kubectl.run("delete", "usagereport", squatted, "--wait=false")
