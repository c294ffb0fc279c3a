"""UsageReports are bills (review M5): with the chart installed, a platform admin can read
them but not delete, relabel, annotate or create one; a finance administrator can; the
operator creates reports and writes their status. Checked by impersonation against the
chart's real roles and its ValidatingAdmissionPolicy (templates/usagereport-protection.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import _tenant_helpers as helpers
import pytest
from _chart_helpers import Release, installed_release

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

ALICE = "platform-alice"  # bound to <fullname>:platform-admin only
FAY = "finance-fay"  # in the group the chart binds to <fullname>:finance-admin
FINANCE_GROUP = "govcloud:finance-admins"
PERIOD = "2020-05"  # a month nobody meters


@pytest.fixture(scope="module")
def release(hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None) -> Iterator[Release]:
    yield from installed_release(hub, kubectl)


@pytest.fixture(scope="module")
def platform_admin(release: Release, kubectl: testing.Kubectl) -> Iterator[testing.Kubectl]:
    binding = f"{release.fullname}-alice"
    kubectl(
        "create", "clusterrolebinding", binding,
        f"--clusterrole={release.fullname}:platform-admin", f"--user={ALICE}",
    )  # fmt: skip
    yield kubectl.impersonate(ALICE)
    kubectl.run("delete", "clusterrolebinding", binding)


@pytest.fixture(scope="module")
def finance(release: Release, kubectl: testing.Kubectl) -> testing.Kubectl:
    return kubectl.impersonate(FAY, FINANCE_GROUP)


@pytest.fixture(scope="module")
def operator_sa(release: Release, kubectl: testing.Kubectl) -> testing.Kubectl:
    """The operator's own ServiceAccount, as the chart grants it."""
    return kubectl.impersonate(
        release.user, "system:serviceaccounts", f"system:serviceaccounts:{release.namespace}"
    )


def report_manifest(tenant: str) -> dict[str, Any]:
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "UsageReport",
        "metadata": {
            "name": f"{tenant}-{PERIOD}",
            "labels": {
                "app.kubernetes.io/managed-by": "govcloud-operator",
                "govcloud.io/tenant": tenant,
                "govcloud.io/period": PERIOD,
            },
        },
        "spec": {"tenant": tenant, "period": PERIOD},
    }


@pytest.fixture
def report(
    kubectl: testing.Kubectl, operator_sa: testing.Kubectl, platform_admin: testing.Kubectl
) -> Iterator[str]:
    """A report created as the operator creates them (by its ServiceAccount), policy in force."""
    tenant = helpers.unique("bill")
    name = f"{tenant}-{PERIOD}"
    # The policy takes effect a moment after it is created: wait until it refuses a dry run.
    testing.eventually(
        lambda: refused(platform_admin.run("create", "--dry-run=server", "-f", "-",
                                           stdin=json.dumps(report_manifest(tenant)))),
        timeout=30,
        what="the UsageReport policy to take effect",
    )  # fmt: skip
    operator_sa("create", "-f", "-", stdin=json.dumps(report_manifest(tenant)))
    yield name
    kubectl.run("delete", "usagereport", name, "--wait=false")


def refused(result: Any, *needles: str) -> bool:
    """Refused by the UsageReport policy (not by RBAC), its message naming `needles`."""
    text = result.stdout + result.stderr
    return (
        result.returncode != 0
        and "usagereport-protection" in text
        and all(needle in text for needle in needles)
    )


def labels(kubectl: testing.Kubectl, name: str) -> dict[str, str]:
    found = kubectl.get("usagereport", name)
    assert found is not None, f"UsageReport {name} is gone"
    return dict(found["metadata"].get("labels") or {})


def test_a_platform_admin_reads_reports_but_cannot_delete_one(
    platform_admin: testing.Kubectl, kubectl: testing.Kubectl, report: str
) -> None:
    assert report in platform_admin("get", "usagereports", "-o", "name")
    # RBAC grants the delete (platform-admin manages every govcloud kind): the policy refuses.
    assert platform_admin.run("auth", "can-i", "delete", "usagereports").stdout.strip() == "yes"
    deleted = platform_admin.run("delete", "usagereport", report, "--wait=false")
    assert refused(deleted, f"{ALICE} may not delete UsageReport {report}", "finance-admin")
    every = platform_admin.run("delete", "usagereports", "--all", "--wait=false")
    assert refused(every, "may not delete")
    assert kubectl.get("usagereport", report) is not None


@pytest.mark.parametrize(
    "edit",
    [
        ("label", "govcloud.io/period-"),  # hides it from metering's LIST
        ("label", "--overwrite", "govcloud.io/tenant=somebody-else"),
        ("label", "extra=1"),
        ("annotate", "note=moved"),
    ],
    ids=["unlabel-period", "relabel-tenant", "add-label", "annotate"],
)
def test_a_platform_admin_cannot_relabel_or_annotate_a_report(
    platform_admin: testing.Kubectl, kubectl: testing.Kubectl, report: str, edit: tuple[str, ...]
) -> None:
    before = kubectl.get("usagereport", report)
    assert before is not None
    verb, *args = edit
    result = platform_admin.run(verb, "usagereport", report, *args)
    assert refused(result, f"{ALICE} may not change the labels, annotations"), result.stderr
    after = kubectl.get("usagereport", report)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_platform_admin_cannot_make_a_report_that_metering_would_then_find_taken(
    platform_admin: testing.Kubectl, kubectl: testing.Kubectl, report: str
) -> None:
    squat = report_manifest(helpers.unique("squat"))
    result = platform_admin.run("create", "-f", "-", stdin=json.dumps(squat))
    assert refused(result, "may not create UsageReport", "metering creates reports")
    assert kubectl.get("usagereport", squat["metadata"]["name"]) is None


def test_the_operator_creates_reports_and_writes_their_status_but_never_deletes_them(
    operator_sa: testing.Kubectl, report: str
) -> None:
    patched = operator_sa.run(
        "patch", "usagereport", report, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"samples": 1}}),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    relabelled = operator_sa.run("label", "usagereport", report, "extra=1")
    assert refused(relabelled, "may not change the labels")
    deleted = operator_sa.run("delete", "usagereport", report, "--wait=false")
    assert deleted.returncode != 0


def test_a_finance_administrator_may_relabel_annotate_and_delete_a_report(
    finance: testing.Kubectl, kubectl: testing.Kubectl, report: str
) -> None:
    finance("label", "usagereport", report, "audit=2027-q1")
    finance("annotate", "usagereport", report, "note=reviewed")
    assert labels(kubectl, report)["audit"] == "2027-q1"
    finance("label", "usagereport", report, "audit-")
    finance("delete", "usagereport", report, "--wait=false")
    testing.eventually(
        lambda: kubectl.get("usagereport", report) is None,
        timeout=30,
        what=f"UsageReport {report} to be deleted by finance",
    )
    made = report_manifest(helpers.unique("byhand"))
    finance("create", "-f", "-", stdin=json.dumps(made))
    kubectl.run("delete", "usagereport", made["metadata"]["name"], "--wait=false")
