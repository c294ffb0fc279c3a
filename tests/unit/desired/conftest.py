"""Shared fixtures for the desired-state unit tests: a CloudTenant spec factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govcloud.api.v1alpha1 import cloudtenant

SpecFactory = Callable[..., cloudtenant.CloudTenantSpec]


def spec_document(**overrides: Any) -> dict[str, Any]:
    """A valid CloudTenant spec in wire form (camelCase), with top-level overrides."""
    document: dict[str, Any] = {
        "displayName": "市交通运输局",
        "unit": {"code": "jtj", "tier": "city"},
        "contacts": [{"name": "张三", "email": "zhang@example.gov.cn"}],
        "admins": {"users": ["alice"], "groups": ["jtj-admins"]},
        "editors": {"users": ["bob"], "serviceAccounts": ["ci/deployer"]},
        "viewers": {"groups": ["auditors"]},
        "securityLevel": 3,
        "namespaces": [{"name": "prod"}, {"name": "dev", "labels": {"team": "web"}}],
        "quota": {"requests.cpu": "10", "requests.memory": "20Gi", "pods": "50"},
    }
    document.update(overrides)
    return document


@pytest.fixture
def make_spec() -> SpecFactory:
    def factory(**overrides: Any) -> cloudtenant.CloudTenantSpec:
        return cloudtenant.CloudTenantSpec.model_validate(spec_document(**overrides))

    return factory
