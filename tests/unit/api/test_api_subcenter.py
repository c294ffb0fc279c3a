"""The SubCenter models refuse what the CRD refuses, with the same messages; tenant placement."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pydantic
import pytest
import subcenter_cases
import tenant_cases

from govcloud.api import cel, crdgen, registry
from govcloud.api.v1alpha1 import cloudtenant, subcenter

Schema = dict[str, Any]


def parse(obj: subcenter_cases.Object) -> subcenter.SubCenterSpec:
    return subcenter.parse(obj["metadata"]["name"], obj["spec"])


def crd_root() -> Schema:
    schema: Schema = crdgen.crd(registry.SUBCENTER)["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ]
    return schema


def node_at(schema: Schema, path: str) -> Schema:
    """The schema node at a dotted path: `a.b` properties, `a[]` items."""
    node = schema
    for part in filter(None, path.split(".")):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return node


def test_good_federated_site_is_accepted_with_chinese_names_and_safe_defaults() -> None:
    spec = parse(subcenter_cases.good_object())

    assert spec.display_name == "肥西县政务云分中心"
    assert spec.region == "肥西县"
    assert spec.tier is cloudtenant.Tier.COUNTY
    assert spec.mode is subcenter.Mode.FEDERATED
    assert spec.max_security_level == 2
    assert spec.retire_by is None
    assert spec.kubeconfig_secret_ref.key == "kubeconfig"
    assert (spec.probe.interval_seconds, spec.probe.timeout_seconds) == (10, 5)
    assert spec.probe.failure_threshold == 3
    assert spec.credential_expiry_warning_days == 30


def test_good_hosted_site_keeps_every_optional_field() -> None:
    obj = subcenter_cases.hosted_object()

    spec = parse(obj)

    assert spec.mode is subcenter.Mode.HOSTED
    assert spec.retire_by == datetime.date(2027, 6, 30)
    assert spec.kubeconfig_secret_ref.name == "changfeng.kubeconfig"
    assert spec.kubeconfig_secret_ref.key == "value"
    assert spec.probe == subcenter.Probe(intervalSeconds=5, timeoutSeconds=2, failureThreshold=5)
    assert spec.credential_expiry_warning_days == 14


@pytest.mark.parametrize("make", [subcenter_cases.good_object, subcenter_cases.hosted_object])
def test_wire_names_round_trip(make: Any) -> None:
    spec = parse(make())

    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)

    assert subcenter.SubCenterSpec.model_validate(dumped) == spec
    assert {"displayName", "kubeconfigSecretRef", "maxSecurityLevel", "placementLabels"} <= set(
        dumped
    )
    assert set(dumped["probe"]) == {"intervalSeconds", "timeoutSeconds", "failureThreshold"}


@pytest.mark.parametrize("case", subcenter_cases.CEL_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_with_the_cel_message(case: subcenter_cases.BadCase) -> None:
    with pytest.raises(ValueError, match=re.escape(case.message)):
        parse(case.object())


@pytest.mark.parametrize("case", subcenter_cases.SCHEMA_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_by_the_schema(case: subcenter_cases.BadCase) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(case.message)):
        parse(case.object())


@pytest.mark.parametrize("case", subcenter_cases.CEL_CASES, ids=lambda case: case.id)
def test_each_bad_input_has_a_cel_rule_with_its_message(case: subcenter_cases.BadCase) -> None:
    rules = node_at(crd_root(), case.rule_at).get(cel.VALIDATIONS_KEY, [])

    assert any(case.message in rule["message"] for rule in rules), rules


def test_the_name_rule_sits_on_the_root_because_it_needs_metadata_name() -> None:
    rules = crd_root()[cel.VALIDATIONS_KEY]

    assert [rule["message"] for rule in rules] == [subcenter.SUBCENTER_NAME_FORMAT.message]
    assert "self.metadata.name" in rules[0]["rule"]


@pytest.mark.parametrize("name", ["a", "feixi", "county-7", "f" * 63])
def test_dns_label_names_are_accepted(name: str) -> None:
    subcenter.check_name(name)


def test_mode_is_checked_by_cel_not_by_an_enum_so_the_message_explains_the_modes() -> None:
    mode = node_at(crd_root(), "spec.mode")

    assert "enum" not in mode
    assert mode["maxLength"] == subcenter.MAX_MODE_LENGTH
    assert mode[cel.VALIDATIONS_KEY] == [subcenter.MODE_KNOWN.to_schema()]


def test_omitted_probe_is_defaulted_in_full_by_the_api_server() -> None:
    probe = node_at(crd_root(), "spec.probe")

    assert probe["default"] == {"intervalSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    assert node_at(crd_root(), "spec.kubeconfigSecretRef.key")["default"] == "kubeconfig"
    assert node_at(crd_root(), "spec.credentialExpiryWarningDays")["default"] == 30


def test_retire_by_is_a_date_and_the_cross_field_rules_sit_on_the_spec() -> None:
    spec = node_at(crd_root(), "spec")

    assert spec["properties"]["retireBy"] == {
        "description": spec["properties"]["retireBy"]["description"],
        "type": "string",
        "format": "date",
    }
    assert [rule["fieldPath"] for rule in spec[cel.VALIDATIONS_KEY]] == [".retireBy", ".retireBy"]


def test_crd_names_scope_and_columns() -> None:
    crd = crdgen.crd(registry.SUBCENTER)
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"] if "priority" not in c}

    assert crd["metadata"]["name"] == "subcenters.govcloud.io"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["subc"]
    assert list(columns) == [
        "Region", "Mode", "Ready", "Version", "Nodes", "CPU", "Tenants", "Age"
    ]  # fmt: skip
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["CPU"]["jsonPath"] == ".status.summary.cpu"
    assert [field["jsonPath"] for field in version["selectableFields"]] == [
        ".spec.mode", ".spec.region", ".spec.tier"
    ]  # fmt: skip


def test_status_is_optional_everywhere_and_uses_wire_names() -> None:
    status = subcenter.SubCenterStatus.model_validate(
        {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Healthy",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 2,
                }
            ],
            "kubernetesVersion": "v1.36.3",
            "nodeCount": 3,
            "allocatable": {"cpu": "48", "memory": "192Gi", "pods": "330"},
            "allocated": {"cpu": "12", "memory": "24Gi", "pods": "60"},
            "summary": {"cpu": "12/48", "memory": "24Gi/192Gi"},
            "probeLatencySeconds": "0.012",
            "lastProbeTime": "2026-01-01T00:00:10Z",
            "lastSuccessfulProbeTime": "2026-01-01T00:00:10Z",
            "consecutiveFailures": 0,
            "credentialExpiresAt": "2027-01-01T00:00:00Z",
            "tenantCount": 1,
            "tenants": [
                {"name": "finance", "namespaces": [{"name": "finance-app", "phase": "Active"}]}
            ],
            "appsRemaining": 4,
            "retirable": False,
        }
    )

    assert status.summary.cpu == "12/48"
    assert status.tenants[0].namespaces[0].phase == "Active"
    assert status.apps_remaining == 4
    assert subcenter.SubCenterStatus().consecutive_failures == 0
    assert subcenter.SubCenterStatus().tenants == []


def test_status_has_every_field_of_the_api() -> None:
    status = node_at(crd_root(), "status")["properties"]

    assert set(status) == {
        "observedGeneration", "conditions", "kubernetesVersion", "nodeCount", "allocatable",
        "allocated", "summary", "probeLatencySeconds", "lastProbeTime",
        "lastSuccessfulProbeTime", "consecutiveFailures", "credentialExpiresAt", "tenantCount",
        "tenants", "appsRemaining", "retirable", "identity",
    }  # fmt: skip
    assert set(status["allocatable"]["properties"]) == {"cpu", "memory", "pods"}
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert status["tenants"]["x-kubernetes-list-map-keys"] == ["name"]


# CloudTenant placement: spec.placement.subCenter chooses a site; without it, the hub.


def tenant_with(placement: Any) -> dict[str, Any]:
    obj = tenant_cases.good_object()
    obj["spec"]["placement"] = placement
    return obj


def parse_tenant(obj: dict[str, Any]) -> cloudtenant.CloudTenantSpec:
    return cloudtenant.parse(obj["metadata"]["name"], obj["spec"])


def test_a_tenant_without_placement_lives_on_the_hub() -> None:
    assert parse_tenant(tenant_cases.good_object()).placement is None


def test_a_tenant_is_placed_on_a_subcenter_by_name() -> None:
    spec = parse_tenant(tenant_with({"subCenter": "feixi"}))

    assert spec.placement == cloudtenant.Placement(subCenter="feixi")
    assert spec.model_dump(by_alias=True, exclude_none=True)["placement"] == {"subCenter": "feixi"}


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ({"subCenter": "hub"}, "to keep the tenant on the hub (the central cluster), remove"),
        ({"subCenter": "Feixi"}, "placement.subCenter must be the name of a SubCenter"),
        ({"subCenter": "feixi.county"}, "placement.subCenter must be the name of a SubCenter"),
    ],
)
def test_bad_placements_are_refused_with_the_cel_message(
    placement: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_tenant(tenant_with(placement))
    rules = node_at(
        crdgen.crd(registry.CLOUDTENANT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        "spec.placement.subCenter",
    )[cel.VALIDATIONS_KEY]
    assert any(message in rule["message"] for rule in rules)


@pytest.mark.parametrize("placement", [{}, {"subCenter": ""}, {"subCenter": "f" * 64}])
def test_placement_needs_a_subcenter_name(placement: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        parse_tenant(tenant_with(placement))


def test_tenant_status_says_where_the_tenant_is() -> None:
    status = cloudtenant.CloudTenantStatus.model_validate(
        {"placement": {"cluster": "feixi", "message": "placed on SubCenter feixi"}}
    )

    assert status.placement == cloudtenant.PlacementStatus(
        cluster="feixi", message="placed on SubCenter feixi"
    )
    assert cloudtenant.CloudTenantStatus().placement is None
    assert cloudtenant.HUB_CLUSTER == subcenter.HUB == "hub"
