"""Sub-center health (pure): probe results -> state with hysteresis -> conditions; clock passed in.

The k8s layer probes a sub-center (`/version`, `/readyz`, the node list) and reports one
`ProbeResult`. `advance` folds it into the `HealthState` kept between probes: Reachable and
Ready turn False only after `failure_threshold` failed probes in a row, so one slow answer does
not flap them, and one good probe turns them back. `conditions` says what that means as
Ready, Reachable and CredentialsValid, with a different reason for a site that does not answer
(Unreachable), answers but is not ready (Unhealthy), or refuses our credentials (Unauthorized).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from govcloud.api.v1alpha1 import subcenter
from govcloud.federation import condition, credentials
from govcloud.federation.condition import Condition

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Outcome(StrEnum):
    """What one probe found; each value is also the condition reason that reports it."""

    HEALTHY = "Healthy"
    UNREACHABLE = "Unreachable"  # no answer: connection refused, DNS failure, timeout
    UNHEALTHY = "Unhealthy"  # answers, but /readyz is not ok
    UNAUTHORIZED = "Unauthorized"  # answers 401/403 to our credentials
    INVALID_CREDENTIALS = "InvalidCredentials"  # kubeconfig unusable: malformed, wrong CA

    @property
    def answered(self) -> bool:
        """Whether the sub-center's API server answered (so it is reachable)."""
        return self in (Outcome.HEALTHY, Outcome.UNHEALTHY, Outcome.UNAUTHORIZED)


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """One probe of a sub-center. The message is redacted on construction."""

    outcome: Outcome
    at: datetime
    message: str = ""
    latency_seconds: float | None = None  # of the answer; None if there was none
    version: str | None = None  # gitVersion, e.g. v1.36.3
    node_count: int | None = None
    allocatable: Mapping[str, str] = dataclasses.field(default_factory=dict)  # cpu/memory/pods

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", credentials.redact(self.message))


@dataclasses.dataclass(frozen=True)
class HealthState:
    """What the probes of one sub-center have shown so far; None means not known yet."""

    consecutive_failures: int = 0
    last_outcome: Outcome | None = None
    reachable: bool | None = None  # answered lately (hysteresis applied)
    healthy: bool | None = None  # answered ready lately (hysteresis applied)
    credentials_accepted: bool | None = None  # by the last probe that got an answer
    last_success_at: datetime | None = None
    last_probe_at: datetime | None = None


def advance(state: HealthState, result: ProbeResult, failure_threshold: int) -> HealthState:
    """The state after `result`.

    A healthy probe resets the failure count and makes the site reachable and healthy at once.
    A site that answers is reachable at once. Unreachable and Unhealthy results turn reachable
    (resp. healthy) False only when `failure_threshold` probes in a row have failed; until then
    the previous verdict stands. Refused or unusable credentials are a configuration problem,
    not a flapping network, so they make the site unhealthy at once.
    """
    outcome = result.outcome
    failures = 0 if outcome is Outcome.HEALTHY else state.consecutive_failures + 1
    tripped = failures >= max(1, failure_threshold)
    reachable: bool | None
    if outcome.answered:
        reachable = True
    elif outcome is Outcome.INVALID_CREDENTIALS:
        reachable = None  # we could not even ask (or not trust the answer)
    else:
        reachable = False if tripped else state.reachable
    healthy: bool | None
    if outcome is Outcome.HEALTHY:
        healthy = True
    elif outcome in (Outcome.UNAUTHORIZED, Outcome.INVALID_CREDENTIALS):
        healthy = False
    else:
        healthy = False if tripped else state.healthy
    accepted = state.credentials_accepted
    if outcome in (Outcome.HEALTHY, Outcome.UNHEALTHY):
        accepted = True
    elif outcome in (Outcome.UNAUTHORIZED, Outcome.INVALID_CREDENTIALS):
        accepted = False
    return HealthState(
        consecutive_failures=failures,
        last_outcome=outcome,
        reachable=reachable,
        healthy=healthy,
        credentials_accepted=accepted,
        last_success_at=result.at if outcome is Outcome.HEALTHY else state.last_success_at,
        last_probe_at=result.at,
    )


