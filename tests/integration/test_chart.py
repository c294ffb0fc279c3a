"""The Helm chart: lints, renders valid objects, installs, grants least privilege, and its
alerts and dashboard query only metrics a running operator really exports."""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml
from _chart_helpers import (
    CHART,
    KUBE_VERSION,
    Manifest,
    Release,
    helm,
    installed_release,
    of_kind,
    one,
    render,
)
from prometheus_client.parser import text_string_to_metric_families

from govcloud import metrics, settings
from govcloud.api import crdgen
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.billing import periods
from govcloud.desired import quotas, rbac
from govcloud.desired import tenant as desired_tenant
from govcloud.dev import cluster, testing
from govcloud.reconcile import tenant_lifecycle

pytestmark = pytest.mark.integration

REPO_ROOT = testing.REPO_ROOT
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"


# Series that Prometheus itself makes for every scrape target: `up` is the health of the
# scrape of the operator's own /metrics, the only way to alert on "no replica answers".
PROMETHEUS_SERIES = {"up"}
# Exported only by an operator with backups on (backup.enabled): the shared operator here runs
# without Velero, so their names and labels come from the recorder's own definitions, and
# test_velero_backup.py scrapes them from an operator that backs tenants up.
BACKUP_SERIES = {family.name: set(family.labels) for family in metrics.BACKUP_FAMILIES}
# Likewise the restore drills' series (test_recovery_drill.py scrapes them).
BACKUP_SERIES |= {family.name: set(family.labels) for family in metrics.DRILL_FAMILIES}
# The platform ledger's backups (backup.ledger, the same operator): series without labels.
LEDGER_SERIES: dict[str, set[str]] = {
    name: set()
    for name in (metrics.LEDGER_LAST_SUCCESS, metrics.LEDGER_RPO_MET, metrics.LEDGER_RPO)
}
# Labels Prometheus adds to every scraped series (target labels from the ServiceMonitor).
TARGET_LABELS = {"job", "namespace", "instance", "pod", "service", "container", "endpoint"}


BILLING_RATE_CARD: Manifest = {
    "apiVersion": "govcloud.io/v1alpha1",
    "kind": "RateCard",
    "metadata": {"name": "default"},
    "spec": {
        "currency": "CNY",
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2020-01-01"}],
    },
}


RENDERINGS = {
    "default": (),
    "all-features": ("-f", str(ALL_FEATURES)),
}


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(*RENDERINGS[request.param])


@pytest.fixture(scope="module")
def all_features() -> list[Manifest]:
    return render(*RENDERINGS["all-features"])


