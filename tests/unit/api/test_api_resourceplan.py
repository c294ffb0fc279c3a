"""ResourcePlan model: one per tenant and year, lines of offerings or resources, decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from govcloud.api import crdgen, registry
from govcloud.api.v1alpha1 import resourceplan

PLANS = Path(__file__).resolve().parents[3] / "examples" / "billing" / "plans"


def good(**change: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tenant": "jtj",
        "year": 2027,
        "lines": [{"offering": "ecs.4c8g", "count": 2, "reason": "扩容"}],
    }
    spec.update(change)
    return spec


@pytest.mark.parametrize("path", sorted(PLANS.glob("*.yaml")), ids=lambda path: path.stem)
def test_every_example_plan_parses(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    spec = resourceplan.parse(manifest["metadata"]["name"], manifest["spec"])
    assert spec.decision is None


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        (good(lines=[]), resourceplan.LINES_REQUIRED),
        (good(year=1999), resourceplan.YEAR_RANGE),
        (good(lines=[{"reason": "x"}]), resourceplan.LINE_ONE_OF),
        (
            good(lines=[{"offering": "a.b", "resources": {"requests.cpu": "1"}, "reason": "x"}]),
            resourceplan.LINE_ONE_OF,
        ),
        (good(lines=[{"offering": "a.b", "count": 0, "reason": "x"}]), resourceplan.COUNT_RANGE),
        (
            good(decision={"state": "Pending", "by": "x", "reason": "x"}),
            resourceplan.DECISION_STATE,
        ),
    ],
)
def test_bad_plans_are_refused_with_the_crd_message(spec: dict[str, Any], rule: Any) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        resourceplan.parse("jtj-2027", spec)
    assert rule.message in str(refused.value)


def test_negative_quantities_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="must not be negative"):
        resourceplan.parse(
            "jtj-2027", good(lines=[{"resources": {"requests.cpu": "-1"}, "reason": "x"}])
        )


def test_the_name_is_tenant_dash_year() -> None:
    with pytest.raises(ValueError, match="named <tenant>-<year>"):
        resourceplan.parse("jtj-2028", good())
    rule = resourceplan.NAME_IS_TENANT_YEAR
    assert rule.optional_old_self
    schema = crdgen.crd(registry.RESOURCEPLAN)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["x-kubernetes-validations"][0]["rule"] == rule.rule
