"""Quota keys and quantities: what the CRD takes is exactly what the API server takes."""

from __future__ import annotations

import re

import pytest

from govcloud.api import quantity as grammar
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import quantity

TAKEN = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "services.loadbalancers",
    "services.nodeports",
    "persistentvolumeclaims",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
    "hugepages-2Mi",
    "requests.hugepages-1Gi",
    "count/deployments.apps",
    "count/pods",
    "requests.nvidia.com/gpu",
    "gold.storageclass.storage.k8s.io/requests.storage",
    "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
    "gpu.deviceclass.resource.k8s.io/devices",
]
# Each is refused by the API server's ValidateResourceQuotaResourceName (or counts nothing).
REFUSED = [
    "requests.memroy",
    "limits.storage",
    "requests.pods",
    "storage",
    "cpus",
    "nvidia.com/gpu",
    "limits.nvidia.com/gpu",
    "a..b.storageclass.storage.k8s.io/requests.storage",
    "x" * 230 + ".storageclass.storage.k8s.io/requests.storage",
    "count/" + "d" * 64,
    "requests.example.com/" + "n" * 64,
]


@pytest.mark.parametrize("key", TAKEN)
def test_quota_names_the_api_server_takes_are_taken(key: str) -> None:
    assert cloudtenant.is_quota_name(key)


@pytest.mark.parametrize("key", REFUSED)
def test_quota_names_the_api_server_refuses_are_refused(key: str) -> None:
    assert not cloudtenant.is_quota_name(key)


@pytest.mark.parametrize("text", ["1e1000", "1e-1000", "4 cpu", "-1", "1.5.2", "Gi", "1E1234"])
def test_the_crd_pattern_refuses_what_the_parser_refuses(text: str) -> None:
    assert not re.match(grammar.PATTERN, text)
    if not text.startswith("-"):
        with pytest.raises(quantity.QuantityError):
            quantity.parse(text)


def test_both_bound_the_length_alike() -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse("1" * (grammar.MAX_LENGTH + 1))


@pytest.mark.parametrize(
    "text", ["1e999", "1e-9", "500m", "8Gi", ".5", "1.", "+3", "1e3", "2E2", "64"]
)
def test_every_quantity_the_crd_takes_parses(text: str) -> None:
    assert re.match(grammar.PATTERN, text)
    assert quantity.parse(text) >= 0


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"default": {"foo": "1"}}, "limitRange keys must be cpu, memory or ephemeral-storage"),
        ({"max": {"requests.cpu": "1"}}, "limitRange keys must be cpu, memory or ephemeral"),
        ({"default": {"cpu": "2"}, "max": {"cpu": "1"}}, "default must not exceed limitRange.max"),
        (
            {"default": {"memory": "1Gi"}, "defaultRequest": {"memory": "2Gi"}},
            "defaultRequest must not exceed limitRange.default",
        ),
        (
            {"defaultRequest": {"cpu": "1500m"}, "max": {"cpu": "1"}},
            "defaultRequest must not exceed limitRange.max",
        ),
    ],
)
def test_a_limit_range_the_api_server_would_refuse_is_refused(
    limits: dict[str, dict[str, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cloudtenant.LimitRangeSpec.model_validate(limits)


def test_equal_limits_and_unrelated_keys_are_taken() -> None:
    spec = cloudtenant.LimitRangeSpec.model_validate(
        {
            "default": {"cpu": "1", "memory": "1Gi"},
            "defaultRequest": {"cpu": "1000m", "ephemeral-storage": "1Gi"},
            "max": {"memory": "1024Mi"},
        }
    )
    assert spec.max == {"memory": "1024Mi"}
