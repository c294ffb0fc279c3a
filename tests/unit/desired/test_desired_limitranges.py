"""The govcloud-defaults LimitRange mirrors spec.limitRange and is omitted when empty."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import limitranges

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]


@pytest.mark.parametrize("limit_range", [None, {}, {"default": {}, "max": {}}])
def test_no_limits_means_no_limit_range(make_spec: SpecFactory, limit_range: Any) -> None:
    spec = make_spec(limitRange=limit_range)
    assert limitranges.build("jtj", "jtj-prod", spec.limit_range) is None


def test_limit_range_has_one_container_item_with_the_set_maps(make_spec: SpecFactory) -> None:
    spec = make_spec(
        limitRange={"default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m", "memory": "1Gi"}}
    )
    assert limitranges.build("jtj", "jtj-prod", spec.limit_range) == {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {
            "name": "govcloud-defaults",
            "namespace": "jtj-prod",
            "labels": {
                "app.kubernetes.io/managed-by": "govcloud-operator",
                "govcloud.io/tenant": "jtj",
            },
        },
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m"},
                    "defaultRequest": {"cpu": "100m", "memory": "1Gi"},
                }
            ]
        },
    }