# -- lint, CRDs, values schema -------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(RENDERINGS))
def test_chart_passes_helm_lint_strict(values: str) -> None:
    result = helm(
        "lint", "--strict", str(CHART), f"--kube-version={KUBE_VERSION}", *RENDERINGS[values]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_crds_are_exactly_the_generated_ones() -> None:
    problems = crdgen.drift([CHART / "crds"])
    assert not problems, (
        "the chart's CRDs differ from the models; run "
        "`python -m govcloud.api.crdgen --out crds --out charts/govcloud-operator/crds`:\n"
        + "\n".join(problems)
    )
    # Leader election uses a built-in Lease: the chart ships no CRD of anyone else's.
    groups = {yaml.safe_load(path.read_text())["spec"]["group"] for path in CHART.glob("crds/*")}
    assert groups == {"govcloud.io"}


def _objects_without_closed_keys(node: Any, where: str = "values") -> Iterator[str]:
    """Schema nodes that would accept unknown keys silently."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "object":
        closed = node.get("additionalProperties") is False
        typed_map = isinstance(node.get("additionalProperties"), dict)
        pass_through = "passed through" in node.get("description", "") or where == "values.global"
        if not (closed or typed_map or pass_through):
            yield where
    for key, child in (node.get("properties") or {}).items():
        yield from _objects_without_closed_keys(child, f"{where}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _objects_without_closed_keys(node[key], f"{where}[]")
    for branch in node.get("anyOf") or []:
        yield from _objects_without_closed_keys(branch, where)


def test_values_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert list(_objects_without_closed_keys(schema)) == []
    # The defaults themselves are valid, and every top-level key is described by the schema.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    assert set(values) <= set(schema["properties"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCont=2", "additional properties 'replicaCont' not allowed"),
        ("image.tagg=v1", "additional properties 'tagg' not allowed"),
        ("serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("features.subCenter.enabled=true", "additional properties 'subCenter' not allowed"),
        ("securityContext.privileged=true", "privileged"),
        ("replicaCount=-1", "replicaCount"),
        ("rbac.extraRules[0].verbs[0]=*", "/rbac/extraRules/0"),
        ("peering.name=govcloud-operator", "additional properties 'peering' not allowed"),
        ("leaderElection.leaseNam=x", "additional properties 'leaseNam' not allowed"),
        ("financeReaders[0].payer=county", "/financeReaders/0/payer"),
        ("financeReaders[0].group=x", "additional properties 'group' not allowed"),
        ("backup.levels.3.rpo=1d", "/backup/levels/3/rpo"),
        ("backup.levels.4.rpo=1h", "additional properties '4' not allowed"),
        ("backup.maxTtl=1h", "additional properties 'maxTtl' not allowed"),
        (
            "leaderElection.renewDeadline=20",
            "leaseDuration (15) > renewDeadline (20) > retryPeriod (2) must hold",
        ),
        (
            "leaderElection.retryPeriod=10",
            "leaseDuration (15) > renewDeadline (10) > retryPeriod (10) must hold",
        ),
    ],
)
def test_a_values_mistake_fails_with_a_message(setting: str, message: str) -> None:
    result = helm(
        "template", "govcloud", str(CHART), f"--kube-version={KUBE_VERSION}", "--set", setting
    )
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert message in result.stderr, result.stderr


# -- rendered objects ------------------------------------------------------------------------


def test_rendered_objects_are_valid_for_the_pinned_kubernetes(rendered: list[Manifest]) -> None:
    checked = 0
    for manifest in rendered:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        group = manifest["apiVersion"].split("/")[0]
        if group == "monitoring.coreos.com":
            continue  # prometheus-operator kinds: checked structurally below
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} is not a valid Kubernetes {KUBE_VERSION} object: {error.message}")
        checked += 1
    assert checked >= 8


def test_rbac_has_no_wildcards(rendered: list[Manifest]) -> None:
    for role in of_kind(rendered, "ClusterRole") + of_kind(rendered, "Role"):
        for rule in role.get("rules") or []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in (rule.get(key) or []), f"{role['metadata']['name']}: {rule}"


def test_by_default_secrets_are_only_got_by_name_in_the_release_namespace() -> None:
    default = render()
    secret_rules = [
        (role["kind"], role["metadata"].get("namespace"), rule)
        for role in of_kind(default, "ClusterRole") + of_kind(default, "Role")
        for rule in role.get("rules") or []
        if "secrets" in rule["resources"]
    ]
    assert secret_rules == [
        ("Role", "govcloud-system", {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    ]


def named(manifests: Sequence[Manifest], kind: str, name: str) -> Manifest:
    found = [item for item in of_kind(manifests, kind) if item["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def test_features_widen_rbac_only_when_switched_on(all_features: list[Manifest]) -> None:
    role = named(all_features, "Role", "govcloud-subcenter-credentials")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["baohe-kubeconfig", "lujiang-kubeconfig"],
            "verbs": ["get"],
        }
    ]
    roles = of_kind(render("--set", "features.subCenters.enabled=false"), "Role")
    assert [item["metadata"]["name"] for item in roles] == ["govcloud-leader-election"]
    narrowed = render("--set", "features.migrations.enabled=true")
    rules = [rule for item in of_kind(narrowed, "ClusterRole") for rule in item["rules"]]
    assert any("secrets" in rule["resources"] for rule in rules)
    narrowed = render(
        "--set", "features.migrations.enabled=true",
        "--set", "features.migrations.copySecrets=false",
    )  # fmt: skip
    rules = [rule for item in of_kind(narrowed, "ClusterRole") for rule in item["rules"]]
    assert not any("secrets" in rule["resources"] for rule in rules)
    no_delete = render("--set", "rbac.allowNamespaceDeletion=false")
    operator_role = next(
        item for item in of_kind(no_delete, "ClusterRole") if item["metadata"]["name"] == "govcloud"
    )
    namespace_rules = [r for r in operator_role["rules"] if r["resources"] == ["namespaces"]]
    assert namespace_rules
    assert all("delete" not in rule["verbs"] for rule in namespace_rules)


def test_backups_grant_a_role_in_veleros_namespace_only_when_switched_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def velero_rules(manifests: list[Manifest]) -> list[tuple[str, str | None, Manifest]]:
        return [
            (role["kind"], role["metadata"].get("namespace"), rule)
            for role in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
            for rule in role.get("rules") or []
            if "velero.io" in rule.get("apiGroups", [])
        ]

    default = render()
    assert velero_rules(default) == []
    env = {item["name"] for item in one(default, "Deployment")["spec"]["template"]["spec"][
        "containers"][0]["env"]}  # fmt: skip
    assert not any(name.startswith("GOVCLOUD_BACKUP") for name in env)
    enabled = render(
        "--set", "backup.enabled=true", "--set", "backup.namespace=backups",
        "--set", "backup.levels.3.ttl=2160h",
    )  # fmt: skip
    assert velero_rules(enabled) == [
        ("Role", "backups", {"apiGroups": ["velero.io"], "resources": ["schedules"],
                             "verbs": ["get", "list", "watch", "create", "patch", "delete"]}),
        ("Role", "backups", {"apiGroups": ["velero.io"], "resources": ["backups"],
                             "verbs": ["get", "list", "watch"]}),
        ("Role", "backups", {"apiGroups": ["velero.io"], "resources": ["restores"],
                             "verbs": ["get", "list", "watch", "create"]}),
    ]  # fmt: skip
    binding = named(enabled, "RoleBinding", "govcloud-backup")
    assert binding["metadata"]["namespace"] == "backups"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "govcloud", "namespace": "govcloud-system"}
    ]
    # The operator reads the policy the chart renders as the chart's values say.
    container = one(enabled, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for item in container["env"]:
        if item["name"].startswith("GOVCLOUD_BACKUP"):
            monkeypatch.setenv(item["name"], item["value"])
    policy = settings.Settings().backup_policy
    assert settings.Settings().backup_enabled
    assert policy.namespace == "backups"
    assert policy.levels[3].ttl == 2160 * 3600
    assert policy.levels[3].schedule == "0 18 * * *"
    assert policy.levels[1].rpo == 192 * 3600
    assert policy.min_interval == 3600
    assert policy.max_ttl == 8760 * 3600


def test_operator_may_serve_exactly_the_kinds_whose_crds_ship() -> None:
    plurals = {
        yaml.safe_load(path.read_text())["spec"]["names"]["plural"]
        for path in (CHART / "crds").glob("*.govcloud.io.yaml")
    }
    assert "cloudtenants" in plurals
    role = next(
        item for item in of_kind(render(), "ClusterRole") if item["metadata"]["name"] == "govcloud"
    )
    granted = {
        resource
        for rule in role["rules"]
        if rule["apiGroups"] == ["govcloud.io"]
        for resource in rule["resources"]
    }
    assert granted == plurals | {f"{plural}/status" for plural in plurals}


def test_deployment_is_highly_available_and_restricted() -> None:
    manifests = render()
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert deployment["spec"]["replicas"] == 2
    assert env["GOVCLOUD_STANDALONE"]["value"] == "false"
    # Each replica is named in the Lease by its pod name; the Lease is the one its Role grants.
    assert env["GOVCLOUD_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["GOVCLOUD_LEASE_NAMESPACE"]["value"] == "govcloud-system"
    granted = named(manifests, "Role", "govcloud-leader-election")["rules"][0]["resourceNames"]
    assert [env["GOVCLOUD_LEASE_NAME"]["value"]] == granted
    timings = [
        float(env[f"GOVCLOUD_LEASE_{name}_SECONDS"]["value"])
        for name in ("DURATION", "RENEW_DEADLINE", "RETRY_PERIOD")
    ]
    assert timings == [15, 10, 2]
    assert "POD_ID" not in env
    assert one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    mounts = {item["mountPath"]: item["name"] for item in container["volumeMounts"]}
    volumes = {item["name"]: item for item in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert env["GOVCLOUD_PLATFORM_NAMESPACES"]["value"].split(",")[-1] == "govcloud-system"


def test_leader_election_may_write_one_lease_in_the_release_namespace_only() -> None:
    manifests = render("--set", "leaderElection.leaseName=our-lease", namespace="platform")
    role = named(manifests, "Role", "govcloud-leader-election")
    assert role["metadata"]["namespace"] == "platform"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["our-lease"],
            "verbs": ["get", "update", "patch"],
        },
        # RBAC cannot limit create to a name: the name is not known before the object exists.
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    binding = named(manifests, "RoleBinding", "govcloud-leader-election")
    assert binding["metadata"]["namespace"] == "platform"
    assert binding["roleRef"]["name"] == "govcloud-leader-election"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "govcloud", "namespace": "platform"}
    ]
    cluster_rules = [rule for item in of_kind(manifests, "ClusterRole") for rule in item["rules"]]
    assert not [rule for rule in cluster_rules if "leases" in rule["resources"]]
    assert not [rule for rule in cluster_rules if "kopf.dev" in rule["apiGroups"]]


def test_service_monitor_scrapes_the_metrics_service(all_features: list[Manifest]) -> None:
    monitor = one(all_features, "ServiceMonitor")
    service = one(all_features, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["govcloud-system"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    deployment = one(all_features, "Deployment")
    container_ports = {
        port["name"] for port in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= container_ports


def test_alert_rules_cover_what_the_platform_must_know(all_features: list[Manifest]) -> None:
    rule = one(all_features, "PrometheusRule")
    alerts = {item["alert"]: item for group in rule["spec"]["groups"] for item in group["rules"]}
    for required in (
        "GovcloudOperatorDown",
        "GovcloudReconcileErrors",
        "GovcloudTenantNearQuota",
        "GovcloudSubCenterUnreachable",
    ):
        assert required in alerts
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert alert["labels"]["team"] == "govcloud-platform", name
        assert alert["annotations"]["summary"], name
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name
    assert "> 0.85" in alerts["GovcloudTenantNearQuota"]["expr"]
    # The job the rules select is the one a ServiceMonitor gives the metrics Service.
    assert 'job="govcloud-metrics"' in alerts["GovcloudOperatorDown"]["expr"]
    assert one(all_features, "Service")["metadata"]["name"] == "govcloud-metrics"


# -- PromQL ----------------------------------------------------------------------------------

Selector = tuple[str, frozenset[str]]


def selectors(expression: str) -> list[Selector]:
    """Every (metric name, label names matched) in a PromQL expression; fails if it is invalid."""
    try:
        parsed = promql_parser.parse(expression)
    except Exception as error:  # the parser raises plain exceptions with the position
        pytest.fail(f"invalid PromQL {expression!r}: {error}")
    found: list[Selector] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expression!r}"
            labels = frozenset(matcher.name for matcher in node.matchers.matchers)
            found.append((node.name, labels))
        return True

    promql_parser.walk(parsed, visit)
    return found


GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "govcloud-metrics",
    "$tenant": "x",
    "$tier": "city",
}


def grafana_promql(text: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        text = text.replace(variable, value)
    assert "$" not in text, f"unknown Grafana variable in {text!r}"
    return text


def dashboard_queries(dashboard: Manifest) -> list[str]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(grafana_promql(target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
        assert match, f"variable {variable['name']}: unsupported query"
        queries.append(f"group by ({match.group(2)}) ({grafana_promql(match.group(1))})")
    return queries


def observability_queries(manifests: Sequence[Manifest]) -> dict[str, str]:
    queries: dict[str, str] = {}
    rule = one(manifests, "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            queries[f"alert {item['alert']}"] = item["expr"]
    config_map = one(manifests, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    for file_name, text in config_map["data"].items():
        dashboard = json.loads(text)
        assert dashboard["uid"]
        assert dashboard["title"]
        for index, query in enumerate(dashboard_queries(dashboard)):
            queries[f"dashboard {file_name} query {index}"] = query
    return queries


def inline_kubeconfig(plane: cluster.ControlPlane) -> str:
    """The cluster's kubeconfig with its certificates inlined, as a Secret would hold it."""
    config = yaml.safe_load(plane.kubeconfig.read_text())
    for entry in config["clusters"]:
        path = entry["cluster"].pop("certificate-authority")
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(
            Path(path).read_bytes()
        ).decode()
    for entry in config["users"]:
        for key in ("client-certificate", "client-key"):
            entry["user"][f"{key}-data"] = base64.b64encode(
                Path(entry["user"].pop(key)).read_bytes()
            ).decode()
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def scraped(
    kubectl: testing.Kubectl,
    operator: testing.OperatorProcess,
    subcenter: cluster.ControlPlane,
    system_namespace: str,
) -> Iterator[str]:
    """The operator's /metrics once it has reconciled a tenant and probed a sub-center (a
    second real control plane), so that every per-object series exists with its labels."""
    suffix = uuid.uuid4().hex[:6]
    tenant, site = f"chart-metrics-{suffix}", f"chart-site-{suffix}"
    budget = f"chart-budget-{suffix}"  # a plan only: no such tenant
    year = periods.year_of(datetime.datetime.now(datetime.UTC), periods.zone(8))
    made_card = False
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": site, "namespace": system_namespace},
            "stringData": {"kubeconfig": inline_kubeconfig(subcenter)},
        }
    )
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "SubCenter",
            "metadata": {"name": site},
            "spec": {
                "displayName": "指标测试分中心",
                "region": "测试区",
                "tier": "county",
                "mode": "federated",
                "maxSecurityLevel": 3,
                "kubeconfigSecretRef": {"name": site, "namespace": system_namespace},
            },
        }
    )
    kubectl.apply(
        {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "CloudTenant",
            "metadata": {"name": tenant},
            "spec": {
                "displayName": "指标测试单位",
                "unit": {"code": tenant, "tier": "city"},
                "contacts": [{"name": "测试员", "email": "metrics@test.gov.cn"}],
                "admins": {"groups": [f"{tenant}-admins"]},
                "securityLevel": 2,
                "namespaces": [{"name": "app"}],
                "quota": {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"},
                "deletionPolicy": "Delete",
            },
        }
    )
    try:
        testing.eventually(
            lambda: operator.metric_value("govcloud_tenant_phase", tenant=tenant, phase="Active"),
            timeout=60,
            what=f"tenant {tenant} Active in the operator's metrics",
        )
        # A plan already past its deadline, so the overdue-migration series exist too.
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "MigrationPlan",
                "metadata": {"name": "late-app", "namespace": f"{tenant}-app"},
                "spec": {
                    "app": {"name": "逾期系统", "securityLevel": 2},
                    "source": {"namespace": f"{tenant}-legacy", "kinds": ["Deployment"]},
                    "targetNamespace": f"{tenant}-app",
                    "deadline": "2026-01-01T00:00:00Z",
                },
            }
        )
        testing.eventually(
            lambda: "govcloud_migration_plans_overdue{" in operator.metrics(),
            timeout=60,
            what=f"the overdue MigrationPlan of {tenant} in the operator's metrics",
        )
        # A NetworkGrant of the tenant (waiting for consent), so that the grant series exist.
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "NetworkGrant",
                "metadata": {"name": "metrics", "namespace": f"{tenant}-app"},
                "spec": {
                    "provider": {
                        "namespace": "kube-system",
                        "service": "kube-dns",
                        "ports": ["53"],
                    },
                    "purpose": "指标",
                    "requestedBy": "govcloud-admin",
                },
            }
        )
        testing.eventually(
            lambda: "govcloud_network_grants_pending{" in operator.metrics(),
            timeout=60,
            what=f"the NetworkGrant of {tenant} in the operator's metrics",
        )
        testing.eventually(
            lambda: operator.metric_value("govcloud_subcenter_up", subcenter=site),
            timeout=60,
            what=f"sub-center {site} up in the operator's metrics",
        )
        # Billing: a rate card (metering ticks) and a pending plan of this year, so that the
        # usage, plan and metering series exist too.
        if kubectl.get("ratecard", "default") is None:
            kubectl.apply(BILLING_RATE_CARD)
            made_card = True
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "ResourcePlan",
                "metadata": {"name": f"{tenant}-{year}"},
                "spec": {
                    "tenant": tenant,
                    "year": year,
                    "lines": [{"resources": {"requests.cpu": "1"}, "count": 1, "reason": "指标"}],
                },
            }
        )
        # And a plan of this year approved as it is filed (by a cluster admin, who holds the
        # `approve` verb), so that the per-payer budget series exist.
        kubectl.apply(
            {
                "apiVersion": "govcloud.io/v1alpha1",
                "kind": "ResourcePlan",
                "metadata": {"name": f"{budget}-{year}"},
                "spec": {
                    "tenant": budget,
                    "year": year,
                    "lines": [{"resources": {"requests.cpu": "1"}, "count": 1, "reason": "预算"}],
                    "decision": {
                        "state": "Approved",
                        "by": "govcloud-admin",
                        "reason": "指标",
                        "approvedGeneration": 0,
                        "groups": ["system:masters"],
                    },
                },
            }
        )
        for metric in (
            "govcloud_usage_charge_cny",
            "govcloud_usage_resource_hours",  # from the second tick on (the first opens)
            "govcloud_plan_ceiling",
            "govcloud_plan_pending_since_timestamp_seconds",
            "govcloud_plan_approved_cost_by_payer_cny",
        ):
            try:
                testing.eventually(
                    lambda metric=metric: any(
                        line.startswith(f"{metric}{{")
                        and (f'tenant="{tenant}"' in line or "by_payer" in metric)
                        for line in operator.metrics().splitlines()
                    ),
                    timeout=120,
                    what=f"{metric} of {tenant} in the operator's metrics",
                )
            except testing.WaitTimeoutError as error:
                found = kubectl.get("resourceplan", f"{tenant}-{year}") or {}
                raise testing.WaitTimeoutError(
                    f"{error}\nplan status: {found.get('status')}\n{operator.log_tail(60)}"
                ) from None
        yield operator.metrics()
    finally:
        kubectl.run("delete", "resourceplan", f"{tenant}-{year}", "--wait=false")
        kubectl.run("delete", "resourceplan", f"{budget}-{year}", "--wait=false")
        if made_card:
            kubectl.run("delete", "ratecard", "default", "--timeout=60s")
        kubectl.run("delete", "cloudtenant", tenant, "--wait=false")
        kubectl.run("delete", "subcenter", site, "--wait=false")
        kubectl.run("delete", "secret", site, "-n", system_namespace, "--wait=false")


