"""Who the user is in which tenant, from the rules the API server lists for them and the
members each tenant names."""

from __future__ import annotations

from govcloud.cli import roles
from govcloud.desired import rbac


def test_the_tenants_are_the_resource_names_of_the_self_view_and_plan_filer_roles() -> None:
    self_view = rbac.self_view_role("jtj", ["jtj-app"], ["jtj-2026-12"])["rules"]
    filer = rbac.plan_filer_role("jtj")["rules"]
    other = rbac.self_view_role("gaj", ["gaj-app"])["rules"]
    found = roles.grants([*self_view, *filer, *other])
    assert found.readable == ["gaj", "jtj"]
    assert found.files_plans == ["jtj"]


def test_rules_without_names_or_on_other_resources_name_no_tenant_of_the_users() -> None:
    found = roles.grants(
        [
            # a platform role: every tenant, none of them the user's own
            {"apiGroups": ["govcloud.io"], "resources": ["cloudtenants"], "verbs": ["get", "list"]},
            # the self-view's rule on plans names plans, not tenants
            {
                "apiGroups": ["govcloud.io"],
                "resources": ["resourceplans"],
                "resourceNames": ["jtj-2027"],
                "verbs": ["get"],
            },
            # same names in another group
            {
                "apiGroups": ["example.com"],
                "resources": ["cloudtenants"],
                "resourceNames": ["x"],
                "verbs": ["get"],
            },
            # the basic-user rules every authenticated user has
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
        ]
    )
    assert found == roles.Grants([], [])


def test_wildcards_count_as_the_verb() -> None:
    found = roles.grants(
        [{"apiGroups": ["*"], "resources": ["*"], "resourceNames": ["jtj"], "verbs": ["*"]}]
    )
    assert found == roles.Grants(["jtj"], ["jtj"], ["jtj"], ["jtj"])


def test_a_levels_plan_approvers_are_told_by_the_payers_they_approve_for() -> None:
    found = roles.grants(
        [
            {
                "apiGroups": ["govcloud.io"],
                "resources": ["payers"],
                "resourceNames": ["county:庐江县"],
                "verbs": ["approve"],
            },
            {
                "apiGroups": ["govcloud.io"],
                "resources": ["payers"],
                "resourceNames": ["city"],
                "verbs": ["get"],
            },
        ]
    )
    assert found == roles.Grants([], [], ["county:庐江县"])


def test_the_role_is_read_from_the_spec_by_user_group_or_service_account() -> None:
    spec = {
        "admins": {"users": ["alice"], "groups": ["ldap:jtj-admins"]},
        "editors": {"serviceAccounts": ["jtj-app/deployer"]},
        "viewers": {"groups": ["ldap:jtj-all"]},
    }
    assert roles.roles_in(spec, "alice", []) == ["admin"]
    assert roles.roles_in(spec, "bob", ["ldap:jtj-admins", "ldap:jtj-all"]) == ["admin", "viewer"]
    assert roles.roles_in(spec, "system:serviceaccount:jtj-app:deployer", []) == ["editor"]
    assert roles.roles_in(spec, "system:serviceaccount:other:deployer", []) == []
    assert roles.roles_in(spec, "carol", ["ldap:gaj-admins"]) == []


def test_a_decision_names_the_users_groups_but_system_authenticated() -> None:
    groups = ["govcloud:plan-approvers", "system:authenticated", "ldap:x", "ldap:x"]
    assert roles.decision_groups(groups) == ["govcloud:plan-approvers", "ldap:x"]


def test_the_reports_are_those_named_by_self_view_and_finance_roles() -> None:
    self_view = rbac.self_view_role("jtj", ["jtj-app"], ["jtj-2026-12"])["rules"]
    finance = rbac.finance_role("gaj", "county:庐江", ["gaj-2026-11", "gaj-2026-12"])
    assert finance is not None
    found = roles.grants([*self_view, *finance["rules"]])
    assert found.reports == ["gaj-2026-11", "gaj-2026-12", "jtj-2026-12"]
    # Bills read through the finance role alone make no tenant the user's own.
    assert roles.grants(finance["rules"]).readable == []
