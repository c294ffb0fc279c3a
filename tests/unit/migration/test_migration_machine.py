"""The migration state machine: (phase, facts, now) -> step, and the deadline rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from govcloud.api.v1alpha1.migrationplan import Phase, RollbackPolicy, Stage
from govcloud.migration import machine
from govcloud.migration.machine import Action, Facts

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
READY = Facts(started=True, available=True, approved=frozenset({Stage.CUTOVER}))
FRESH = Facts()

CASES: list[tuple[str, Phase, Facts, Phase, Action, str]] = [
    # (case, phase, facts, next phase, action, reason)
    ("new plan copies", Phase.PENDING, FRESH, Phase.COPYING, Action.COPY, "Copying"),
    (
        "blocked plan waits and writes nothing",
        Phase.PENDING,
        Facts(blocker="source not granted"),
        Phase.PENDING,
        Action.NONE,
        "Blocked",
    ),
    (
        "classified app is ineligible",
        Phase.PENDING,
        Facts(ineligible="classified"),
        Phase.FAILED,
        Action.NONE,
        "Ineligible",
    ),
    (
        "name clash aborts before copying",
        Phase.PENDING,
        Facts(problems=("ConfigMap x exists",)),
        Phase.FAILED,
        Action.NONE,
        "AssessmentFailed",
    ),
    (
        "a failed assessment is re-checked each pass and heals",
        Phase.FAILED,
        FRESH,
        Phase.COPYING,
        Action.COPY,
        "Copying",
    ),
    (
        "before notBefore it waits",
        Phase.PENDING,
        Facts(not_before=NOW + timedelta(hours=1)),
        Phase.PENDING,
        Action.NONE,
        "WaitingForWindow",
    ),
    (
        "a gated copy waits for approval",
        Phase.PENDING,
        Facts(required=frozenset({Stage.COPY})),
        Phase.AWAITING_APPROVAL,
        Action.NONE,
        "AwaitingCopyApproval",
    ),
    (
        "an approved copy runs",
        Phase.AWAITING_APPROVAL,
        Facts(required=frozenset({Stage.COPY}), approved=frozenset({Stage.COPY})),
        Phase.COPYING,
        Action.COPY,
        "Copying",
    ),
    (
        "a copy interrupted by a restart copies again",
        Phase.COPYING,
        Facts(started=True),
        Phase.COPYING,
        Action.COPY,
        "Copying",
    ),
    (
        "verify waits for Available",
        Phase.VERIFYING,
        Facts(started=True, verify_started_at=NOW - timedelta(seconds=10)),
        Phase.VERIFYING,
        Action.NONE,
        "Verifying",
    ),
    (
        "verify timeout fails (Manual)",
        Phase.VERIFYING,
        Facts(
            started=True,
            verify_started_at=NOW - timedelta(minutes=10),
            verify_timeout=timedelta(minutes=5),
        ),
        Phase.FAILED,
        Action.NONE,
        "StageFailed",
    ),
    (
        "verify timeout rolls back (Automatic)",
        Phase.VERIFYING,
        Facts(
            started=True,
            verify_started_at=NOW - timedelta(minutes=10),
            verify_timeout=timedelta(minutes=5),
            policy=RollbackPolicy.AUTOMATIC,
        ),
        Phase.ROLLING_BACK,
        Action.ROLLBACK,
        "StageFailed",
    ),
    (
        "verified cutover waits for approval",
        Phase.VERIFYING,
        Facts(started=True, available=True),
        Phase.AWAITING_APPROVAL,
        Action.NONE,
        "AwaitingCutoverApproval",
    ),
    (
        "approved cutover runs",
        Phase.AWAITING_APPROVAL,
        READY,
        Phase.CUTTING_OVER,
        Action.CUTOVER,
        "CuttingOver",
    ),
    (
        "ungated cutover runs straight after verify",
        Phase.VERIFYING,
        Facts(started=True, available=True, required=frozenset()),
        Phase.CUTTING_OVER,
        Action.CUTOVER,
        "CuttingOver",
    ),
    (
        "cutover never scales the source down when the target is not Available",
        Phase.AWAITING_APPROVAL,
        replace(READY, available=False),
        Phase.FAILED,
        Action.NONE,
        "StageFailed",
    ),
    (
        "a cutover interrupted by a restart runs again",
        Phase.CUTTING_OVER,
        READY,
        Phase.CUTTING_OVER,
        Action.CUTOVER,
        "CuttingOver",
    ),
    (
        "completed stays completed",
        Phase.COMPLETED,
        READY,
        Phase.COMPLETED,
        Action.NONE,
        "Completed",
    ),
    (
        "a Completed plan is never rolled back: the target may hold new data",
        Phase.COMPLETED,
        replace(READY, rollback_requested=True),
        Phase.COMPLETED,
        Action.NONE,
        "RollbackRefused",
    ),
    (
        "rollback is one field away before completion",
        Phase.AWAITING_APPROVAL,
        replace(READY, rollback_requested=True),
        Phase.ROLLING_BACK,
        Action.ROLLBACK,
        "RollingBack",
    ),
    (
        "a stale cutover approval does not count",
        Phase.VERIFYING,
        replace(READY, approved=frozenset(), stale=frozenset({Stage.CUTOVER})),
        Phase.AWAITING_APPROVAL,
        Action.NONE,
        "AwaitingCutoverApproval",
    ),
    (
        "a stale copy approval does not count",
        Phase.PENDING,
        Facts(required=frozenset({Stage.COPY}), stale=frozenset({Stage.COPY})),
        Phase.AWAITING_APPROVAL,
        Action.NONE,
        "AwaitingCopyApproval",
    ),
    (
        "a failed stage waits for a person (Manual)",
        Phase.FAILED,
        Facts(started=True),
        Phase.FAILED,
        Action.NONE,
        "Failed",
    ),
    (
        "rolling back continues until done",
        Phase.ROLLING_BACK,
        Facts(started=True),
        Phase.ROLLING_BACK,
        Action.ROLLBACK,
        "RollingBack",
    ),
    (
        "a blocked plan rolls back to nothing at once",
        Phase.PENDING,
        Facts(blocker="x", rollback_requested=True),
        Phase.ROLLED_BACK,
        Action.NONE,
        "NothingToRollBack",
    ),
    (
        "rolled back is final",
        Phase.ROLLED_BACK,
        Facts(rollback_requested=True),
        Phase.ROLLED_BACK,
        Action.NONE,
        "RolledBack",
    ),
]


@pytest.mark.parametrize(
    ("case", "phase", "facts", "wanted", "action", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_decide(
    case: str, phase: Phase, facts: Facts, wanted: Phase, action: Action, reason: str
) -> None:
    step = machine.decide(phase, facts, NOW)

    assert (step.phase, step.action, step.reason) == (wanted, action, reason), case


@pytest.mark.parametrize("phase", [phase for phase in Phase if phase is not Phase.CUTTING_OVER])
@pytest.mark.parametrize("available", [True, False])
def test_only_cutover_scales_the_source_and_only_when_the_target_is_available(
    phase: Phase, available: bool
) -> None:
    facts = replace(READY, available=available)

    step = machine.decide(phase, facts, NOW)

    if step.action is Action.CUTOVER:
        assert available


@pytest.mark.parametrize("policy", list(RollbackPolicy))
@pytest.mark.parametrize("available", [True, False])
@pytest.mark.parametrize("blocker", [None, "the source is gone"])
def test_nothing_rolls_back_a_completed_plan(
    policy: RollbackPolicy, available: bool, blocker: str | None
) -> None:
    facts = replace(
        READY, rollback_requested=True, policy=policy, available=available, blocker=blocker
    )

    step = machine.decide(Phase.COMPLETED, facts, NOW)

    assert (step.phase, step.action) == (Phase.COMPLETED, Action.NONE)
    assert "never rolled back" in step.message


def test_a_stale_approval_says_why_the_stage_still_waits() -> None:
    facts = replace(READY, approved=frozenset(), stale=frozenset({Stage.CUTOVER}))

    step = machine.decide(Phase.VERIFYING, facts, NOW)

    assert "given for another version of the plan" in step.message
    assert "approve status.digest again" in step.message


@pytest.mark.parametrize(
    ("action", "phase"),
    [
        (Action.COPY, Phase.VERIFYING),
        (Action.CUTOVER, Phase.COMPLETED),
        (Action.ROLLBACK, Phase.ROLLED_BACK),
    ],
)
def test_succeeded(action: Action, phase: Phase) -> None:
    assert machine.succeeded(machine.Step(Phase.COPYING, action)) is phase


DUE = NOW + timedelta(days=30)
WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("case", "phase", "now", "completed_at", "blocked", "at_risk", "overdue", "reason"),
    [
        ("on track", Phase.COPYING, NOW, None, False, False, False, "OnTrack"),
        (
            "near the deadline",
            Phase.VERIFYING,
            DUE - timedelta(days=2),
            None,
            False,
            True,
            False,
            "DeadlineNear",
        ),
        ("failed plans are stalled", Phase.FAILED, NOW, None, False, True, False, "Stalled"),
        ("blocked plans are stalled", Phase.PENDING, NOW, None, True, True, False, "Stalled"),
        (
            "past the deadline",
            Phase.VERIFYING,
            DUE + timedelta(hours=1),
            None,
            False,
            False,
            True,
            "Overdue",
        ),
        (
            "completed on time",
            Phase.COMPLETED,
            DUE + timedelta(days=9),
            DUE - timedelta(days=1),
            False,
            False,
            False,
            "Completed",
        ),
    ],
)
def test_deadline_rule(
    case: str,
    phase: Phase,
    now: datetime,
    completed_at: datetime | None,
    blocked: bool,
    at_risk: bool,
    overdue: bool,
    reason: str,
) -> None:
    verdict = machine.deadline(phase, DUE, now, WEEK, completed_at, blocked=blocked)

    assert (verdict.at_risk, verdict.overdue, verdict.at_risk_reason) == (at_risk, overdue, reason)


def test_completed_late_is_not_on_time() -> None:
    verdict = machine.deadline(Phase.COMPLETED, DUE, DUE + WEEK, WEEK, DUE + timedelta(days=1))

    assert verdict.overdue_reason == "CompletedLate"
    assert not verdict.overdue


def test_progress_by_phase() -> None:
    assert machine.progress(Phase.COMPLETED, True, 0) == 100
    assert machine.progress(Phase.AWAITING_APPROVAL, True, 50) == 75
    assert machine.progress(Phase.FAILED, True, 50) == 50


@pytest.mark.parametrize(
    ("case", "phase", "now", "expected"),
    [
        ("long before: the at-risk window opens next", Phase.PENDING, DUE - 2 * WEEK, DUE - WEEK),
        ("inside the window: the deadline is next", Phase.VERIFYING, DUE - timedelta(days=1), DUE),
        ("after the deadline nothing changes any more", Phase.FAILED, DUE + timedelta(1), None),
        ("a completed plan never changes its verdict", Phase.COMPLETED, DUE - 2 * WEEK, None),
    ],
)
def test_next_deadline_change_is_when_the_deadline_rule_next_answers_differently(
    case: str, phase: Phase, now: datetime, expected: datetime | None
) -> None:
    moment = machine.next_deadline_change(phase, DUE, now, WEEK)

    assert moment == expected, case
    if moment is not None:  # the verdict just before and just after that moment differ
        before = machine.deadline(phase, DUE, moment - timedelta(seconds=1), WEEK)
        after = machine.deadline(phase, DUE, moment + timedelta(seconds=1), WEEK)
        assert (before.at_risk, before.overdue) != (after.at_risk, after.overdue), case