def exported_series(text: str) -> dict[str, set[str]]:
    """Sample name -> label names, as Prometheus would store them."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def test_scrape_has_every_series_the_assets_use(scraped: str) -> None:
    """The fixture really produced per-tenant and per-sub-center samples with labels."""
    exported = exported_series(scraped)
    assert {"tenant", "tier", "resource", "type"} <= exported["govcloud_tenant_resourcequota"]
    assert {"subcenter", "mode", "tier"} <= exported["govcloud_subcenter_up"]
    assert {"subcenter", "resource", "type"} <= exported["govcloud_subcenter_capacity"]


def test_every_promql_name_and_label_is_exported_by_the_operator(
    scraped: str, all_features: list[Manifest]
) -> None:
    exported = {**BACKUP_SERIES, **LEDGER_SERIES, **exported_series(scraped)}
    queries = observability_queries(all_features)
    assert len(queries) >= 15
    problems = []
    for where, expression in queries.items():
        for name, labels in selectors(expression):
            if name in PROMETHEUS_SERIES:
                continue
            if name not in exported:
                problems.append(f"{where}: {name} is not exported")
                continue
            unknown = labels - exported[name] - TARGET_LABELS
            if unknown:
                problems.append(f"{where}: {name} has no label {sorted(unknown)}")
    assert not problems, "\n".join(problems)


def test_every_exported_metric_is_documented(scraped: str) -> None:
    documented = METRICS_DOC.read_text()
    missing = []
    for family in text_string_to_metric_families(scraped):
        if not family.name.startswith("govcloud_") or family.name.endswith("_created"):
            continue  # prometheus_client's `_created` companions of counters and histograms
        name = f"{family.name}_total" if family.type == "counter" else family.name
        if f"`{name}`" not in documented:
            missing.append(name)
    assert not missing, f"add these metrics to {METRICS_DOC}: {missing}"


def test_image_runs_as_the_user_the_chart_expects() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(stages) >= 2, "a multi-stage build"
    assert re.search(r"^ENTRYPOINT \[\"govcloud-operator\"\]$", dockerfile, re.M)
    user = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    security = values["podSecurityContext"]
    assert user == [(str(security["runAsUser"]), str(security["runAsGroup"]))]
    assert "python:3.11-slim" in dockerfile
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(ignored)


# -- examples against the real API server ------------------------------------------------


def test_examples_are_valid_against_the_crds(kubectl: testing.Kubectl, crds: None) -> None:
    examples = sorted((REPO_ROOT / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        result = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-f", str(path))
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


# -- installed into the hub --------------------------------------------------------------


@pytest.fixture(scope="module")
def release(hub: cluster.ControlPlane, kubectl: testing.Kubectl, crds: None) -> Iterator[Release]:
    yield from installed_release(hub, kubectl)


def test_chart_installs_with_helm(release: Release) -> None:
    status = helm(
        "status", release.name, "-n", release.namespace, "-o", "json",
        kubeconfig=release.hub.kubeconfig,
    )  # fmt: skip
    assert json.loads(status.stdout)["info"]["status"] == "deployed"
    kubectl = release.kubectl
    assert kubectl.get("crd", "cloudtenants.govcloud.io") is not None
    assert kubectl.get("role", f"{release.fullname}-leader-election", release.namespace)
    assert kubectl.get("rolebinding", f"{release.fullname}-leader-election", release.namespace)
    assert kubectl.get("serviceaccount", release.fullname, release.namespace) is not None
    assert kubectl.get("clusterrole", f"{release.fullname}:platform-admin") is not None
    assert kubectl.get("configmap", f"{release.fullname}-dashboard", release.namespace)


CANNOT = [
    ("delete", "nodes"),
    ("patch", "nodes"),
    ("get", "secrets", "-A"),
    ("get", "secrets", "-n", "default"),
    ("get", "secrets", "-n", "kube-system"),
    ("list", "secrets", "-n", "kube-system"),
    ("watch", "secrets", "-A"),
    ("create", "pods", "-n", "default"),
    ("create", "pods/exec", "-n", "default"),
    ("create", "deployments.apps", "-n", "default"),
    ("create", "serviceaccounts/token", "-n", "kube-system"),
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "cloudtenants.govcloud.io"),
    ("delete", "cloudtenants.govcloud.io"),
    ("create", "cloudtenants.govcloud.io"),
    # Leases: none outside the release namespace (kubectl's namespace here is "default").
    ("create", "leases.coordination.k8s.io"),
    ("get", "leases.coordination.k8s.io", "-A"),
    ("patch", "leases.coordination.k8s.io/govcloud-operator", "-n", "kube-system"),
    ("update", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system"),
    ("get", "configmaps", "-A"),
    ("create", "validatingadmissionpolicies.admissionregistration.k8s.io"),
    ("delete", "persistentvolumes"),
    ("*", "*"),
]


@pytest.mark.parametrize("args", CANNOT, ids=" ".join)
def test_service_account_cannot_do_what_the_operator_never_does(
    release: Release, args: tuple[str, ...]
) -> None:
    assert not release.can(*args), f"the operator's ServiceAccount may {' '.join(args)}"


def test_service_account_can_do_what_the_operator_does(release: Release) -> None:
    needed = [
        ("watch", "cloudtenants.govcloud.io"),
        ("patch", "cloudtenants.govcloud.io/status"),
        ("create", "namespaces"),
        ("delete", "namespaces"),
        ("patch", "resourcequotas", "-n", "any-tenant-ns"),
        ("delete", "networkpolicies.networking.k8s.io", "-n", "any-tenant-ns"),
        ("create", "rolebindings.rbac.authorization.k8s.io", "-n", "any-tenant-ns"),
        ("bind", "clusterroles.rbac.authorization.k8s.io/admin"),
        ("create", "events", "-n", "default"),
        ("get", f"leases.coordination.k8s.io/{release.lease}", "-n", release.namespace),
        ("update", f"leases.coordination.k8s.io/{release.lease}", "-n", release.namespace),
        ("patch", f"leases.coordination.k8s.io/{release.lease}", "-n", release.namespace),
        ("create", "leases.coordination.k8s.io", "-n", release.namespace),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "subcenters.govcloud.io"),
        ("patch", "subcenters.govcloud.io/status"),
        ("get", "secrets", "-n", release.namespace),  # sub-center kubeconfigs, by name
    ]
    assert not release.can("list", "secrets", "-n", release.namespace)
    # Its own Lease only, even in its own namespace, and never deleted.
    others = [(verb, "someone-else") for verb in ("get", "update", "patch")]
    for verb, name in [*others, ("delete", release.lease)]:
        lease = f"leases.coordination.k8s.io/{name}"
        assert not release.can(verb, lease, "-n", release.namespace), f"{verb} {lease}"
    refused = [" ".join(args) for args in needed if not release.can(*args)]
    assert not refused, f"the chart's RBAC lacks: {refused}"


def test_admission_guard_stops_what_rbac_cannot_express(release: Release) -> None:
    kubectl = release.kubectl
    as_operator = f"--as={release.user}"
    bystander = f"bystander-{uuid.uuid4().hex[:6]}"
    tenant_ns = f"guard-tenant-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", bystander)
    kubectl("create", "namespace", tenant_ns)
    kubectl("label", "namespace", tenant_ns, "govcloud.io/tenant=guard-test")
    try:
        # RBAC alone would allow each of these (bind admin, create clusterrolebindings, ...).
        denied = [
            ("create", "clusterrolebinding", "steal", "--clusterrole=admin", "--user=mallory"),
            ("create", "rolebinding", "steal", "-n", bystander, "--clusterrole=admin",
             "--user=mallory"),
            ("create", "clusterrole", "not-a-tenant-role", "--verb=get", "--resource=namespaces"),
            ("delete", "namespace", bystander, "--dry-run=server"),
        ]  # fmt: skip
        for args in denied:
            result = kubectl.run(*args, as_operator)
            assert result.returncode != 0, f"the operator may {' '.join(args)}"
            assert "ValidatingAdmissionPolicy" in result.stderr, result.stderr
            if args[1] == "clusterrolebinding":  # names every role it may bind
                assert "(self-view, plan-filer)" in result.stderr, result.stderr
        allowed = kubectl.run("delete", "namespace", tenant_ns, "--dry-run=server", as_operator)
        assert allowed.returncode == 0, allowed.stderr
    finally:
        kubectl.run("delete", "namespace", bystander, tenant_ns, "--wait=false")


# -- the admission guard against the attacker's own moves (review C2) ----------------------

MALLORY = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "mallory"}
OPERATOR_LABELS = {"app.kubernetes.io/managed-by": "govcloud-operator", "govcloud.io/tenant": "x"}


def as_operator(release: Release, manifest: Manifest) -> subprocess.CompletedProcess[str]:
    """Server-side apply as the operator's ServiceAccount, as the operator writes."""
    return release.kubectl.run(
        "apply", "--server-side", "--field-manager=govcloud-operator", "--force-conflicts",
        "-f", "-", f"--as={release.user}", stdin=json.dumps(manifest),
    )  # fmt: skip


