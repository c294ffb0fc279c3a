"""`kubectl govcloud`, run as the people who would run it (journey 12).

Every command runs with the user's own rights: the hub's admin kubeconfig with `--as` /
`--as-group`, so the real API server's RBAC and the chart's plan-review policy decide, exactly
as for a department admin signed in with OIDC. Most calls run the plugin's entry point in this
process (cheaper than a Python start per call); `kubectl govcloud` itself, found by kubectl on
PATH, is run too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _tenant_helpers as helpers
import pytest
import yaml
from _billing_helpers import APPROVERS, install_review, remove_review, with_rate_card

from govcloud.cli import main
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

NEXT_YEAR = datetime.now(UTC).year + 1
RBAC_PROPAGATION = 15.0
PLUGIN = Path(sys.executable).parent / "kubectl-govcloud"
MIGRATIONS_VIEW = "test-kubectl-plugin-migrationplans-view"
CITY_APPROVER_ROLE = "test-kubectl-plugin-plan-approver-city"


@dataclass(frozen=True)
class World:
    """Tenant A (admin alice and group a_admins, viewer victor; two namespaces), tenant B
    (admin bob), both city units; a plan approver of every level, one of the city's own
    (`approve` on payers.govcloud.io "city"), and a MigrationPlan in A's first namespace."""

    a: str
    b: str
    alice: str
    a_admins: str
    victor: str
    bob: str
    approver: str
    city_approver: str
    migration: str
    kubeconfig: Path


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)


def plugin(world: World, who: tuple[str, ...], *args: str) -> Ran:
    """The plugin's entry point, in this process, as `who` (user, groups...)."""
    user, *groups = who
    argv = ["--kubeconfig", str(world.kubeconfig), "--as", user]
    for group in groups:
        argv += ["--as-group", group]
    out, err = io.StringIO(), io.StringIO()
    code = main.run([*argv, *args], out, err)
    return Ran(code, out.getvalue(), err.getvalue())


def refused(ran: Ran, *needles: str) -> bool:
    """Exit non-zero with one line on stderr saying what is lacking, nothing on stdout."""
    lines = ran.err.strip().splitlines()
    return (
        ran.code != 0
        and not ran.out
        and len(lines) == 1
        and lines[0].startswith("error: ")
        and all(needle in lines[0] for needle in needles)
    )


def eventually_ok(world: World, who: tuple[str, ...], *args: str) -> Ran:
    """Poll until the command succeeds (the authorizer's caches catch up with new bindings)."""
    return testing.eventually(
        lambda: (ran := plugin(world, who, *args)).code == 0 and ran,
        timeout=RBAC_PROPAGATION,
        what=f"{who} to run kubectl govcloud {' '.join(args)}",
    )


