"""The CloudTenant models refuse what the CRD refuses, with the same messages."""

from __future__ import annotations

import re

import pydantic
import pytest
import tenant_cases

from govcloud.api.v1alpha1 import _base, cloudtenant


def parse(obj: tenant_cases.Object) -> cloudtenant.CloudTenantSpec:
    return cloudtenant.parse(obj["metadata"]["name"], obj["spec"])


def test_good_tenant_is_accepted_with_chinese_display_name() -> None:
    spec = parse(tenant_cases.good_object())

    assert spec.display_name == "合肥市财政局"
    assert spec.unit.tier is cloudtenant.Tier.CITY
    assert spec.contacts[0].name == "张伟"
    assert [namespace.name for namespace in spec.namespaces] == ["payroll", "data"]


def test_defaults_are_safe() -> None:
    spec = parse(tenant_cases.good_object())

    assert spec.deletion_policy is cloudtenant.DeletionPolicy.RETAIN
    assert spec.network.isolated is True
    assert spec.suspended is False
    assert spec.classified is False


def test_quantities_accept_integers_and_strings_and_keep_strings() -> None:
    spec = parse(tenant_cases.good_object())

    assert spec.quota["requests.cpu"] == "64"
    assert spec.quota["requests.memory"] == "128Gi"
    assert spec.limit_range is not None
    assert spec.limit_range.default["cpu"] == "500m"
    assert spec.limit_range.max["cpu"] == "8"


def test_wire_names_round_trip() -> None:
    spec = parse(tenant_cases.good_object())

    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)

    assert dumped["displayName"] == "合肥市财政局"
    assert dumped["admins"]["serviceAccounts"] == ["finance-payroll/deployer"]
    assert cloudtenant.CloudTenantSpec.model_validate(dumped) == spec


@pytest.mark.parametrize("case", tenant_cases.CEL_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_with_the_cel_message(case: tenant_cases.BadCase) -> None:
    with pytest.raises(ValueError, match=re.escape(case.message)):
        parse(case.object())


@pytest.mark.parametrize("case", tenant_cases.SCHEMA_CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_by_the_schema(case: tenant_cases.BadCase) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(case.message)):
        parse(case.object())


@pytest.mark.parametrize("value", [True, 1.5, "1.5.2", "", "Gi", "5 Gi", "1" * 65])
def test_malformed_quantities_are_refused(value: object) -> None:
    with pytest.raises(pydantic.ValidationError):
        cloudtenant.LimitRangeSpec.model_validate({"max": {"cpu": value}})


@pytest.mark.parametrize("value", ["0", "+1", ".5", "1.", "100m", "8Gi", "1e3", "2P", 0])
def test_kubernetes_quantities_are_accepted(value: object) -> None:
    limits = cloudtenant.LimitRangeSpec.model_validate({"max": {"cpu": value}})

    assert limits.max["cpu"] == str(value)


def test_the_derived_namespace_name_may_be_exactly_63_characters() -> None:
    obj = tenant_cases.good_object()
    obj["metadata"]["name"] = "a" * 40
    obj["spec"]["namespaces"] = [{"name": "b" * 22}]
    obj["spec"]["admins"].pop("serviceAccounts")  # they live in the other tenant's namespaces

    spec = parse(obj)

    assert len(cloudtenant.namespace_name("a" * 40, spec.namespaces[0].name)) == 63


def test_namespace_names_are_tenant_prefixed() -> None:
    assert cloudtenant.namespace_name("finance", "payroll") == "finance-payroll"


def test_label_keys_are_checked_like_kubernetes_does() -> None:
    assert _base.check_label_keys({"a.b/c": "x", "team": "y"})
    with pytest.raises(ValueError, match="label keys"):
        _base.check_label_keys({"a" * 254 + "/c": "x"})


def test_status_is_optional_everywhere_and_uses_wire_names() -> None:
    status = cloudtenant.CloudTenantStatus.model_validate(
        {
            "phase": "Active",
            "namespaceCount": 2,
            "usage": {"cpu": "2/64", "memory": "1Gi/128Gi"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Reconciled",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "observedGeneration": 3,
                }
            ],
        }
    )

    assert status.phase is cloudtenant.Phase.ACTIVE
    assert status.usage.cpu == "2/64"
    assert cloudtenant.CloudTenantStatus().namespace_count == 0