def refused_by_guard(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr


def operator_subject(release: Release) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": release.fullname, "namespace": release.namespace}


def operator_rules(release: Release) -> list[Manifest]:
    """The rules of the operator's own ClusterRole, as installed."""
    role = release.kubectl.get("clusterrole", release.fullname)
    assert role is not None
    return list(role["rules"])


def test_guard_refuses_a_labelled_rolebinding_in_kube_system(release: Release) -> None:
    for subjects in ([MALLORY], [operator_subject(release)], [MALLORY, operator_subject(release)]):
        result = as_operator(
            release,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": "govcloud-admin", "namespace": "kube-system", "labels": OPERATOR_LABELS
                },
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"
                },
                "subjects": subjects,
            },
        )  # fmt: skip
        assert refused_by_guard(result), result.stdout + result.stderr
    assert release.kubectl.get("rolebinding", "govcloud-admin", "kube-system") is None
    peek = release.kubectl.run("get", "secrets", "-n", "kube-system", "--as=mallory")
    assert peek.returncode != 0
    assert "forbidden" in peek.stderr, peek.stdout


def test_guard_refuses_label_then_delete_of_a_bystander_namespace(release: Release) -> None:
    kubectl = release.kubectl
    bystander = f"bystander-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", bystander)
    try:
        as_user = f"--as={release.user}"
        labelled = kubectl.run("label", "namespace", bystander, "govcloud.io/tenant=x", as_user)
        assert refused_by_guard(labelled), labelled.stdout + labelled.stderr
        granted = kubectl.run(
            "label", "namespace", bystander, "govcloud.io/adoptable-by=x", as_user
        )
        assert refused_by_guard(granted), granted.stdout + granted.stderr
        deleted = kubectl.run("delete", "namespace", bystander, "--dry-run=server", as_user)
        assert refused_by_guard(deleted), deleted.stdout + deleted.stderr
        found = kubectl.get("namespace", bystander)
        assert found is not None
        assert "govcloud.io/tenant" not in (found["metadata"].get("labels") or {})
        # Someone who may write namespaces labels it a tenant's, and marks it protected: the
        # operator may still not delete it, nor drop the protection.
        kubectl("label", "namespace", bystander, "govcloud.io/tenant=x", "govcloud.io/protected=")
        unprotect = kubectl.run("label", "namespace", bystander, "govcloud.io/protected-", as_user)
        assert refused_by_guard(unprotect), unprotect.stdout + unprotect.stderr
        deleted = kubectl.run("delete", "namespace", bystander, "--dry-run=server", as_user)
        assert refused_by_guard(deleted), deleted.stdout + deleted.stderr
    finally:
        kubectl.run("delete", "namespace", bystander, "--wait=false")


