"""Lease election decisions: who acquires, renews, waits and takes over, judged by own clocks.

The API server here is an in-memory stand-in with the one behaviour the decisions rest on
(resourceVersion bumps on every write, a stale one is a 409, create of an existing name is a
409); tests/integration/test_ha.py runs the same Elector against a real API server.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from govcloud.k8s import client, lease

NAMESPACE, NAME = "govcloud-system", "govcloud-operator"
DURATION, RENEW_DEADLINE, RETRY = 15.0, 10.0, 2.0
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
YEAR = timedelta(days=365)


class FakeApi:
    """One Lease in memory, written with optimistic concurrency like the real API server."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.failure: client.ApiError | None = None
        self.writes = 0
        self.before_write: Callable[[], None] | None = None
        # While set and not yet released, every call hangs (an API server that never answers).
        self.hang: threading.Event | None = None
        self.reads = 0

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        assert (api_version, kind, name, namespace) == (lease.API_VERSION, "Lease", NAME, NAMESPACE)
        self.reads += 1
        self._maybe_fail()
        return copy.deepcopy(self.lease)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail()
        self._hook()
        if self.lease is not None:
            raise client.ApiError("leases already exists", 409, "AlreadyExists")
        self.lease = copy.deepcopy(manifest)
        return self._bump()

    def patch_merge(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
    ) -> dict[str, Any]:
        assert (api_version, kind, name, namespace) == (lease.API_VERSION, "Lease", NAME, NAMESPACE)
        self._maybe_fail()
        self._hook()
        if self.lease is None:
            raise client.ApiError("leases not found", 404, "NotFound")
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != self.lease["metadata"]["resourceVersion"]:
            raise client.ApiError("the object has been modified", 409, "Conflict")
        for key, value in patch.get("spec", {}).items():
            self.lease["spec"][key] = value
        return self._bump()

    def edit(self, **spec: Any) -> None:
        """A write by someone else (a person, another replica): new content, new version."""
        assert self.lease is not None
        self.lease["spec"].update(spec)
        self._bump()

    @property
    def spec(self) -> dict[str, Any]:
        assert self.lease is not None
        return dict(self.lease["spec"])

    def _bump(self) -> dict[str, Any]:
        assert self.lease is not None
        self.version += 1
        self.writes += 1
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def _hook(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    def _maybe_fail(self) -> None:
        if self.hang is not None:
            assert self.hang.wait(10), "the test never let the hanging call go"
        if self.failure is not None:
            raise self.failure


class Clock:
    """A monotonic clock a test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def elector(
    api: FakeApi,
    identity: str,
    clock: Clock,
    wall: datetime | None = None,
    **timing: float,
) -> lease.Elector:
    moment = wall or datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    return lease.Elector(
        cast(client.Cluster, api),
        NAMESPACE,
        NAME,
        identity,
        duration=timing.get("duration", DURATION),
        renew_deadline=timing.get("renew_deadline", RENEW_DEADLINE),
        retry_period=timing.get("retry_period", RETRY),
        clock=clock,
        wall_clock=lambda: moment,
    )


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def run(clock: Clock, seconds: float, *electors: lease.Elector) -> None:
    """Every elector attempts once per retry period for `seconds`, as the operator loop does."""
    end = clock.now + seconds
    while clock.now < end:
        clock.advance(RETRY)
        for one in electors:
            one.attempt()


def test_the_first_replica_creates_the_lease_and_leads(api: FakeApi, clock: Clock) -> None:
    first = elector(api, "a", clock)

    assert first.attempt() is True
    assert first.leading()
    assert first.holder == "a"
    assert first.error is None
    spec = api.spec
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["renewTime"])
    assert MICRO_TIME.match(spec["acquireTime"])


def test_a_standby_never_leads_while_the_holder_renews(api: FakeApi, clock: Clock) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()

    run(clock, 10 * DURATION, holder, standby)

    assert holder.leading()
    assert not standby.leading()
    assert standby.holder == "a"
    assert standby.error is None
    assert api.spec["holderIdentity"] == "a"
    assert api.spec["leaseTransitions"] == 0


def test_the_holder_renews_on_every_attempt_keeping_its_acquire_time(
    api: FakeApi, clock: Clock
) -> None:
    holder = elector(api, "a", clock)
    holder.attempt()
    acquired, version = api.spec["acquireTime"], api.version

    clock.advance(RETRY)
    assert holder.attempt() is True

    assert api.version == version + 1
    assert api.spec["acquireTime"] == acquired


def test_a_standby_takes_over_only_after_a_whole_duration_without_change(
    api: FakeApi, clock: Clock
) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()
    assert standby.attempt() is False  # first sight of the record: its wait starts now

    clock.advance(DURATION - 0.1)
    assert standby.attempt() is False
    clock.advance(0.1)
    assert standby.attempt() is True

    assert api.spec["holderIdentity"] == "b"
    assert api.spec["leaseTransitions"] == 1
    assert standby.holder == "b"


def test_a_record_seen_for_the_first_time_is_never_judged_by_its_renew_time(
    api: FakeApi, clock: Clock
) -> None:
    # The holder's last renewTime is a year old by any wall clock; a standby that has just
    # started still waits a whole duration of its own, since the holder may be alive.
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    elector(api, "a", clock, wall=long_ago).attempt()
    standby = elector(api, "b", clock)

    assert standby.attempt() is False
    clock.advance(DURATION / 2)
    assert standby.attempt() is False
    clock.advance(DURATION / 2)
    assert standby.attempt() is True


@pytest.mark.parametrize("skew", [YEAR, -YEAR], ids=["holder-a-year-ahead", "holder-a-year-behind"])
def test_skewed_wall_clocks_change_no_decision(api: FakeApi, clock: Clock, skew: timedelta) -> None:
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    holder = elector(api, "a", clock, wall=now + skew)
    standby = elector(api, "b", clock, wall=now)
    holder.attempt()

    # While the skewed holder renews, the standby keeps off, however old its renewTime looks.
    run(clock, 3 * DURATION, holder, standby)
    assert holder.leading()
    assert not standby.leading()

    # The holder stops; however new its renewTime looks, the standby takes over after one
    # duration (plus at most one retry period) of seeing it unchanged.
    stopped_at = clock.now
    give_up_at = stopped_at + DURATION + 2 * RETRY
    while not standby.attempt():
        assert clock.now <= give_up_at, "the standby waited for the holder's wall clock"
        clock.advance(RETRY)
    assert clock.now - stopped_at <= DURATION + RETRY
    assert api.spec["holderIdentity"] == "b"


def test_a_hand_edited_renew_time_restarts_the_wait_but_never_extends_it_further(
    api: FakeApi, clock: Clock
) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()
    standby.attempt()
    clock.advance(DURATION - RETRY)
    api.edit(renewTime=lease.micro_time(datetime.now(UTC) + YEAR))  # a change: seen anew

    assert standby.attempt() is False
    clock.advance(DURATION)
    assert standby.attempt() is True


def test_an_empty_holder_is_free_at_once(api: FakeApi, clock: Clock) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()
    api.edit(holderIdentity="")

    assert standby.attempt() is True
    assert api.spec["holderIdentity"] == "b"


def test_release_hands_over_at_once_and_stops_leading(api: FakeApi, clock: Clock) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()
    standby.attempt()

    holder.release()

    assert not holder.leading()
    assert api.spec["holderIdentity"] == ""
    clock.advance(RETRY)
    assert standby.attempt() is True
    assert api.spec["holderIdentity"] == "b"
    # A released elector is done: it does not take the lease back, even once b goes quiet.
    run(clock, 3 * DURATION, holder)
    assert not holder.leading()
    assert api.spec["holderIdentity"] == "b"


def test_release_never_overwrites_a_lease_someone_else_wrote(api: FakeApi, clock: Clock) -> None:
    holder = elector(api, "a", clock)
    holder.attempt()
    api.edit(holderIdentity="c")  # taken over since our last look

    holder.release()

    assert api.spec["holderIdentity"] == "c"
    assert not holder.leading()


def test_a_replica_that_does_not_hold_the_lease_releases_nothing(
    api: FakeApi, clock: Clock
) -> None:
    holder, standby = elector(api, "a", clock), elector(api, "b", clock)
    holder.attempt()
    standby.attempt()
    writes = api.writes

    standby.release()

    assert api.writes == writes
    assert api.spec["holderIdentity"] == "a"


def test_leading_ends_at_the_renew_deadline_when_renewals_fail(api: FakeApi, clock: Clock) -> None:
    holder = elector(api, "a", clock)
    holder.attempt()
    api.failure = client.ApiError("patch failed: etcd is down", 503, "ServiceUnavailable")

    clock.advance(RENEW_DEADLINE - 0.1)
    assert holder.attempt() is True  # the last success is still fresh
    clock.advance(0.1)
    assert holder.leading() is False
    assert holder.attempt() is False
    assert holder.error is not None
    assert "serviceunavailable" in holder.error


def test_leading_counts_from_before_the_renewal_was_sent(api: FakeApi, clock: Clock) -> None:
    holder = elector(api, "a", clock)
    holder.attempt()
    # A renewal that takes 3 s to answer counts from when it was sent.
    clock.advance(RETRY)
    api.before_write = lambda: clock.advance(3.0)
    holder.attempt()

    clock.advance(RENEW_DEADLINE - 3.0 - 0.1)
    assert holder.leading() is True
    clock.advance(0.1)
    assert holder.leading() is False


def test_the_holder_stops_leading_as_soon_as_it_sees_another_holder(
    api: FakeApi, clock: Clock
) -> None:
    holder = elector(api, "a", clock)
    holder.attempt()
    api.edit(holderIdentity="c")

    assert holder.attempt() is False
    assert holder.holder == "c"
    assert not holder.leading()


def test_two_replicas_racing_for_a_free_lease_get_one_leader(api: FakeApi, clock: Clock) -> None:
    first, second = elector(api, "a", clock), elector(api, "b", clock)
    first.attempt()
    api.edit(holderIdentity="")
    # b reads the free lease, then a writes before b does: b's write carries a stale version.
    api.before_write = first.attempt

    assert second.attempt() is False
    assert second.error is None
    assert first.leading()
    assert api.spec["holderIdentity"] == "a"


def test_two_replicas_creating_the_lease_at_once_get_one_leader(api: FakeApi, clock: Clock) -> None:
    first, second = elector(api, "a", clock), elector(api, "b", clock)
    api.before_write = first.attempt  # a creates it between b's read (404) and b's create

    assert second.attempt() is False
    assert second.error is None
    assert first.leading()
    assert api.spec["holderIdentity"] == "a"


def test_api_failures_are_recorded_in_words_never_raised(api: FakeApi, clock: Clock) -> None:
    standby = elector(api, "b", clock)
    api.failure = client.ApiError(
        'get failed: leases.coordination.k8s.io "govcloud-operator" is forbidden: User "x"'
        ' cannot get resource "leases"',
        403,
        "Forbidden",
    )

    assert standby.attempt() is False
    assert standby.error is not None
    assert standby.error.startswith("forbidden: cannot get Lease govcloud-system/govcloud-operator")
    assert "is forbidden" in standby.error
    assert standby.failing_since == clock.now

    clock.advance(RETRY)
    standby.attempt()
    assert standby.failing_since == clock.now - RETRY  # the run of failures began earlier

    api.failure = None
    assert standby.attempt() is True
    assert standby.error is None
    assert standby.failing_since is None


def test_an_unreachable_api_server_is_said_so(api: FakeApi, clock: Clock) -> None:
    standby = elector(api, "b", clock)
    api.failure = client.ApiError("get failed: hub unreachable: connection refused")

    standby.attempt()

    assert standby.error is not None
    assert standby.error.startswith("unreachable: cannot get")


def test_a_missing_namespace_is_named(api: FakeApi, clock: Clock) -> None:
    standby = elector(api, "b", clock)

    def refuse(manifest: dict[str, Any]) -> dict[str, Any]:
        raise client.ApiError('namespaces "govcloud-system" not found', 404, "NotFound")

    api.create = refuse  # type: ignore[method-assign]

    assert standby.attempt() is False
    assert standby.error is not None
    assert standby.error.startswith("notfound: cannot create Lease")
    assert 'namespaces "govcloud-system" not found' in standby.error


def test_a_holder_announcing_a_longer_lease_gets_the_longer_wait(
    api: FakeApi, clock: Clock
) -> None:
    elector(api, "a", clock, duration=40.0, renew_deadline=30.0).attempt()
    standby = elector(api, "b", clock)
    standby.attempt()

    clock.advance(DURATION)
    assert standby.attempt() is False
    clock.advance(40.0 - DURATION)
    assert standby.attempt() is True


def test_a_restarted_replica_with_the_same_identity_renews_its_own_lease(
    api: FakeApi, clock: Clock
) -> None:
    elector(api, "pod-0", clock).attempt()
    transitions = api.spec["leaseTransitions"]

    assert elector(api, "pod-0", clock).attempt() is True
    assert api.spec["leaseTransitions"] == transitions


@pytest.mark.parametrize(
    ("duration", "renew_deadline", "retry_period"),
    [(10.0, 10.0, 2.0), (15.0, 10.0, 10.0), (15.0, 10.0, 0.0), (5.0, 10.0, 2.0)],
)
def test_timings_that_could_let_two_replicas_act_are_refused(
    api: FakeApi, clock: Clock, duration: float, renew_deadline: float, retry_period: float
) -> None:
    with pytest.raises(ValueError, match=r"duration .* > renew deadline .* > retry period"):
        elector(
            api,
            "a",
            clock,
            duration=duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )


def test_default_identities_differ_per_process_and_call() -> None:
    first, second = lease.default_identity(), lease.default_identity()

    assert first != second
    assert re.fullmatch(r".+-\d+-[0-9a-f]{6}", first)


def test_micro_time_is_utc_with_six_fractional_digits() -> None:
    shanghai = datetime(2026, 12, 7, 19, 0, 1, 5, tzinfo=timezone(timedelta(hours=8)))

    assert lease.micro_time(shanghai) == "2026-12-07T11:00:01.000005Z"


def test_a_leader_whose_api_server_hangs_gets_false_by_its_renew_deadline(api: FakeApi) -> None:
    # Real time, short timings: the call really hangs, attempt() must not.
    leader = lease.Elector(
        cast(client.Cluster, api), NAMESPACE, NAME, "a",
        duration=0.9, renew_deadline=0.6, retry_period=0.2,
    )  # fmt: skip
    assert leader.attempt() is True
    api.hang = threading.Event()
    reads = api.reads
    try:
        started = time.monotonic()
        assert leader.attempt() is False
        assert time.monotonic() - started < 0.6 + 0.3
        assert leader.error is not None
        assert leader.error.startswith("timeout: no answer from the API server")
        # Attempts while the call still hangs wait for it instead of piling up more calls.
        assert leader.attempt() is False
        assert api.reads == reads + 1
    finally:
        api.hang.set()
    give_up_at = time.monotonic() + 5
    while not leader.attempt():
        assert time.monotonic() < give_up_at, leader.error
    assert leader.error is None


def test_a_standby_waits_for_a_hanging_api_server_at_most_a_renew_deadline(
    api: FakeApi,
) -> None:
    standby = lease.Elector(
        cast(client.Cluster, api), NAMESPACE, NAME, "b",
        duration=0.9, renew_deadline=0.6, retry_period=0.2,
    )  # fmt: skip
    api.hang = threading.Event()
    try:
        started = time.monotonic()
        assert standby.attempt() is False
        assert 0.5 < time.monotonic() - started < 0.6 + 0.3
        assert standby.error is not None
        assert standby.failing_since is not None
    finally:
        api.hang.set()
