"""The migration state machine: (phase, observed facts, now) -> the next step. Pure.

The reconciler gathers `Facts` (what the source, the target and the plan's status say), asks
`decide` what to do, carries out the step's action (each idempotent), and writes the phase
that `succeeded` or `failed` names. The state lives in the plan's status, so a restarted
operator resumes exactly where the last written phase says.

The safety rule behind every transition: the source is scaled down only in CuttingOver, and
only after the target was seen Available in the same pass; a rollback restores the source
before it deletes anything in the target, and a Completed plan is never rolled back (its app
runs in the target and may have written data there). So no path leaves the app at zero on
both sides.

Approvals count only for the plan as it is now (`approved`); one given for an earlier app,
source, target or dataMigration is `stale` and the stage waits for a new one.

Deadlines (documented in docs/migration.md):
- Overdue: the deadline has passed and the plan is not Completed.
- DeadlineAtRisk: not Completed, not yet Overdue, and either less than `at_risk` (the
  GOVCLOUD_MIGRATION_AT_RISK_HOURS setting) is left before the deadline, or the plan is
  stuck (Failed, RolledBack, or Pending on a blocker) and cannot move without a person.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from govcloud.api.v1alpha1.migrationplan import Phase, RollbackPolicy, Stage


class Action(enum.StrEnum):
    """What the reconciler does in this pass."""

    NONE = "None"
    COPY = "Copy"
    CUTOVER = "CutOver"
    ROLLBACK = "RollBack"


@dataclass(frozen=True)
class Facts:
    """Everything the decision needs, gathered before it (nothing here is fetched later)."""

    blocker: str | None = None  # authorization or bad input: nothing may be read or written
    ineligible: str | None = None
    problems: tuple[str, ...] = ()  # assessment: name clashes, quota
    started: bool = False  # copying has begun: the target may hold objects of the plan
    available: bool = False  # every copied workload in the target is Available
    verify_started_at: datetime | None = None
    verify_timeout: timedelta = timedelta(minutes=5)
    not_before: datetime | None = None
    required: frozenset[Stage] = frozenset({Stage.CUTOVER})
    approved: frozenset[Stage] = frozenset()
    stale: frozenset[Stage] = frozenset()  # approved for an earlier version of the plan
    rollback_requested: bool = False
    policy: RollbackPolicy = RollbackPolicy.MANUAL


@dataclass(frozen=True)
class Step:
    """The phase to show while acting, the action, and why (a condition reason + message)."""

    phase: Phase
    action: Action = Action.NONE
    reason: str = ""
    message: str = ""
    stage: str = ""  # the stage the step belongs to, for the timed list of stages

    @property
    def busy(self) -> bool:
        """Whether the plan is waiting on the cluster (poll soon) rather than on a person."""
        return self.phase in BUSY


BUSY = frozenset({Phase.COPYING, Phase.VERIFYING, Phase.CUTTING_OVER, Phase.ROLLING_BACK})
TERMINAL = frozenset({Phase.COMPLETED, Phase.ROLLED_BACK})


def decide(phase: Phase, facts: Facts, now: datetime) -> Step:
    """The next step from the current phase and what was observed."""
    if phase is Phase.ROLLED_BACK:
        return Step(Phase.ROLLED_BACK, reason="RolledBack", message="the migration was rolled back")
    if phase is Phase.COMPLETED:
        return _completed(facts)
    if facts.rollback_requested and not facts.started and facts.blocker is not None:
        return Step(
            Phase.ROLLED_BACK,
            reason="NothingToRollBack",
            message="rolled back before anything was copied; nothing was changed",
        )
    if facts.rollback_requested or phase is Phase.ROLLING_BACK:
        return Step(
            Phase.ROLLING_BACK,
            Action.ROLLBACK,
            "RollingBack",
            "restoring the source's replica counts, then deleting what the plan created",
            stage="rollback",
        )
    if not facts.started:
        return _before_copy(facts, now)
    return _after_copy(phase, facts, now)


def _completed(facts: Facts) -> Step:
    if facts.rollback_requested:  # the API server refuses it; a plan stored before may ask
        return Step(
            Phase.COMPLETED,
            reason="RollbackRefused",
            message=(
                "the app runs in the target; a Completed plan is never rolled back, because the"
                " target may hold data written since the cutover"
            ),
        )
    return Step(Phase.COMPLETED, reason="Completed", message="the app runs in the target")


def _after_copy(phase: Phase, facts: Facts, now: datetime) -> Step:
    if phase is Phase.FAILED:
        return Step(
            Phase.FAILED,
            reason="Failed",
            message="a stage failed; set spec.rollback: true to roll back",
        )
    if phase in (Phase.PENDING, Phase.ASSESSING, Phase.COPYING):
        # A pass that died mid-copy (or before its status write) copies again: the copy is
        # server-side apply of the same objects, so nothing is duplicated.
        return Step(Phase.COPYING, Action.COPY, "Copying", "copying into the target", "copy")
    if phase is Phase.VERIFYING:
        return _verify(facts, now)
    return _cutover(facts)


def _before_copy(facts: Facts, now: datetime) -> Step:
    if facts.blocker is not None:
        return Step(Phase.PENDING, reason="Blocked", message=facts.blocker, stage="assess")
    if facts.ineligible is not None:
        return Step(Phase.FAILED, reason="Ineligible", message=facts.ineligible, stage="assess")
    if facts.problems:
        return Step(
            Phase.FAILED,
            reason="AssessmentFailed",
            message="; ".join(facts.problems),
            stage="assess",
        )
    if facts.not_before is not None and now < facts.not_before:
        return Step(
            Phase.PENDING,
            reason="WaitingForWindow",
            message=f"assessed; copying starts at notBefore {facts.not_before.isoformat()}",
            stage="assess",
        )
    if Stage.COPY in facts.required and Stage.COPY not in facts.approved:
        return Step(
            Phase.AWAITING_APPROVAL,
            reason="AwaitingCopyApproval",
            message="assessed; copying waits for a platform approver to approve stage copy"
            + _stale_note(facts, Stage.COPY),
            stage="assess",
        )
    return Step(Phase.COPYING, Action.COPY, "Copying", "copying into the target", "copy")


def _verify(facts: Facts, now: datetime) -> Step:
    if facts.available:
        return _cutover(facts)
    started = facts.verify_started_at or now
    if now - started > facts.verify_timeout:
        seconds = int(facts.verify_timeout.total_seconds())
        return failed(
            facts.policy,
            "verify",
            f"the copied workloads did not become Available within {seconds}s",
        )
    return Step(
        Phase.VERIFYING,
        reason="Verifying",
        message="waiting for the copied workloads to become Available",
        stage="verify",
    )


def _cutover(facts: Facts) -> Step:
    if Stage.CUTOVER in facts.required and Stage.CUTOVER not in facts.approved:
        return Step(
            Phase.AWAITING_APPROVAL,
            reason="AwaitingCutoverApproval",
            message="verified; cutover waits for a platform approver to approve stage cutover"
            + _stale_note(facts, Stage.CUTOVER),
            stage="verify",
        )
    if not facts.available:
        return failed(
            facts.policy,
            "cutover",
            "the target is not Available, so the source was not scaled down",
        )
    return Step(
        Phase.CUTTING_OVER,
        Action.CUTOVER,
        "CuttingOver",
        "scaling the source down and resuming the target's CronJobs",
        "cutover",
    )


def _stale_note(facts: Facts, stage: Stage) -> str:
    if stage not in facts.stale:
        return ""
    return (
        f" (the approval of {stage.value} was given for another version of the plan: its app,"
        " source, targetNamespace or dataMigration changed since; approve status.digest again)"
    )


def succeeded(step: Step) -> Phase:
    """The phase after the step's action went through."""
    if step.action is Action.COPY:
        return Phase.VERIFYING
    if step.action is Action.CUTOVER:
        return Phase.COMPLETED
    if step.action is Action.ROLLBACK:
        return Phase.ROLLED_BACK
    return step.phase


def failed(policy: RollbackPolicy, stage: str, message: str) -> Step:
    """A stage failed: roll back at once (Automatic) or wait for a person (Manual)."""
    if policy is RollbackPolicy.AUTOMATIC:
        return Step(
            Phase.ROLLING_BACK,
            Action.ROLLBACK,
            "StageFailed",
            f"{stage} failed ({message}); rolling back (rollbackPolicy: Automatic)",
            stage,
        )
    return Step(
        Phase.FAILED,
        reason="StageFailed",
        message=f"{stage} failed: {message}; set spec.rollback: true to roll back",
        stage=stage,
    )


PROGRESS = {
    Phase.PENDING: 0,
    Phase.ASSESSING: 5,
    Phase.COPYING: 25,
    Phase.VERIFYING: 50,
    Phase.CUTTING_OVER: 85,
    Phase.COMPLETED: 100,
    Phase.ROLLED_BACK: 0,
}


def progress(phase: Phase, started: bool, previous: int) -> int:
    """Percent done: by phase; a failed or rolling-back plan keeps what it had."""
    if phase is Phase.AWAITING_APPROVAL:
        return 75 if started else 10
    return PROGRESS.get(phase, previous)


@dataclass(frozen=True)
class DeadlineVerdict:
    at_risk: bool
    at_risk_reason: str
    at_risk_message: str
    overdue: bool
    overdue_reason: str
    overdue_message: str


STUCK = frozenset({Phase.FAILED, Phase.ROLLED_BACK})


def deadline(
    phase: Phase,
    due: datetime,
    now: datetime,
    at_risk: timedelta,
    completed_at: datetime | None = None,
    blocked: bool = False,
) -> DeadlineVerdict:
    """DeadlineAtRisk and Overdue by the rule in the module docstring."""
    stamp = due.isoformat()
    if phase is Phase.COMPLETED:
        late = completed_at is not None and completed_at > due
        return DeadlineVerdict(
            False,
            "Completed",
            "the migration is complete",
            False,
            "CompletedLate" if late else "CompletedOnTime",
            f"completed {'after' if late else 'by'} the deadline {stamp}",
        )
    if now > due:
        return DeadlineVerdict(
            False,
            "Overdue",
            "the deadline has passed",
            True,
            "DeadlinePassed",
            f"the deadline {stamp} has passed and the migration is not complete",
        )
    left = due - now
    if phase in STUCK or blocked:
        return DeadlineVerdict(
            True,
            "Stalled",
            f"the plan is {phase.value} and cannot finish by {stamp} without action",
            False,
            "NotDue",
            f"due {stamp}",
        )
    if left < at_risk:
        hours = int(at_risk.total_seconds() // 3600)
        return DeadlineVerdict(
            True,
            "DeadlineNear",
            f"less than {hours}h left before the deadline {stamp} and the migration is not"
            " complete",
            False,
            "NotDue",
            f"due {stamp}",
        )
    return DeadlineVerdict(False, "OnTrack", f"due {stamp}", False, "NotDue", f"due {stamp}")


def next_deadline_change(
    phase: Phase, due: datetime, now: datetime, at_risk: timedelta
) -> datetime | None:
    """The next moment `deadline` may answer differently with nothing else changed: the start
    of the at-risk window, then the deadline itself; None for a Completed plan or after both."""
    if phase is Phase.COMPLETED:
        return None
    return next((moment for moment in (due - at_risk, due) if moment > now), None)
