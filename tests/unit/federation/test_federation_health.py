"""Sub-center health: hysteresis over probe results, and the conditions they give."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

import pytest
from federation_fixtures import NOW, jwt

from govcloud.api.v1alpha1 import subcenter
from govcloud.federation import condition, credentials, health
from govcloud.federation.health import Outcome

H, X, U, A, I = (  # noqa: E741 - one letter per outcome keeps the tables readable
    Outcome.HEALTHY,
    Outcome.UNREACHABLE,
    Outcome.UNHEALTHY,
    Outcome.UNAUTHORIZED,
    Outcome.INVALID_CREDENTIALS,
)
SECOND = datetime.timedelta(seconds=1)


def probe(outcome: Outcome, step: int = 0, message: str = "") -> health.ProbeResult:
    answered = outcome.answered
    return health.ProbeResult(
        outcome=outcome,
        at=NOW + step * 10 * SECOND,
        message=message,
        latency_seconds=0.0123 if answered else None,
        version="v1.36.3" if outcome is H else None,
        node_count=3 if outcome is H else None,
        allocatable={"cpu": "48", "memory": "192Gi", "pods": "330"} if outcome is H else {},
    )


def run(outcomes: Sequence[Outcome], threshold: int = 3) -> list[health.HealthState]:
    """The state after each probe, starting from nothing known."""
    state, states = health.HealthState(), []
    for step, outcome in enumerate(outcomes):
        state = health.advance(state, probe(outcome, step), threshold)
        states.append(state)
    return states


def by_type(found: Sequence[condition.Condition]) -> dict[str, condition.Condition]:
    return {item.type: item for item in found}


def statuses(outcomes: Sequence[Outcome], threshold: int = 3) -> list[tuple[str, str]]:
    """(Ready, Reachable) status after each probe."""
    result = []
    state = health.HealthState()
    for step, outcome in enumerate(outcomes):
        result_ = probe(outcome, step)
        state = health.advance(state, result_, threshold)
        found = by_type(health.conditions(state, result_))
        result.append((found["Ready"].status, found["Reachable"].status))
    return result


T, F, N = condition.TRUE, condition.FALSE, condition.UNKNOWN


@pytest.mark.parametrize(
    ("outcomes", "threshold", "expected"),
    [
        # A healthy site is Ready and Reachable from the first probe.
        ([H], 3, [(T, T)]),
        # One or two slow answers do not flap anything; the third failure in a row does.
        ([H, X, X, X], 3, [(T, T), (T, T), (T, T), (F, F)]),
        # One success turns both back at once.
        ([H, X, X, X, H], 3, [(T, T), (T, T), (T, T), (F, F), (T, T)]),
        # Failures that are not in a row never trip.
        ([H, X, X, H, X, X, H], 3, [(T, T)] * 7),
        # Threshold 1: the first failure counts.
        ([H, X, H], 1, [(T, T), (F, F), (T, T)]),
        # A new site that never answered is Unknown until the threshold, then False.
        ([X, X, X], 3, [(N, N), (N, N), (F, F)]),
        # Answers but /readyz fails: reachable at once, Ready follows the same hysteresis.
        ([H, U, U, U], 3, [(T, T), (T, T), (T, T), (F, T)]),
        ([U], 3, [(N, T)]),
        # Mixed failures count together.
        ([H, U, X, X], 3, [(T, T), (T, T), (T, T), (F, F)]),
        # Refused or unusable credentials are configuration, not flapping: no grace.
        ([H, A], 3, [(T, T), (F, T)]),
        ([H, I], 3, [(T, T), (F, N)]),
        ([I, H], 3, [(F, N), (T, T)]),
    ],
    ids=[
        "healthy",
        "trips-at-threshold",
        "one-success-recovers",
        "not-in-a-row",
        "threshold-1",
        "never-answered",
        "unhealthy",
        "new-unhealthy",
        "mixed",
        "unauthorized",
        "invalid-credentials",
        "fixed-credentials",
    ],
)
def test_hysteresis(
    outcomes: list[Outcome], threshold: int, expected: list[tuple[str, str]]
) -> None:
    assert statuses(outcomes, threshold) == expected


def test_state_counts_failures_and_remembers_the_last_success() -> None:
    states = run([H, X, U, H, X])

    assert [state.consecutive_failures for state in states] == [0, 1, 2, 0, 1]
    assert [state.last_outcome for state in states] == [H, X, U, H, X]
    assert states[2].last_success_at == NOW
    assert states[4].last_success_at == NOW + 30 * SECOND
    assert states[4].last_probe_at == NOW + 40 * SECOND


def test_a_threshold_below_one_behaves_as_one() -> None:
    assert run([H, X], threshold=0)[-1].reachable is False


def test_reasons_tell_unreachable_unhealthy_and_unauthorized_apart() -> None:
    reasons = {}
    for failure in (X, U, A, I):
        state = health.HealthState()
        for step in range(3):
            result = probe(failure, step)
            state = health.advance(state, result, 3)
        reasons[failure] = {item.type: item.reason for item in health.conditions(state, result)}

    assert reasons[X] == {
        "Ready": "Unreachable",
        "Reachable": "Unreachable",
        "CredentialsValid": "NotChecked",
    }
    assert reasons[U] == {
        "Ready": "Unhealthy",
        "Reachable": "Answered",
        "CredentialsValid": "Accepted",
    }
    assert reasons[A] == {
        "Ready": "Unauthorized",
        "Reachable": "Answered",
        "CredentialsValid": "Unauthorized",
    }
    assert reasons[I] == {
        "Ready": "InvalidCredentials",
        "Reachable": "InvalidCredentials",
        "CredentialsValid": "InvalidCredentials",
    }


def test_healthy_conditions_say_the_version_and_nothing_that_changes_with_each_probe() -> None:
    result = probe(H)
    found = by_type(health.conditions(health.advance(health.HealthState(), result, 3), result))

    assert found["Ready"] == condition.Condition(
        "Ready", T, "Healthy", "the sub-center answers and is ready (Kubernetes v1.36.3)"
    )
    assert found["Reachable"] == condition.Condition(
        "Reachable", T, "Answered", "the sub-center's API server answers"
    )
    assert found["CredentialsValid"] == condition.Condition(
        "CredentialsValid", T, "Accepted", "the sub-center accepted the kubeconfig's credentials"
    )


def test_repeated_healthy_probes_give_the_same_conditions_whatever_their_latency() -> None:
    """Conditions that changed with each probe would make each probe a status write."""
    state, found = health.HealthState(), []
    for step, latency in enumerate((0.0123, 0.0871, 1.5)):
        result = dataclasses.replace(probe(H, step), latency_seconds=latency)
        state = health.advance(state, result, 3)
        found.append(health.conditions(state, result))

    assert found[0] == found[1] == found[2]


def test_within_the_grace_the_conditions_stay_true_but_say_the_probe_fails() -> None:
    state = run([H])[-1]
    result = probe(X, 1, "connection refused")
    state = health.advance(state, result, 3)

    found = by_type(health.conditions(state, result))

    assert (found["Ready"].status, found["Ready"].reason) == (T, "ProbeFailing")
    assert "1 probe in a row failed" in found["Ready"].message
    assert "last probe: Unreachable: connection refused" in found["Ready"].message
    assert (found["Reachable"].status, found["Reachable"].reason) == (T, "ProbeFailing")
    assert found["CredentialsValid"].message.endswith("(by the last probe that got an answer)")


def test_a_tripped_site_says_since_when_it_is_gone() -> None:
    state = run([H, X, X])[-1]
    result = probe(X, 3, "dial tcp 10.20.0.10:6443: i/o timeout")
    state = health.advance(state, result, 3)

    ready = by_type(health.conditions(state, result))["Ready"]

    assert ready.message == (
        "the sub-center does not answer; 3 probes in a row failed, last successful probe at"
        " 2026-03-01T12:00:00Z: dial tcp 10.20.0.10:6443: i/o timeout"
    )


def test_credentials_refused_earlier_stay_refused_while_the_site_is_unreachable() -> None:
    state = run([A])[-1]
    result = probe(X, 1)
    state = health.advance(state, result, 3)

    valid = by_type(health.conditions(state, result))["CredentialsValid"]

    assert (valid.status, valid.reason) == (F, "Unauthorized")


def test_an_expired_credential_makes_the_site_not_ready_and_credentials_invalid() -> None:
    expiry = credentials.expiry_verdict(NOW - SECOND, NOW, datetime.timedelta(days=30))
    result = probe(H)
    state = health.advance(health.HealthState(), result, 3)

    found = by_type(health.conditions(state, result, expiry))

    assert (found["Ready"].status, found["Ready"].reason) == (F, "Expired")
    assert (found["CredentialsValid"].status, found["CredentialsValid"].reason) == (F, "Expired")
    assert (found["CredentialExpiring"].status, found["CredentialExpiring"].reason) == (
        T,
        "Expired",
    )
    assert found["Reachable"].status == T


def test_a_credential_expiring_soon_warns_but_keeps_the_site_ready() -> None:
    expiry = credentials.expiry_verdict(
        NOW + datetime.timedelta(days=3), NOW, datetime.timedelta(days=30)
    )
    result = probe(H)
    state = health.advance(health.HealthState(), result, 3)

    found = by_type(health.conditions(state, result, expiry))

    assert [item.type for item in health.conditions(state, result, expiry)] == [
        "Ready",
        "Reachable",
        "CredentialsValid",
        "CredentialExpiring",
    ]
    assert found["Ready"].status == T
    assert (found["CredentialExpiring"].status, found["CredentialExpiring"].reason) == (
        T,
        "ExpiresSoon",
    )


def test_credentials_never_reach_a_message() -> None:
    token = jwt({"exp": 1})
    leaky = f"401 Unauthorized: token {token} rejected; Authorization: Bearer {token}"
    result = probe(A, message=leaky)
    state = health.advance(health.HealthState(), result, 3)

    found = health.conditions(state, result)

    assert token not in result.message
    assert all(token not in item.message for item in found)
    assert "rejected" in result.message


def test_status_fields_use_wire_names_and_keep_facts_of_a_silent_site() -> None:
    healthy = probe(H)
    state = health.advance(health.HealthState(), healthy, 3)

    assert health.status_fields(state, healthy) == {
        "consecutiveFailures": 0,
        "lastProbeTime": "2026-03-01T12:00:00Z",
        "lastSuccessfulProbeTime": "2026-03-01T12:00:00Z",
        "probeLatencySeconds": "0.012",
        "kubernetesVersion": "v1.36.3",
        "nodeCount": 3,
        "allocatable": {"cpu": "48", "memory": "192Gi", "pods": "330"},
    }
    silent = probe(X, 1)
    state = health.advance(state, silent, 3)
    assert health.status_fields(state, silent) == {
        "consecutiveFailures": 1,
        "lastProbeTime": "2026-03-01T12:00:10Z",
        "lastSuccessfulProbeTime": "2026-03-01T12:00:00Z",
    }
    subcenter.SubCenterStatus.model_validate(health.status_fields(state, silent))


def _stored(state: health.HealthState, result: health.ProbeResult) -> subcenter.SubCenterStatus:
    """What the reconciler would store: the probe's status fields and conditions."""
    return subcenter.SubCenterStatus.model_validate(
        {
            **health.status_fields(state, result),
            "conditions": [
                {**item._asdict(), "lastTransitionTime": "2026-03-01T12:00:00Z"}
                for item in health.conditions(state, result)
            ],
        }
    )


