"""Generated specs through the pure layers: a spec the models take never crashes a builder,
the quota split, plan pricing, the migration clock, rating or the migration transform."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import _strategies as gen
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from govcloud.api import quantity as grammar
from govcloud.api.v1alpha1 import cloudtenant, migrationplan, ratecard, resourceplan
from govcloud.billing import plans, rating
from govcloud.desired import meta, quantity, quotas
from govcloud.desired import tenant as desired_tenant
from govcloud.federation import placement
from govcloud.migration import machine, transform

# The soak knob of the generated-spec tests (examples per kind there); more here, it is cheap.
EXAMPLES = 8 * int(os.environ.get("GOVCLOUD_GEN_EXAMPLES", "15"))
PROPERTY = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None)
TENANT = "gen-t"
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def parsed_or_none(parse: Any, *args: Any) -> Any:
    """The parsed spec, or None when the models refuse it (as the API server would)."""
    try:
        return parse(*args)
    except ValueError:
        return None


def split_sums(allocation: quotas.Allocation) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for hard in allocation.hard.values():
        for resource, value in hard.items():
            sums[resource] = sums.get(resource, Decimal(0)) + quantity.parse(value)
    return sums


@PROPERTY
@given(gen.tenant_specs(TENANT))
def test_a_tenant_the_models_take_builds_and_splits_within_its_quota(document: gen.Spec) -> None:
    spec = parsed_or_none(cloudtenant.parse, TENANT, document)
    assume(spec is not None)
    names = desired_tenant.namespace_names(TENANT, spec)
    allocation = quotas.allocate(spec.quota, names, {}, suspended=spec.suspended)
    try:
        built = desired_tenant.build(
            TENANT, spec, platform_namespaces=["monitoring"], allocation=allocation
        )
    except meta.SpecError:
        return  # a spec the operator refuses with its own message (InvalidSpec)
    assert built.namespace_names == names
    for resource, total in split_sums(allocation).items():
        if resource in spec.quota and not spec.suspended:
            assert total <= quantity.parse(spec.quota[resource]), resource
    for quota in built.quotas:
        for resource, value in quota["spec"]["hard"].items():
            assert len(value) <= grammar.MAX_LENGTH
            amount = quantity.parse(value)
            if resource in ("pods", "services", "configmaps") or resource.startswith("count/"):
                assert amount == amount.to_integral_value(), (resource, value)
    placement.demand(spec.quota)


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(gen.QUOTA_KEYS), gen.quantities, min_size=1, max_size=4),
    st.lists(st.integers(0, 5000), min_size=1, max_size=4),
)
def test_a_split_never_exceeds_the_tenant_quota_whatever_is_used(
    tenant_quota: dict[str, str], usage_milli: list[int]
) -> None:
    spec = parsed_or_none(cloudtenant.CloudTenantSpec.model_validate, _minimal(tenant_quota))
    assume(spec is not None)
    names = [f"{TENANT}-n{index}" for index in range(len(usage_milli))]
    observed = {
        name: quotas.ObservedQuota(
            hard={resource: quantity.from_milli(used) for resource in spec.quota},
            used={resource: quantity.from_milli(used) for resource in spec.quota},
        )
        for name, used in zip(names, usage_milli, strict=True)
    }
    allocation = quotas.allocate(spec.quota, names, observed)
    for resource, total in split_sums(allocation).items():
        used = Decimal(sum(usage_milli)).scaleb(-3)
        limit = quantity.parse(spec.quota[resource])
        if used <= limit:
            assert total <= limit, resource
        assert resource in allocation.over_committed or used <= limit


def _minimal(quota: dict[str, str]) -> gen.Spec:
    return {
        "displayName": "单位",
        "unit": {"code": "u", "tier": "city"},
        "contacts": [{"name": "n", "email": "n@example.gov.cn"}],
        "securityLevel": 2,
        "namespaces": [{"name": "app"}],
        "quota": quota,
    }


@PROPERTY
@given(gen.resource_plan_specs("gen-t", 2027))
def test_a_plan_the_models_take_is_priced_without_error(document: gen.Spec) -> None:
    spec = parsed_or_none(resourceplan.parse, "gen-t-2027", document)
    assume(spec is not None)
    offerings = {"ecs.4c8g": {"requests.cpu": "4", "requests.memory": "8Gi"}}
    found = plans.ceiling(spec, offerings)
    for value in found.hard.values():
        assert quantity.parse(value) >= 0
    cap = plans.effective_quota({"requests.cpu": "8"}, found.hard, plan="p", starter={})
    assert cap.reason in ("WithinPlan", "CappedByPlan")


@PROPERTY
@given(gen.migration_plan_specs("legacy", "gen-t-app"), st.integers(-1000, 1000))
def test_a_migration_plan_the_models_take_has_a_deadline_verdict(
    document: gen.Spec, hours: int
) -> None:
    spec = parsed_or_none(migrationplan.parse, document)
    assume(spec is not None)
    assert spec.deadline.tzinfo is not None
    now = NOW + timedelta(hours=hours)
    for phase in migrationplan.Phase:
        verdict = machine.deadline(phase, spec.deadline, now, timedelta(hours=24))
        assert verdict.overdue_reason
        assert verdict.at_risk_reason
    machine.next_deadline_change(
        migrationplan.Phase.PENDING, spec.deadline, now, timedelta(hours=24)
    )
    assert len(spec.digest()) == migrationplan.DIGEST_LENGTH


@pytest.mark.parametrize(
    "text", ["2027-01-01 00:00:00Z", "2027-01-01T00:00:00", "2027-01-01T00:00Z", "2027-01-01"]
)
def test_a_time_the_api_server_refuses_is_refused(text: str) -> None:
    document = {
        "app": {"name": "a", "securityLevel": 2},
        "source": {"namespace": "legacy"},
        "targetNamespace": "gen-t-app",
        "deadline": text,
    }
    with pytest.raises(ValueError, match="times are RFC 3339"):
        migrationplan.parse(document)


def test_a_time_without_a_zone_given_in_python_is_utc() -> None:
    spec = migrationplan.MigrationPlanSpec.model_validate(
        {
            "app": {"name": "a", "securityLevel": 2},
            "source": {"namespace": "legacy"},
            "targetNamespace": "gen-t-app",
            "deadline": datetime(2027, 1, 1),
        }
    )
    assert spec.deadline == datetime(2027, 1, 1, tzinfo=UTC)
    assert machine.deadline(migrationplan.Phase.PENDING, spec.deadline, NOW, timedelta(1))


rates = st.builds(
    lambda resource, price, day: {"resource": resource, "price": price, "effectiveFrom": day},
    st.sampled_from(["requests.cpu", "requests.memory", "requests.nvidia.com/gpu"]),
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,6})?", fullmatch=True),
    st.dates(date(2025, 1, 1), date(2027, 12, 31)).map(date.isoformat),
)


@PROPERTY
@given(
    st.lists(
        rates,
        min_size=1,
        max_size=6,
        unique_by=lambda rate: (rate["resource"], rate["effectiveFrom"]),
    ),
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(1, 24 * 400),
)
def test_rating_splits_an_interval_into_contiguous_priced_segments(
    rate_list: list[gen.Spec], start: datetime, hours: int
) -> None:
    card = ratecard.RateCardSpec.model_validate({"rates": rate_list})
    table = rating.table(card, timezone(timedelta(hours=8)))
    end = start + timedelta(hours=hours)
    for resource in table.resources():
        segments = table.segments(resource, start, end)
        assert segments[0].start == start
        assert segments[-1].end == end
        for left, right in itertools.pairwise(segments):
            assert left.end == right.start
        for segment in segments:
            assert segment.price == table.price_at(resource, segment.start)


containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["app", "side"]), "image": st.just("registry.local/app:1")},
        optional={
            "resources": st.fixed_dictionaries(
                {},
                optional={
                    "requests": st.dictionaries(
                        st.sampled_from(["cpu", "memory"]), gen.grammar_quantities, max_size=2
                    )
                },
            )
        },
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def source_objects(draw: st.DrawFn) -> dict[str, Any]:
    """An object as a legacy namespace holds it: any supported kind, with server fields."""
    kind = draw(st.sampled_from([*migrationplan.SUPPORTED_KINDS, "Pod", "Event"]))
    metadata: dict[str, Any] = {
        "name": draw(gen.dns_labels),
        "namespace": "legacy",
        "uid": "0000-1111",
        "resourceVersion": "42",
        "labels": draw(gen.labels),
        "annotations": draw(
            st.dictionaries(
                st.sampled_from(["kubectl.kubernetes.io/last-applied-configuration", "note"]),
                st.just("x"),
            )
        ),
    }
    if draw(st.booleans()):
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": "u"}]
    body: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": metadata}
    pod = {"containers": draw(containers), "nodeName": "node-1"}
    template = {"metadata": {"labels": {"app": "a"}}, "spec": pod}
    if kind in ("Deployment", "StatefulSet"):
        body["spec"] = {"replicas": draw(st.integers(0, 5)), "template": template}
        if kind == "StatefulSet" and draw(st.booleans()):
            body["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    elif kind == "Job":
        body["spec"] = {"template": template}
    elif kind == "CronJob":
        body["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Service":
        body["spec"] = {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": []}
    elif kind == "Secret":
        body["type"] = draw(
            st.sampled_from(["Opaque", "kubernetes.io/service-account-token", "other"])
        )
    body["status"] = {"observed": True}
    return body


@PROPERTY
@given(source_objects(), st.frozensets(st.sampled_from(["StatefulSet/data", "PVC/x"])))
def test_the_transform_moves_or_skips_any_object_with_a_reason(
    source: dict[str, Any], empty: frozenset[str]
) -> None:
    plan = transform.PlanRef(uid="plan-uid", namespace="gen-t-app", name="move")
    decision = transform.decide(
        source, target_namespace="gen-t-app", plan=plan, empty_volumes=empty
    )
    assert decision.moves or decision.reason
    if decision.manifest is not None:
        moved = decision.manifest
        assert moved["metadata"]["namespace"] == "gen-t-app"
        assert "status" not in moved
        for field in ("uid", "resourceVersion", "ownerReferences"):
            assert field not in moved["metadata"]
        for amount in transform.demand(moved).values():
            assert amount >= 0


@pytest.mark.parametrize(
    "text", ["0.1n", "8Pi", "9223372036854775", "9223372036854776", "7Ei", "1e999", ".1E70"]
)
def test_amounts_beyond_the_bounds_are_refused_by_the_models(text: str) -> None:
    within = grammar.within_bounds(quantity.parse(text))
    if within:
        cloudtenant.CloudTenantSpec.model_validate(_minimal({"requests.cpu": text}))
    else:
        with pytest.raises(ValueError, match="quantities must be at most"):
            cloudtenant.CloudTenantSpec.model_validate(_minimal({"requests.cpu": text}))