def conditions(
    state: HealthState,
    result: ProbeResult,
    expiry: credentials.ExpiryVerdict | None = None,
) -> list[Condition]:
    """Ready, Reachable and CredentialsValid (and CredentialExpiring if `expiry` is given).

    `state` is the state *after* `result` (see `advance`); `expiry` is the verdict on the
    kubeconfig's credential. observedGeneration and lastTransitionTime are the reconciler's
    bookkeeping (`reconcile.conditions.merge`). Messages never carry credentials.
    """
    found = [
        _ready(state, result, expiry),
        _reachable(state, result),
        _credentials_valid(state, result, expiry),
    ]
    if expiry is not None:
        found.append(expiry.expiring)
    return [item._replace(message=credentials.redact(item.message)) for item in found]


def _probe_said(result: ProbeResult) -> str:
    return f": {result.message}" if result.message else ""


def _since(state: HealthState) -> str:
    if state.last_success_at is None:
        return "no probe has succeeded yet"
    return f"last successful probe at {state.last_success_at.astimezone(UTC).strftime(TIME_FORMAT)}"


def _failing(state: HealthState) -> str:
    count = state.consecutive_failures
    return f"{count} probe{'s' if count != 1 else ''} in a row failed"


def _ready(
    state: HealthState, result: ProbeResult, expiry: credentials.ExpiryVerdict | None
) -> Condition:
    outcome = result.outcome
    if outcome in (Outcome.UNAUTHORIZED, Outcome.INVALID_CREDENTIALS):
        return Condition(
            condition.READY,
            condition.FALSE,
            outcome.value,
            "the sub-center cannot be managed with the kubeconfig's credentials"
            f"{_probe_said(result)}",
        )
    if expiry is not None and expiry.invalid is not None:
        return Condition(
            condition.READY, condition.FALSE, expiry.invalid.reason, expiry.invalid.message
        )
    if outcome is Outcome.HEALTHY:
        version = f" (Kubernetes {result.version})" if result.version else ""
        return Condition(
            condition.READY,
            condition.TRUE,
            Outcome.HEALTHY.value,
            f"the sub-center answers and is ready{version}",
        )
    if state.healthy is True:
        return Condition(
            condition.READY,
            condition.TRUE,
            "ProbeFailing",
            f"{_failing(state)}, fewer than probe.failureThreshold, so the site still counts as"
            f" ready; last probe: {outcome.value}{_probe_said(result)}",
        )
    if state.healthy is None:
        return Condition(
            condition.READY,
            condition.UNKNOWN,
            "Probing",
            f"{_failing(state)}; Ready turns False at probe.failureThreshold;"
            f" last probe: {outcome.value}{_probe_said(result)}",
        )
    what = (
        "does not answer"
        if outcome is Outcome.UNREACHABLE
        else "answers but is not ready (/readyz)"
    )
    return Condition(
        condition.READY,
        condition.FALSE,
        outcome.value,
        f"the sub-center {what}; {_failing(state)}, {_since(state)}{_probe_said(result)}",
    )


def _reachable(state: HealthState, result: ProbeResult) -> Condition:
    outcome = result.outcome
    if state.reachable is True:
        if outcome.answered:
            # No latency here: it differs on every probe, and a condition that changes with
            # each probe would make each probe a status write (it is in probeLatencySeconds,
            # refreshed with the heartbeat, and live in the metrics).
            return Condition(
                condition.REACHABLE,
                condition.TRUE,
                "Answered",
                "the sub-center's API server answers",
            )
        return Condition(
            condition.REACHABLE,
            condition.TRUE,
            "ProbeFailing",
            f"{_failing(state)}, fewer than probe.failureThreshold;"
            f" last probe: {outcome.value}{_probe_said(result)}",
        )
    if state.reachable is False:
        return Condition(
            condition.REACHABLE,
            condition.FALSE,
            Outcome.UNREACHABLE.value,
            f"the sub-center's API server does not answer; {_failing(state)}, {_since(state)}"
            f"{_probe_said(result)}",
        )
    if outcome is Outcome.INVALID_CREDENTIALS:
        return Condition(
            condition.REACHABLE,
            condition.UNKNOWN,
            Outcome.INVALID_CREDENTIALS.value,
            f"the sub-center cannot be probed until its kubeconfig is usable{_probe_said(result)}",
        )
    return Condition(
        condition.REACHABLE,
        condition.UNKNOWN,
        "Probing",
        f"{_failing(state)}; Reachable turns False at probe.failureThreshold;"
        f" last probe: {outcome.value}{_probe_said(result)}",
    )


