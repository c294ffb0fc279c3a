"""UsageReport model: named <tenant>-<YYYY-MM>; a closed report's status never changes."""

from __future__ import annotations

import pydantic
import pytest

from govcloud.api import crdgen, registry
from govcloud.api.v1alpha1 import usagereport


def test_a_report_is_named_after_tenant_and_period() -> None:
    spec = usagereport.parse("jtj-2027-01", {"tenant": "jtj", "period": "2027-01"})
    assert spec.period == "2027-01"
    with pytest.raises(ValueError, match="<tenant>-<YYYY-MM>"):
        usagereport.parse("jtj-jan", {"tenant": "jtj", "period": "2027-01"})


@pytest.mark.parametrize("period", ["2027-13", "2027-1", "27-01", "2027/01"])
def test_periods_are_calendar_months(period: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="YYYY-MM"):
        usagereport.UsageReportSpec.model_validate({"tenant": "jtj", "period": period})


def test_the_status_schema_makes_a_closed_report_final() -> None:
    schema = crdgen.crd(registry.USAGEREPORT)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    status = schema["properties"]["status"]
    assert status["x-kubernetes-validations"] == [
        {
            "rule": "!has(oldSelf.closed) || !oldSelf.closed || self == oldSelf",
            "message": (
                "a closed UsageReport never changes: it is the statement of a finished period"
            ),
        }
    ]
    assert schema["properties"]["spec"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