def test_guard_refuses_the_relay_cluster_role_and_its_binding(release: Release) -> None:
    kubectl = release.kubectl
    relay = "govcloud:tenant:x:relay"
    refused = []
    for name, extra in (
        (relay, {}),
        # The right name, the operator's own permissions.
        ("govcloud:tenant:x:self-view", {}),
    ):
        result = as_operator(
            release,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name, "labels": {**OPERATOR_LABELS, **extra}},
                "rules": operator_rules(release),
            },
        )
        refused.append(refused_by_guard(result))
    binding = as_operator(
        release,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": relay, "labels": OPERATOR_LABELS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": relay,
            },
            "subjects": [MALLORY],
        },
    )
    assert refused == [True, True]
    assert binding.returncode != 0, binding.stdout  # the role it names was never made
    assert kubectl.get("clusterrole", relay) is None
    assert kubectl.get("clusterrolebinding", relay) is None
    assert kubectl.get("clusterrole", "govcloud:tenant:x:self-view") is None
    # A real tenant role, bound to everyone: refused as well.
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "govcloud:tenant:x:self-view", "labels": OPERATOR_LABELS},
        "rules": [
            {
                "apiGroups": ["govcloud.io"],
                "resources": ["cloudtenants"],
                "resourceNames": ["x"],
                "verbs": ["get"],
            }
        ],
    }
    try:
        made = as_operator(release, role)
        assert made.returncode == 0, made.stderr
        for subject in (
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": "system:authenticated",
            },
            operator_subject(release),
        ):
            everyone = as_operator(
                release,
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": role["metadata"]["name"], "labels": OPERATOR_LABELS},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": role["metadata"]["name"],
                    },
                    "subjects": [subject],
                },
            )
            assert refused_by_guard(everyone), everyone.stdout + everyone.stderr
    finally:
        kubectl.run("delete", "clusterrole", role["metadata"]["name"])
    # So mallory never got the operator's powers.
    steal = kubectl.run(
        "create", "clusterrolebinding", f"steal-{uuid.uuid4().hex[:5]}", "--clusterrole=edit",
        "--user=mallory", "--as=mallory",
    )  # fmt: skip
    assert steal.returncode != 0
    assert "forbidden" in steal.stderr, steal.stdout
    assert (
        kubectl.run(
            "delete", "namespace", "kube-system", "--dry-run=server", "--as=mallory"
        ).returncode
        != 0
    )


