"""RateCard model: what the CRD refuses, the model refuses with the same message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from govcloud.api import crdgen, registry
from govcloud.api.v1alpha1 import ratecard

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "billing" / "ratecard.yaml"


def good() -> dict[str, Any]:
    return {
        "rates": [{"resource": "requests.cpu", "price": "0.12", "effectiveFrom": "2027-01-01"}],
        "offerings": [{"name": "ecs.4c8g", "resources": {"requests.cpu": "4"}}],
    }


def test_the_example_rate_card_parses() -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    spec = ratecard.parse(manifest["metadata"]["name"], manifest["spec"])
    assert spec.currency == "CNY"
    assert {offering.name for offering in spec.offerings} >= {"ecs.4c8g", "disk.ssd.100g"}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            {"rates": [{"resource": "requests.cpu", "price": "-1", "effectiveFrom": "2027-01-01"}]},
            ratecard.PRICE_FORMAT,
        ),
        (
            {"rates": [{"resource": "cpu cores", "price": "1", "effectiveFrom": "2027-01-01"}]},
            ratecard.RESOURCE_NAME,
        ),
        ({"currency": "USD"}, ratecard.CURRENCY_CNY),
        ({"tierMultipliers": {"county": "-0.5"}}, ratecard.MULTIPLIER_FORMAT),
        (
            {"offerings": [{"name": "ECS 4C", "resources": {"requests.cpu": "4"}}]},
            ratecard.OFFERING_NAME,
        ),
        ({"offerings": [{"name": "ecs.x", "resources": {}}]}, ratecard.OFFERING_RESOURCES),
        (
            {
                "rates": [
                    {"resource": "requests.cpu", "price": "1", "effectiveFrom": "2027-01-01"},
                    {"resource": "requests.cpu", "price": "2", "effectiveFrom": "2027-01-01"},
                ]
            },
            ratecard.RATES_UNIQUE,
        ),
    ],
)
def test_bad_rate_cards_are_refused_with_the_crd_message(change: dict[str, Any], rule: Any) -> None:
    with pytest.raises(pydantic.ValidationError, match=rule.message[:40].replace("(", r"\(")):
        ratecard.parse("default", {**good(), **change})


def test_only_one_rate_card_named_default() -> None:
    with pytest.raises(ValueError, match="one object named default"):
        ratecard.parse("prices-2028", good())
    schema = crdgen.crd(registry.RATECARD)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["x-kubernetes-validations"][0]["optionalOldSelf"] is True