def _credentials_valid(
    state: HealthState, result: ProbeResult, expiry: credentials.ExpiryVerdict | None
) -> Condition:
    outcome = result.outcome
    if outcome is Outcome.UNAUTHORIZED:
        return Condition(
            condition.CREDENTIALS_VALID,
            condition.FALSE,
            Outcome.UNAUTHORIZED.value,
            "the sub-center refused the kubeconfig's credentials (401/403); put valid ones into"
            f" the SubCenter's kubeconfig Secret{_probe_said(result)}",
        )
    if outcome is Outcome.INVALID_CREDENTIALS:
        return Condition(
            condition.CREDENTIALS_VALID,
            condition.FALSE,
            Outcome.INVALID_CREDENTIALS.value,
            f"the kubeconfig cannot be used{_probe_said(result)}",
        )
    if expiry is not None and expiry.invalid is not None:
        return expiry.invalid
    if state.credentials_accepted is True:
        when = "" if outcome.answered else " (by the last probe that got an answer)"
        return Condition(
            condition.CREDENTIALS_VALID,
            condition.TRUE,
            "Accepted",
            f"the sub-center accepted the kubeconfig's credentials{when}",
        )
    if state.credentials_accepted is False:
        return Condition(
            condition.CREDENTIALS_VALID,
            condition.FALSE,
            Outcome.UNAUTHORIZED.value,
            "the sub-center refused the kubeconfig's credentials at the last probe that got an"
            " answer",
        )
    return Condition(
        condition.CREDENTIALS_VALID,
        condition.UNKNOWN,
        "NotChecked",
        "the credentials are checked once the sub-center answers",
    )


def status_fields(state: HealthState, result: ProbeResult) -> dict[str, Any]:
    """The probe's part of SubCenter.status, in wire names.

    What only an answering site can tell (version, nodes, allocatable) is included only when
    the probe found it, so a site that stops answering keeps its last known facts.
    """
    fields: dict[str, Any] = {
        "consecutiveFailures": state.consecutive_failures,
        "lastProbeTime": result.at.astimezone(UTC).strftime(TIME_FORMAT),
    }
    if state.last_success_at is not None:
        fields["lastSuccessfulProbeTime"] = state.last_success_at.astimezone(UTC).strftime(
            TIME_FORMAT
        )
    if result.latency_seconds is not None:
        fields["probeLatencySeconds"] = f"{result.latency_seconds:.3f}"
    if result.version is not None:
        fields["kubernetesVersion"] = result.version
    if result.node_count is not None:
        fields["nodeCount"] = result.node_count
    allocatable = {
        key: result.allocatable[key]
        for key in ("cpu", "memory", "pods")
        if key in result.allocatable
    }
    if allocatable:
        fields["allocatable"] = allocatable
    return fields


def from_status(status: subcenter.SubCenterStatus) -> HealthState:
    """The state a restarted operator resumes from, read back from the stored status.

    So a restart neither resets the failure count nor flips Reachable back to Unknown.
    """
    by_type = {item.type: item for item in status.conditions}

    def flag(type_: str) -> bool | None:
        found = by_type.get(type_)
        if found is None:
            return None
        return {condition.TRUE: True, condition.FALSE: False}.get(found.status.value)

    accepted = by_type.get(condition.CREDENTIALS_VALID)
    credentials_accepted = flag(condition.CREDENTIALS_VALID)
    if accepted is not None and accepted.reason == credentials.EXPIRED:
        credentials_accepted = None  # expiry is re-judged each pass; it says nothing of the server
    return HealthState(
        consecutive_failures=status.consecutive_failures,
        reachable=flag(condition.REACHABLE),
        healthy=flag(condition.READY) if _probe_decided_ready(by_type) else None,
        credentials_accepted=credentials_accepted,
        last_success_at=status.last_successful_probe_time,
        last_probe_at=status.last_probe_time,
    )


def _probe_decided_ready(by_type: Mapping[str, Any]) -> bool:
    """Whether the stored Ready came from the probes (not from an expired credential)."""
    ready = by_type.get(condition.READY)
    return ready is not None and ready.reason != credentials.EXPIRED