def test_guard_refuses_aggregation_into_every_tenants_admin(release: Release) -> None:
    self_view = {
        "apiGroups": ["govcloud.io"],
        "resources": ["cloudtenants", "cloudtenants/status"],
        "resourceNames": ["x"],
        "verbs": ["get", "list", "watch"],
    }
    name = "govcloud:tenant:x:self-view"
    aggregated = as_operator(
        release,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": name,
                "labels": {
                    **OPERATOR_LABELS,
                    "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                },
            },
            "rules": [self_view],
        },
    )
    assert refused_by_guard(aggregated), aggregated.stdout + aggregated.stderr
    aggregating = as_operator(
        release,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": OPERATOR_LABELS},
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}
                ]
            },
            "rules": [],
        },
    )
    # The API server itself already wants cluster-admin for an aggregationRule; the guard
    # refuses it as well.
    assert aggregating.returncode != 0, aggregating.stdout
    assert release.kubectl.get("clusterrole", name) is None


def finance_role(**changes: Any) -> Manifest:
    """Tenant x's finance ClusterRole as the operator writes it, with `changes` made to it."""
    role = rbac.finance_role("x", "county:庐江", ["x-2027-01"])
    assert role is not None
    role["metadata"]["labels"] = {
        **role["metadata"]["labels"],
        **OPERATOR_LABELS,
        **changes.pop("labels", {}),
    }
    return {**role, **changes}


