"""The command line of `kubectl govcloud`: kubectl's flags anywhere, impersonation sent as
kubectl sends it, refusals as one line."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest
import yaml
from kubernetes.client import Configuration

from govcloud.cli import commands, main
from govcloud.k8s import user

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_kubectl_flags_are_taken_before_or_after_the_subcommand() -> None:
    before = main.parser().parse_args(
        ["--context", "hub", "--as", "alice", "--as-group", "g1", "-o", "json", "bill"]
    )
    assert (before.context, before.as_user, before.as_groups, before.output) == (
        "hub",
        "alice",
        ["g1"],
        "json",
    )
    after = main.parser().parse_args(
        ["bill", "--month", "2026-11", "--as", "bob", "--as-group", "a", "--as-group", "b"]
    )
    assert (after.month, after.as_user, after.as_groups, after.output) == (
        "2026-11",
        "bob",
        ["a", "b"],
        "table",
    )
    nested = main.parser().parse_args(
        ["plan", "approve", "jtj-2027", "--reason", "ok", "-o", "yaml"]
    )
    assert (nested.name, nested.reason, nested.output, nested.run) == (
        "jtj-2027",
        "ok",
        "yaml",
        commands.plan_approve,
    )


def test_a_decision_needs_a_reason() -> None:
    with pytest.raises(SystemExit):
        main.parser().parse_args(["plan", "reject", "jtj-2027"])


def test_impersonation_is_sent_as_kubectl_sends_it_one_header_per_group() -> None:
    configuration = Configuration(host="https://127.0.0.1:6443")
    client = user.UserClient(configuration, as_user="alice", as_groups=["a", "b"], as_uid="42")
    headers = client._headers(None)
    assert headers["Impersonate-User"] == "alice"
    assert headers.getlist("Impersonate-Group") == ["a", "b"]
    assert headers["Impersonate-Uid"] == "42"
    assert "Impersonate-User" not in user.UserClient(configuration)._headers(None)


def test_groups_without_a_user_to_impersonate_are_refused_before_any_request() -> None:
    with pytest.raises(user.ConfigError, match="need --as"):
        user.UserClient(Configuration(), as_groups=["a"])
    err = io.StringIO()
    kubeconfig = REPO_ROOT / "tests" / "unit" / "cli" / "missing-kubeconfig"
    code = main.run(["--kubeconfig", str(kubeconfig), "whoami"], io.StringIO(), err)
    assert code == 2
    assert err.getvalue().startswith("error: cannot use the kubeconfig")
    assert len(err.getvalue().splitlines()) == 1


def test_rest_paths() -> None:
    assert user.path("", "v1", "namespaces", "jtj-app") == "/api/v1/namespaces/jtj-app"
    assert (
        user.path("govcloud.io", "v1alpha1", "migrationplans", namespace="jtj-app")
        == "/apis/govcloud.io/v1alpha1/namespaces/jtj-app/migrationplans"
    )
    assert user.path("govcloud.io", "v1alpha1", "cloudtenants", "a/b") == (
        "/apis/govcloud.io/v1alpha1/cloudtenants/a%2Fb"
    )


def test_refusals_become_one_line_saying_what_is_missing() -> None:
    rbac = user.RefusedError(
        'cloudtenants.govcloud.io "b" is forbidden: User "alice" cannot get resource', 403
    )
    said = str(
        commands.failure(rbac, "read CloudTenant b", commands.lacks("get", "cloudtenants", "b"))
    )
    assert said == 'you may not read CloudTenant b: you lack "get" on cloudtenants.govcloud.io "b"'
    policy = user.RefusedError(
        user.one_line(
            "admission webhook ... ValidatingAdmissionPolicy 'x' with binding 'x' denied request:"
            " alice may not set spec.decision:\n  only plan approvers"
        ),
        403,
    )
    assert str(commands.failure(policy, "approve p")) == (
        "cannot approve p: refused by the cluster's policy: alice may not set spec.decision:"
        " only plan approvers"
    )
    assert "log in again" in str(commands.failure(user.RefusedError("Unauthorized", 401), "x"))


def test_the_plugin_is_installed_with_the_package_and_described_for_krew() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["kubectl-govcloud"] == "govcloud.cli.main:main"
    manifest = yaml.safe_load((REPO_ROOT / "plugins" / "krew" / "govcloud.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "govcloud"
    assert manifest["spec"]["version"] == f"v{project['version']}"
    for platform in manifest["spec"]["platforms"]:
        assert platform["uri"].endswith(".tar.gz")
        assert len(platform["sha256"]) == 64
        assert platform["bin"] == "kubectl-govcloud"
        assert platform["selector"]["matchLabels"]["os"] in ("linux", "darwin")


def test_a_plan_file_is_a_resourceplan_or_its_spec_and_never_carries_a_decision() -> None:
    spec = commands.load_plan_file(
        "apiVersion: govcloud.io/v1alpha1\nkind: ResourcePlan\nmetadata: {name: x-2027}\n"
        "spec:\n  tenant: x\n  lines: [{offering: ecs.2c4g, count: 2, reason: 扩容}]\n"
        "  decision: {state: Approved, by: me, reason: self}\n"
    )
    assert spec == {
        "tenant": "x",
        "lines": [{"offering": "ecs.2c4g", "count": 2, "reason": "扩容"}],
    }
    assert commands.load_plan_file("lines: []\nmigrations: []\n") == {"lines": [], "migrations": []}
    for bad in ("- a list\n", "key: [unclosed\n"):
        with pytest.raises(commands.CommandError) as refused:
            commands.load_plan_file(bad)
        assert refused.value.code == 2


def test_grant_commands_take_what_the_review_policy_needs() -> None:
    asked = main.parser().parse_args(
        ["grant", "request", "check", "--provider", "rsj-data/api", "--port", "https",
         "--port", "8443", "--purpose", "核验", "-n", "mz-app"]
    )  # fmt: skip
    assert (asked.provider, asked.port, asked.namespace) == (
        "rsj-data/api",
        ["https", "8443"],
        "mz-app",
    )
    consent = main.parser().parse_args(
        ["grant", "consent", "check", "-n", "mz-app", "--reason", "同意"]
    )
    assert (consent.name, consent.namespace, consent.reason) == ("check", "mz-app", "同意")
    for missing in (
        ["grant", "consent", "check", "-n", "mz-app"],  # no reason: every act says why
        ["grant", "revoke", "check", "--reason", "done"],  # no namespace
        ["grant", "request", "check", "--provider", "rsj-data/api", "--purpose", "x"],  # no port
    ):
        with pytest.raises(SystemExit):
            main.parser().parse_args(missing)