@pytest.mark.parametrize(
    "outcomes",
    [[H], [H, X], [H, X, X], [H, X, X, X], [X], [H, U, U, U], [A], [H, A, X]],
    ids=str,
)
def test_a_restarted_operator_resumes_the_same_hysteresis(outcomes: list[Outcome]) -> None:
    """State read back from the stored status continues exactly like the one kept in memory."""
    state = health.HealthState()
    for step, outcome in enumerate(outcomes):
        result = probe(outcome, step)
        state = health.advance(state, result, 3)

    resumed = health.from_status(_stored(state, result))

    for step, outcome in enumerate([X, X, X, H], start=len(outcomes)):
        following = probe(outcome, step)
        state = health.advance(state, following, 3)
        resumed = health.advance(resumed, following, 3)
        assert health.conditions(resumed, following) == health.conditions(state, following)


def test_from_an_empty_status_nothing_is_known() -> None:
    assert health.from_status(subcenter.SubCenterStatus()) == health.HealthState()


def test_an_expired_credential_in_the_stored_status_says_nothing_about_the_server() -> None:
    expiry = credentials.expiry_verdict(NOW - SECOND, NOW, datetime.timedelta(days=30))
    result = probe(H)
    state = health.advance(health.HealthState(), result, 3)
    stored = subcenter.SubCenterStatus.model_validate(
        {
            "conditions": [
                {**item._asdict(), "lastTransitionTime": "2026-03-01T12:00:00Z"}
                for item in health.conditions(state, result, expiry)
            ]
        }
    )

    resumed = health.from_status(stored)

    assert resumed.credentials_accepted is None
    assert resumed.healthy is None
    assert resumed.reachable is True
