"""Names and labels of managed objects are predictable and always carry ownership."""

from __future__ import annotations

import pytest

from govcloud import constants
from govcloud.desired import meta


def test_namespace_name_is_tenant_dash_name() -> None:
    assert meta.namespace_name("jtj", "prod") == "jtj-prod"


@pytest.mark.parametrize(("tenant", "short"), [("a" * 40, "b" * 23), ("jtj", "Prod"), ("jtj", "")])
def test_namespace_name_refuses_names_that_are_not_dns_labels(tenant: str, short: str) -> None:
    with pytest.raises(meta.SpecError, match="not a DNS label"):
        meta.namespace_name(tenant, short)


def test_namespace_name_accepts_exactly_63_characters() -> None:
    assert len(meta.namespace_name("a" * 40, "b" * 22)) == 63


def test_common_labels_name_the_operator_and_the_tenant() -> None:
    assert meta.common_labels("jtj") == {
        "app.kubernetes.io/managed-by": "govcloud-operator",
        "govcloud.io/tenant": "jtj",
    }


def test_selector_matches_the_common_labels() -> None:
    assert meta.selector("jtj") == (
        "app.kubernetes.io/managed-by=govcloud-operator,govcloud.io/tenant=jtj"
    )


def test_object_meta_common_labels_win_over_extra_labels() -> None:
    metadata = meta.object_meta(
        "x", "jtj-prod", "jtj", {constants.LABEL_TENANT: "other", "team": "web"}
    )
    assert metadata == {
        "name": "x",
        "namespace": "jtj-prod",
        "labels": {"team": "web", **meta.common_labels("jtj")},
    }


def test_object_meta_cluster_scoped_has_no_namespace_and_keeps_annotations() -> None:
    metadata = meta.object_meta("x", None, "jtj", annotations={"a": "b"})
    assert "namespace" not in metadata
    assert metadata["annotations"] == {"a": "b"}
