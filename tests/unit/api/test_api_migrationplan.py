"""MigrationPlan API: safe defaults; bad input refused with the CEL message."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from govcloud.api import cel, crdgen, registry
from govcloud.api.v1alpha1 import migrationplan


def good(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "app": {"name": "不动产登记系统", "securityLevel": 2},
        "source": {"namespace": "legacy-permits", "selector": {"app": "permits"}},
        "targetNamespace": "transport-apps",
        "deadline": "2027-06-30T00:00:00Z",
    }
    spec.update(overrides)
    return spec


def test_good_plan_gets_safe_defaults() -> None:
    spec = migrationplan.parse(good())

    assert spec.approvals_required == [migrationplan.Stage.CUTOVER]
    assert spec.rollback_policy is migrationplan.RollbackPolicy.MANUAL
    assert spec.data_migration is None
    assert spec.empty_volumes() == frozenset()
    assert not spec.rollback
    assert spec.source.kinds == list(migrationplan.DEFAULT_KINDS)
    assert spec.approved() == frozenset()


BAD: list[tuple[str, dict[str, Any], cel.Rule]] = [
    (
        "unknown kind",
        good(source={"namespace": "legacy", "kinds": ["Deployment", "Pod"]}),
        migrationplan.KINDS_KNOWN,
    ),
    (
        "deadline before notBefore",
        good(notBefore="2027-07-01T00:00:00Z"),
        migrationplan.DEADLINE_AFTER_NOT_BEFORE,
    ),
    (
        "source is target",
        good(targetNamespace="legacy-permits"),
        migrationplan.SOURCE_IS_NOT_TARGET,
    ),
    ("level 6", good(app={"name": "x", "securityLevel": 6}), migrationplan.LEVEL_RANGE),
    ("unknown policy", good(rollbackPolicy="Sometimes"), migrationplan.POLICY_KNOWN),
    ("unknown gate", good(approvalsRequired=["deploy"]), migrationplan.STAGE_KNOWN),
    ("verify too short", good(verifyTimeoutSeconds=1), migrationplan.VERIFY_RANGE),
    (
        "data volume of an unknown kind",
        good(dataMigration={"volumes": ["Deployment/web"], "step": "restore"}),
        migrationplan.VOLUME_REFS_FORMAT,
    ),
    (
        "data volume named twice",
        good(dataMigration={"volumes": ["StatefulSet/db", "StatefulSet/db"], "step": "restore"}),
        migrationplan.VOLUME_REFS_UNIQUE,
    ),
    ("bad target name", good(targetNamespace="Transport_Apps"), migrationplan.NAMESPACE_FORMAT),
]


@pytest.mark.parametrize(("case", "spec", "rule"), BAD, ids=[case for case, *_ in BAD])
def test_bad_input_is_refused_with_the_cel_message(
    case: str, spec: dict[str, Any], rule: cel.Rule
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        migrationplan.parse(spec)

    assert rule.message in str(caught.value), case


@pytest.mark.parametrize(("case", "spec", "rule"), BAD, ids=[case for case, *_ in BAD])
def test_each_bad_input_has_its_rule_in_the_crd(
    case: str, spec: dict[str, Any], rule: cel.Rule
) -> None:
    text = crdgen.render(registry.MIGRATIONPLAN)

    assert rule.rule.split("(")[0][:20] in text, case


def test_crd_is_namespaced_with_a_short_name_and_the_issue_columns() -> None:
    crd = crdgen.crd(registry.MIGRATIONPLAN)
    columns = [column["name"] for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]]

    assert crd["spec"]["scope"] == "Namespaced"
    assert "mig" in crd["spec"]["names"]["shortNames"]
    assert columns[:5] == ["App", "Phase", "Progress", "Deadline", "Age"]


def test_status_round_trips_with_wire_names() -> None:
    status = migrationplan.MigrationPlanStatus.model_validate(
        {
            "phase": "AwaitingApproval",
            "progress": 75,
            "stages": [{"name": "copy", "state": "Succeeded", "startedAt": "2027-01-01T00:00:00Z"}],
            "inventory": [{"kind": "Secret", "name": "db", "action": "Move", "moved": True}],
            "summary": {"move": 1, "skip": 0, "moved": 1},
            "cutoverAt": "2027-01-02T00:00:00Z",
        }
    )

    assert status.model_dump(by_alias=True, mode="json", exclude_defaults=True)["cutoverAt"]


def test_source_and_target_freeze_once_copying_began_is_a_root_transition_rule() -> None:
    crd = crdgen.crd(registry.MIGRATIONPLAN)
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"][cel.VALIDATIONS_KEY]

    assert rules[0] == migrationplan.SOURCE_TARGET_FROZEN.to_schema()
    rule = rules[0]["rule"]
    # a transition rule: oldSelf is not optional, so a create is never checked by it ...
    assert "optionalOldSelf" not in rules[0]
    # ... it sees the stored status (only the root can), and compares exactly the two fields
    assert "!has(oldSelf.status.startedAt)" in rule
    assert "self.spec.source == oldSelf.spec.source" in rule
    assert "self.spec.targetNamespace == oldSelf.spec.targetNamespace" in rule
    assert "spec.rollback: true" in rules[0]["message"]
    assert rules[0]["fieldPath"] == ".spec.source"


def test_rolling_back_a_completed_plan_is_refused_by_a_root_transition_rule() -> None:
    crd = crdgen.crd(registry.MIGRATIONPLAN)
    rules = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"][cel.VALIDATIONS_KEY]

    assert rules[1] == migrationplan.NO_ROLLBACK_AFTER_COMPLETION.to_schema()
    assert "optionalOldSelf" not in rules[1]
    assert "oldSelf.status.phase != 'Completed'" in rules[1]["rule"]
    # a plan already rolling back when it was stored may keep its field
    assert "oldSelf.spec.rollback" in rules[1]["rule"]
    assert rules[1]["fieldPath"] == ".spec.rollback"


def test_an_approval_counts_only_for_the_digest_it_names() -> None:
    spec = migrationplan.parse(good())
    digest = spec.digest()
    approved = migrationplan.parse(
        good(approvals=[{"stage": "cutover", "by": "zhou", "digest": digest}])
    )
    unbound = migrationplan.parse(good(approvals=[{"stage": "cutover", "by": "zhou"}]))

    assert approved.approved() == frozenset({migrationplan.Stage.CUTOVER})
    assert unbound.approved() == frozenset()
    assert unbound.stale() == frozenset({migrationplan.Stage.CUTOVER})


CHANGES = [
    ("source namespace", {"source": {"namespace": "other-legacy"}}),
    ("source selector", {"source": {"namespace": "legacy-permits", "selector": {"app": "x"}}}),
    ("target", {"targetNamespace": "transport-web"}),
    ("app", {"app": {"name": "不动产登记系统", "securityLevel": 3}}),
    ("data step", {"dataMigration": {"volumes": ["StatefulSet/db"], "step": "none"}}),
]


@pytest.mark.parametrize(("case", "change"), CHANGES, ids=[case for case, _ in CHANGES])
def test_changing_what_moves_makes_an_approval_stale(case: str, change: dict[str, Any]) -> None:
    digest = migrationplan.parse(good()).digest()
    approval = {"approvals": [{"stage": "cutover", "by": "zhou", "digest": digest}]}

    changed = migrationplan.parse(good(**approval, **change))

    assert changed.digest() != digest, case
    assert changed.approved() == frozenset()
    assert changed.stale() == frozenset({migrationplan.Stage.CUTOVER})


def test_changes_that_move_nothing_keep_the_approval() -> None:
    digest = migrationplan.parse(good()).digest()

    later = migrationplan.parse(
        good(
            deadline="2027-12-31T00:00:00Z",
            verifyTimeoutSeconds=600,
            rollback=True,
            # explicit defaults are the same plan
            source={
                "namespace": "legacy-permits",
                "selector": {"app": "permits"},
                "kinds": list(migrationplan.DEFAULT_KINDS),
            },
        )
    )

    assert later.digest() == digest