def test_guard_keeps_the_finance_role_to_reading_the_tenants_own_bills(release: Release) -> None:
    """The label that aggregates a tenant's finance role into its level's finance role is
    admitted only on that role, holding nothing but `get` on the tenant's own reports."""
    name = rbac.finance_name("x")
    other_bill = {
        "apiGroups": ["govcloud.io"],
        "resources": ["usagereports"],
        "resourceNames": ["y-2027-01"],
        "verbs": ["get"],
    }
    # The operator may read namespaces itself (RBAC would let it hand that on): the guard says no.
    spaces = {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "resourceNames": ["x-app"],
        "verbs": ["get"],
    }
    refused = {
        "another tenant's bill": finance_role(rules=[other_bill]),
        "namespaces": finance_role(rules=[finance_role()["rules"][0], spaces]),
        "list": finance_role(rules=[{**finance_role()["rules"][0], "verbs": ["get", "list"]}]),
        "aggregation into admin": finance_role(
            labels={"rbac.authorization.k8s.io/aggregate-to-admin": "true"}
        ),
        "no payer label": finance_role(labels={"finance.govcloud.io/payer": "not-a-hash"}),
    }
    results = {what: as_operator(release, manifest) for what, manifest in refused.items()}
    assert {what: refused_by_guard(result) for what, result in results.items()} == dict.fromkeys(
        refused, True
    ), {what: result.stderr for what, result in results.items()}
    # The finance label on the members' self-view role: refused (it would hand the level every
    # member's reads).
    labelled = self_view("x", [read_rule("cloudtenants", "x")])
    labelled["metadata"]["labels"]["finance.govcloud.io/payer"] = rbac.payer_label("city")
    assert refused_by_guard(as_operator(release, labelled))
    try:
        made = as_operator(release, finance_role())
        assert made.returncode == 0, made.stderr
        # Never bound by the operator: only the level's aggregated role holds it.
        bound = as_operator(
            release,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name, "labels": OPERATOR_LABELS},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": name},
                "subjects": [MALLORY],
            },
        )  # fmt: skip
        assert refused_by_guard(bound), bound.stdout + bound.stderr
    finally:
        release.kubectl.run("delete", "clusterrole", name)