def migration_view_role() -> dict[str, Any]:
    """What the chart's platform-roles.yaml aggregates into the built-in view role (and thereby
    edit and admin): MigrationPlans in the tenant namespaces."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": MIGRATIONS_VIEW,
            "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"},
        },
        "rules": [
            {
                "apiGroups": ["govcloud.io"],
                "resources": ["migrationplans", "migrationplans/status"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def city_approver(user: str) -> list[dict[str, Any]]:
    """What the chart's templates/plan-approvers.yaml renders for planApprovers: [{payer: city,
    users: [user]}]: the city bureau decides the plans of the units the city pays for."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CITY_APPROVER_ROLE},
            "rules": [
                {
                    "apiGroups": ["govcloud.io"],
                    "resources": ["payers"],
                    "resourceNames": ["city"],
                    "verbs": ["approve"],
                },
                {
                    "apiGroups": ["govcloud.io"],
                    "resources": ["resourceplans", "resourcerequests"],
                    "verbs": ["get", "list", "watch", "update", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CITY_APPROVER_ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CITY_APPROVER_ROLE,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


@pytest.fixture(scope="module")
def world(
    hub: cluster.ControlPlane, kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> Iterator[World]:
    suffix = uuid.uuid4().hex[:6]
    made = World(
        a=f"kp-a-{suffix}",
        b=f"kp-b-{suffix}",
        alice=f"alice-{suffix}",
        a_admins=f"kp-a-admins-{suffix}",
        victor=f"victor-{suffix}",
        bob=f"bob-{suffix}",
        approver=f"li-{suffix}",
        city_approver=f"zhao-{suffix}",
        migration=f"permits-{suffix}",
        kubeconfig=hub.kubeconfig,
    )
    tenants = helpers.Tenants(kubectl)
    with contextlib.ExitStack() as stack:
        install_review(kubectl)
        stack.callback(remove_review, kubectl)
        rate_card = with_rate_card(kubectl)
        next(rate_card)
        stack.callback(lambda: next(rate_card, None))
        kubectl.apply(migration_view_role())
        stack.callback(kubectl.run, "delete", "clusterrole", MIGRATIONS_VIEW, "--wait=false")
        for manifest in city_approver(made.city_approver):
            kubectl.apply(manifest)
        stack.callback(kubectl.run, "delete", "clusterrole", CITY_APPROVER_ROLE, "--wait=false")
        stack.callback(
            kubectl.run, "delete", "clusterrolebinding", CITY_APPROVER_ROLE, "--wait=false"
        )
        stack.callback(tenants.cleanup)
        tenants.create(
            made.a,
            namespaces=("app", "db"),
            admins={"users": [made.alice], "groups": [made.a_admins]},
            viewers={"users": [made.victor]},
        )
        tenants.create(made.b, namespaces=("app",), admins={"users": [made.bob]})
        helpers.wait_phase(kubectl, made.a, "Active")
        helpers.wait_phase(kubectl, made.b, "Active")
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "MigrationPlan",
                "metadata": {"name": made.migration, "namespace": f"{made.a}-app"},
                "spec": {
                    "app": {"name": "不动产登记系统", "securityLevel": 2},
                    "source": {"namespace": f"legacy-{suffix}", "kinds": ["Deployment"]},
                    "targetNamespace": f"{made.a}-app",
                    "deadline": (datetime.now(UTC) + timedelta(days=60)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                },
            }
        )
        stack.callback(
            kubectl.run,
            "delete",
            "migrationplan",
            made.migration,
            "-n",
            f"{made.a}-app",
            "--wait=false",
        )
        yield made


def test_whoami_tells_each_user_their_own_tenants_and_roles_and_nothing_of_others(
    world: World, kubectl: testing.Kubectl
) -> None:
    alice = eventually_ok(world, (world.alice,), "whoami", "-o", "json").json()
    assert alice["user"] == world.alice
    assert [(t["tenant"], t["roles"], t["filesPlans"]) for t in alice["tenants"]] == [
        (world.a, ["admin"], True)
    ]
    assert alice["tenants"][0]["namespaces"] == [f"{world.a}-app", f"{world.a}-db"]
    assert not any(alice["platform"].values())
    # An admin through the LDAP group, not by name.
    carol = eventually_ok(world, ("carol", world.a_admins), "whoami", "-o", "json").json()
    assert [(t["tenant"], t["roles"]) for t in carol["tenants"]] == [(world.a, ["admin"])]
    victor = eventually_ok(world, (world.victor,), "whoami", "-o", "json").json()
    assert [(t["tenant"], t["roles"], t["filesPlans"]) for t in victor["tenants"]] == [
        (world.a, ["viewer"], False)
    ]
    bob = eventually_ok(world, (world.bob,), "whoami", "-o", "json").json()
    assert [t["tenant"] for t in bob["tenants"]] == [world.b]
    approver = plugin(world, (world.approver, APPROVERS), "whoami", "-o", "json").json()
    assert approver["tenants"] == []
    assert approver["platform"]["planReviewer"] is True
    assert approver["platform"]["platformAdmin"] is False
    city = testing.eventually(
        lambda: (
            (found := plugin(world, (world.city_approver,), "whoami", "-o", "json").json())[
                "plansOfPayers"
            ]
            and found
        ),
        timeout=RBAC_PROPAGATION,
        what="the city approver's binding to show in their rules",
    )
    assert (city["tenants"], city["plansOfPayers"]) == ([], ["city"])
    assert city["platform"]["planReviewer"] is False
    # The real plugin mechanism: kubectl finds kubectl-govcloud on PATH; the table, with the
    # kubeconfig's own context named.
    assert PLUGIN.exists(), f"{PLUGIN} is missing: pip install -e . installs the console script"
    context = yaml.safe_load(world.kubeconfig.read_text())["current-context"]
    result = subprocess.run(
        ["kubectl", "govcloud", "whoami", f"--kubeconfig={world.kubeconfig}",
         f"--context={context}", f"--as={world.alice}"],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[4:6]
    assert header.split()[:2] == ["TENANT", "DISPLAY"], result.stdout
    assert row.split()[0] == world.a, result.stdout
    assert f"USER:     {world.alice}" in result.stdout


def test_a_member_sees_their_namespaces_and_quota_and_is_refused_another_tenants(
    world: World, kubectl: testing.Kubectl
) -> None:
    ns = eventually_ok(world, (world.victor,), "ns", "-o", "json").json()
    assert [(item["tenant"], item["namespace"]) for item in ns["namespaces"]] == [
        (world.a, f"{world.a}-app"),
        (world.a, f"{world.a}-db"),
    ]
    table = plugin(world, (world.victor,), "ns")
    assert table.out.splitlines()[0].split() == ["TENANT", "NAMESPACE", "PHASE", "SITE", "MESSAGE"]
    usage = plugin(world, (world.alice,), "usage", "-o", "json").json()
    quota = (kubectl.get("cloudtenant", world.a) or {})["status"]["quota"]
    assert usage["tenants"][0]["hard"] == quota["hard"]
    assert {n["namespace"] for n in usage["tenants"][0]["namespaces"]} == {
        f"{world.a}-app",
        f"{world.a}-db",
    }
    for command in ("ns", "usage"):
        assert refused(
            plugin(world, (world.alice,), command, "--tenant", world.b),
            f"you may not read CloudTenant {world.b}",
            f'"get" on cloudtenants.govcloud.io "{world.b}"',
        )
    # Someone in no tenant is told so, with nothing read.
    assert refused(plugin(world, ("nobody",), "ns"), "you are in no tenant")


def test_a_member_reads_this_months_bill_and_never_another_tenants(
    world: World, kubectl: testing.Kubectl
) -> None:
    def report_of(name: str) -> str | None:
        billing = ((kubectl.get("cloudtenant", name) or {}).get("status") or {}).get("billing")
        return (billing or {}).get("report")

    report = testing.eventually(
        lambda: report_of(world.a), timeout=60, what="metering to name A's report"
    )
    bill = testing.eventually(
        lambda: (
            (found := plugin(world, (world.victor,), "bill", "-o", "json")).code == 0
            and (data := found.json()["bills"][0])["report"] == report
            and data["resources"]
            and data
        ),
        timeout=60,  # the report's lines come with a metering write (every 5 s)
        what="the viewer to read A's report, with its lines, through the plugin",
    )
    written = (kubectl.get("usagereport", report) or {})["status"]
    assert bill["tenant"] == world.a
    assert bill["closed"] is False
    assert {line["resource"] for line in bill["resources"]} == {
        line["resource"] for line in written["resources"]
    }
    table = plugin(world, (world.victor,), "bill").out
    assert "total" in table
    assert "CNY (open, to date)" in table
    # Another tenant's bill: refused, saying what is missing.
    assert refused(
        plugin(world, (world.alice,), "bill", "--tenant", world.b),
        f"you may not read CloudTenant {world.b}",
    )
    # A month with no report: said, exit 0.
    old = plugin(world, (world.alice,), "bill", "--month", "2021-01", "-o", "json").json()
    assert old["bills"][0]["report"] is None
    assert old["bills"][0]["note"]
    assert refused(plugin(world, (world.alice,), "bill", "--month", "2021-13"), "YYYY-MM")


def test_an_admin_files_a_plan_an_approver_decides_and_the_history_records_each_decision(
    world: World, kubectl: testing.Kubectl, request: pytest.FixtureRequest
) -> None:
    name = f"{world.a}-{NEXT_YEAR}"
    # Plans are cluster-scoped: they outlive the tenant's namespaces unless deleted.
    request.addfinalizer(
        lambda: kubectl.run("delete", "resourceplan", name, "--ignore-not-found", "--wait=false")
    )
    filing = (
        "plan", "file", "--year", str(NEXT_YEAR),
        "--offering", "ecs.2c4g", "--count", "2", "--reason", "交通大数据平台",
    )  # fmt: skip
    filed = eventually_ok(world, (world.alice,), *filing)
    assert f"resourceplan.govcloud.io/{name} filed" in filed.out
    body = kubectl.get("resourceplan", name) or {}
    assert body["spec"]["tenant"] == world.a
    assert body["spec"]["lines"] == [
        {"offering": "ecs.2c4g", "count": 2, "reason": "交通大数据平台"}
    ]
    # A viewer files no plan; another tenant's admin does not even read A's plans.
    assert refused(
        plugin(world, (world.victor,), "plan", "file", "--tenant", world.a, "--year",
               str(NEXT_YEAR + 1), "--offering", "ecs.2c4g", "--reason", "x"),
        "refused by the cluster's policy", f"may not file plans for tenant {world.a}",
    )  # fmt: skip
    assert refused(
        plugin(world, (world.bob,), "plan", "history", name),
        f"you may not read ResourcePlan {name}",
    )
    # The department cannot approve its own plan: nothing is written.
    assert refused(
        plugin(world, (world.alice,), "plan", "approve", name, "--reason", "自己批准"),
        f"you may not approve ResourcePlan {name}",
        '"approve" on resourceplans.govcloud.io',
    )
    assert "decision" not in (kubectl.get("resourceplan", name) or {})["spec"]
    # An approver of every level approves.
    approved = plugin(
        world, (world.approver, APPROVERS), "plan", "approve", name, "--reason", "符合年度预算"
    )
    assert approved.code == 0, approved.err
    decision = (kubectl.get("resourceplan", name) or {})["spec"]["decision"]
    assert (decision["by"], decision["groups"]) == (world.approver, [APPROVERS])

    def review(state: str) -> dict[str, Any] | None:
        found = ((kubectl.get("resourceplan", name) or {}).get("status") or {}).get("review")
        return found if (found or {}).get("state") == state else None

    testing.eventually(lambda: review("Approved"), timeout=30, what=f"{name} Approved")
    # The city's own bureau (A is a city unit) rejects it as it stands after the approval.
    rejected = plugin(world, (world.city_approver,), "plan", "reject", name, "--reason", "预算收紧")
    assert rejected.code == 0, rejected.err
    testing.eventually(lambda: review("Rejected"), timeout=30, what=f"{name} Rejected")
    history = plugin(
        world, (world.victor,), "plan", "history", "--year", str(NEXT_YEAR), "-o", "json"
    )
    entries = history.json()["history"]
    assert [(e["state"], e["by"], e["reason"]) for e in entries] == [
        ("Approved", world.approver, "符合年度预算"),
        ("Rejected", world.city_approver, "预算收紧"),
    ]
    assert entries[1]["generation"] == entries[0]["generation"] + 1


def test_an_admin_files_an_in_year_request_its_level_decides_and_others_never_see_it(
    world: World, kubectl: testing.Kubectl
) -> None:
    namespace = f"{world.a}-app"
    filing = (
        "request", "file", "flood-season", "--resources", "requests.cpu=2",
        "--reason", "汛期扩容",
    )  # fmt: skip
    filed = eventually_ok(world, (world.alice,), *filing)
    assert f"resourcerequest.govcloud.io/flood-season in {namespace} filed" in filed.out
    body = kubectl.get("resourcerequest", "flood-season", namespace) or {}
    assert body["spec"]["lines"] == [
        {"resources": {"requests.cpu": "2"}, "count": 1, "reason": "汛期扩容"}
    ]
    # A viewer reads it but files none; another tenant's admin does not even see it.
    listed = eventually_ok(world, (world.victor,), "request", "list", "-o", "json").json()
    assert [item["metadata"]["name"] for item in listed["requests"]] == ["flood-season"]
    assert refused(
        plugin(world, (world.victor,), "request", "file", "more", "--resources",
               "requests.cpu=1", "--reason", "x"),
        f'you may not file ResourceRequest more in namespace {namespace}',
    )  # fmt: skip
    assert refused(
        plugin(world, (world.bob,), "request", "history", "flood-season", "-n", namespace),
        "you may not read ResourceRequest",
    )
    # The department cannot approve its own request: nothing is written.
    assert refused(
        plugin(world, (world.alice,), "request", "approve", "flood-season", "-n", namespace,
               "--reason", "自己批准"),
        "you may not decide ResourceRequest",
    )  # fmt: skip
    assert (
        "decision" not in (kubectl.get("resourcerequest", "flood-season", namespace) or {})["spec"]
    )
    # The city's own bureau (A is a city unit) approves, once the operator names the payer.
    testing.eventually(
        lambda: ((kubectl.get("resourcerequest", "flood-season", namespace) or {}).get("status")
                 or {}).get("payer") == "city",
        what="the request's status.payer",
    )  # fmt: skip
    approved = plugin(
        world, (world.city_approver,), "request", "approve", "flood-season", "-n", namespace,
        "--reason", "同意",
    )  # fmt: skip
    assert approved.code == 0, approved.err
    history = testing.eventually(
        lambda: (
            found := plugin(
                world, (world.alice,), "request", "history", "flood-season", "-n", namespace,
                "-o", "json",
            ).json()
        )["history"] and found,
        what="the approval in the request's history",
    )  # fmt: skip
    assert [(e["state"], e["by"]) for e in history["history"]] == [
        ("Approved", world.city_approver)
    ]


def test_migrations_show_the_tenants_plans_with_stage_and_deadline_and_no_others(
    world: World, kubectl: testing.Kubectl
) -> None:
    found = testing.eventually(
        lambda: (
            (ran := plugin(world, (world.victor,), "migrations", "-o", "json")).code == 0
            and ran.json()["migrations"]
        ),
        timeout=RBAC_PROPAGATION,
        what="the viewer to list A's MigrationPlans (the aggregated view role)",
    )
    spec = (kubectl.get("migrationplan", world.migration, f"{world.a}-app") or {})["spec"]
    assert [(m["namespace"], m["name"], m["deadline"]) for m in found] == [
        (f"{world.a}-app", world.migration, spec["deadline"])
    ]
    assert found[0]["phase"]
    assert found[0]["timeliness"] in ("OnTime", "AtRisk")
    assert plugin(world, (world.bob,), "migrations", "-o", "json").json()["migrations"] == []
    assert refused(
        plugin(world, (world.bob,), "migrations", "--tenant", world.a),
        f"you may not read CloudTenant {world.a}",
    )
    assert refused(
        plugin(world, (world.bob,), "migrations", "-A"),
        '"list" on migrationplans.govcloud.io',
    )


def test_assess_shows_a_member_their_own_unit_and_a_plan_approver_every_unit(
    world: World,
) -> None:
    mine = eventually_ok(world, (world.bob,), "assess", "-o", "json").json()
    assert [unit["tenant"] for unit in mine["units"]] == [world.b]
    every = plugin(world, (world.approver, APPROVERS), "assess", "-o", "json").json()
    assert {world.a, world.b} <= {unit["tenant"] for unit in every["units"]}
    assert refused(
        plugin(world, (world.bob,), "assess", "--tenant", world.a),
        f"you may not read CloudTenant {world.a}",
    )