def test_guard_admits_what_the_operator_really_writes(release: Release) -> None:
    """The positive case: the tenant lifecycle, written as the operator's ServiceAccount."""
    kubectl = release.kubectl
    tenant = f"guard-{uuid.uuid4().hex[:5]}"
    legacy = f"{tenant}-legacy"
    spec = cloudtenant.CloudTenantSpec.model_validate(
        {
            "displayName": "守卫测试",
            "unit": {"code": tenant, "tier": "city"},
            "contacts": [{"name": "测试员", "email": "guard@test.gov.cn"}],
            "admins": {"users": ["guard-admin"], "serviceAccounts": [f"{tenant}-app/ci"]},
            "viewers": {"groups": ["auditors"]},
            "securityLevel": 2,
            "namespaces": [{"name": "app"}, {"name": "legacy", "adopt": True}],
            "quota": {"requests.cpu": "2", "pods": "10"},
        }
    )
    names = [f"{tenant}-app", legacy]
    wanted = desired_tenant.build(
        tenant,
        spec,
        platform_namespaces=["monitoring"],
        allocation=quotas.allocate(spec.quota, names, {}),
        # Its bills: a report of a month, and one named with its UID (a re-created tenant's).
        reports=[f"{tenant}-2027-01", f"{tenant}-2027-02-0f0e0d0c-0000-4000-8000-000000000001"],
        payer="county:庐江",  # its finance role, labelled for the county's finance staff
    )
    assert any(m["metadata"]["name"].endswith(":finance") for m in wanted.cluster_scoped)
    kubectl("create", "namespace", legacy)
    try:
        legacy_manifest = next(m for m in wanted.namespaces if m["metadata"]["name"] == legacy)
        adopted = tenant_lifecycle.mark_adopted(legacy_manifest)
        # No grant on the existing namespace: refused.
        assert refused_by_guard(as_operator(release, adopted))
        kubectl("label", "namespace", legacy, f"govcloud.io/adoptable-by={tenant}")
        problems = []
        for manifest in [*wanted.namespaces[:1], adopted, *wanted.quotas, *wanted.namespaced,
                         *wanted.cluster_scoped]:  # fmt: skip
            for _ in range(2):  # create, then the same write again (an update)
                result = as_operator(release, manifest)
                if result.returncode != 0:
                    problems.append(result.stderr)
        assert not problems, "\n".join(problems)
        # Pruning and releasing: delete a binding, drop the labels (orphan), keep the data.
        deleted = kubectl.run(
            "delete", "rolebinding", "govcloud-view", "-n", f"{tenant}-app", f"--as={release.user}"
        )
        assert deleted.returncode == 0, deleted.stderr
        released = kubectl.run(
            "label", "namespace", legacy, "govcloud.io/tenant-", "app.kubernetes.io/managed-by-",
            f"govcloud.io/orphaned={tenant}", f"--as={release.user}",
        )  # fmt: skip
        assert released.returncode == 0, released.stderr
        # A namespace the tenant created may be deleted (deletionPolicy: Delete); an adopted one
        # never.
        gone = kubectl.run(
            "delete", "namespace", f"{tenant}-app", "--dry-run=server", f"--as={release.user}"
        )
        assert gone.returncode == 0, gone.stderr
        kubectl("label", "namespace", legacy, f"govcloud.io/tenant={tenant}")
        kept = kubectl.run(
            "delete", "namespace", legacy, "--dry-run=server", f"--as={release.user}"
        )
        assert refused_by_guard(kept), kept.stdout + kept.stderr
        for manifest in wanted.cluster_scoped:
            name = manifest["metadata"]["name"]
            removed = kubectl.run("delete", manifest["kind"].lower(), name, f"--as={release.user}")
            assert removed.returncode == 0, removed.stderr
    finally:
        kubectl.run("delete", "namespace", *names, "--wait=false")
        for manifest in wanted.cluster_scoped:
            kubectl.run("delete", manifest["kind"].lower(), manifest["metadata"]["name"])


def self_view(tenant: str, rules: list[Manifest]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": f"govcloud:tenant:{tenant}:self-view",
            "labels": {**OPERATOR_LABELS, "govcloud.io/tenant": tenant},
        },
        "rules": rules,
    }


def read_rule(resource: str, *names: str) -> Manifest:
    return {
        "apiGroups": ["govcloud.io"],
        "resources": [resource],
        "resourceNames": list(names),
        "verbs": ["get", "list", "watch"],
    }


def test_guard_refuses_a_self_view_naming_another_tenants_bills_or_plans(
    release: Release,
) -> None:
    """A stolen operator token may write tenant x's self-view, and bind it to its members;
    it must not thereby read tenant x-b's UsageReports or ResourcePlans (their names start with
    "x-" too), nor, with a tenant label that is a pattern, anyone's."""
    own = as_operator(
        release,
        self_view(
            "x", [read_rule("usagereports", "x-2027-01"), read_rule("resourceplans", "x-2027")]
        ),
    )
    assert own.returncode == 0, own.stderr
    try:
        for rules in (
            [read_rule("usagereports", "x-2027-01", "x-b-2027-01")],
            [read_rule("usagereports", "x-2027-01-not-a-uid")],
            [read_rule("resourceplans", "x-b-2027")],
        ):
            result = as_operator(release, self_view("x", rules))
            assert refused_by_guard(result), (rules, result.stdout + result.stderr)
        wildcard = as_operator(release, self_view("x.b", [read_rule("resourceplans", "xzb-2027")]))
        assert refused_by_guard(wildcard), wildcard.stdout + wildcard.stderr
    finally:
        release.kubectl.run("delete", "clusterrole", "govcloud:tenant:x:self-view")


def test_switching_the_guard_off_is_loud(hub: cluster.ControlPlane, crds: None) -> None:
    def notes(*settings: str) -> str:
        result = helm(
            "install", "loud", str(CHART), "-n", "loud-test", "--dry-run=server",
            "--take-ownership", *settings,
            kubeconfig=hub.kubeconfig,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "WARNING: rbac.admissionGuard is false" in notes("--set", "rbac.admissionGuard=false")
    assert "WARNING" not in notes()


def test_operator_pod_passes_pod_security_restricted(release: Release) -> None:
    deployment = one(render(namespace=release.namespace), "Deployment")
    template = deployment["spec"]["template"]
    template["spec"]["serviceAccountName"] = release.fullname
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psa-probe", "namespace": release.namespace},
        "spec": template["spec"],
    }
    accepted = release.kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
    assert accepted.returncode == 0, accepted.stderr
    assert "PodSecurity" not in accepted.stderr, accepted.stderr
    # The namespace really enforces "restricted": the same pod allowed to escalate is refused.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    refused = release.kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr
