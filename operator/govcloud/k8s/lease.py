"""Leader election on a coordination.k8s.io/v1 Lease, judged by our own clock (as client-go does).

One replica holds the Lease and renews it on every attempt; the others watch the record and take
it over only after they have seen it unchanged for a whole lease duration on their own monotonic
clock. No one ever compares another node's renewTime with its own wall clock, so skewed clocks
change nothing. Every write carries the resourceVersion it was decided on (409: someone else won).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from govcloud.k8s import client

log = logging.getLogger(__name__)

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"
# A Lease's acquireTime and renewTime are MicroTime: RFC 3339 with exactly six fractional digits.
MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
NO_ANSWER = "timeout: no answer from the API server"
# How long a leader already past its renew deadline still waits for a late answer (seconds).
LATE_ANSWER_WAIT = 0.2
# How long release() waits for an attempt in flight before giving up (best effort).
RELEASE_WAIT = 5.0

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def default_identity() -> str:
    """A name no other replica has: "<hostname>-<pid>-<6 hex>" (the chart passes the pod name)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(MICRO_TIME)


def check_timing(
    duration: float,
    renew_deadline: float,
    retry_period: float,
    names: tuple[str, str, str] = ("duration", "renew deadline", "retry period"),
) -> None:
    """Refuse timings under which two replicas could both believe they lead."""
    if not duration > renew_deadline > retry_period > 0:
        got = " > ".join(
            f"{name} ({value:g})"
            for name, value in zip(names, (duration, renew_deadline, retry_period), strict=True)
        )
        raise ValueError(
            f"the lease timings must satisfy {got} > 0: a leader must stop acting (renew"
            " deadline) before anyone may take its lease over (duration), and try to renew"
            " more than once before its deadline"
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Elector:
    """Acquires, renews and releases one Lease for `identity`; call attempt() every retry_period.

    attempt() blocks on the API server, but never past the leader's renew deadline, and never
    raises for API failures: it records them in `error` (None again after the next successful
    round trip). leading() answers from our own clock alone.
    """

    def __init__(
        self,
        cluster: client.Cluster,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = _utc_now,
    ) -> None:
        check_timing(duration, renew_deadline, retry_period)
        if not identity:
            raise ValueError("the lease identity must not be empty")
        self.cluster = cluster
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.holder: str | None = None
        self.error: str | None = None
        # Our clock when the current run of failed attempts began; None while attempts succeed.
        self.failing_since: float | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._renewed_at: float | None = None
        self._record: tuple[str, str, str] | None = None
        self._record_seen_at = 0.0
        self._released = False
        self._calls = threading.Lock()
        self._call: threading.Thread | None = None
        self._call_started = 0.0

    # -- the interface ------------------------------------------------------------------------

    def attempt(self) -> bool:
        """One try to acquire or renew the Lease; whether we lead now.

        The API calls run in a thread of their own: a leader whose API server does not answer
        (the client retries for up to 30 s, a dead connection hangs) gets False back by its
        renew deadline, so its caller stops acting before any standby may take over."""
        if self._released:
            return False
        with self._calls:
            if self._call is None or not self._call.is_alive():
                self._call_started = self._clock()
                self._call = threading.Thread(
                    target=self._attempt_once, name=f"lease-{self.name}", daemon=True
                )
                self._call.start()
            call = self._call
        call.join(self._patience())
        if call.is_alive() and not self.leading():
            self._no_answer()
        return self.leading()

    def leading(self) -> bool:
        """True iff our last successful acquire or renew began less than renew_deadline ago."""
        renewed_at = self._renewed_at
        return renewed_at is not None and self._clock() - renewed_at < self.renew_deadline

    def release(self) -> None:
        """Stop leading at once and, if we hold the Lease, hand it over (holder "") so that a
        standby takes it on its next attempt. Best effort; attempt() no longer acquires after."""
        self._released = True
        self._renewed_at = None
        if not self._lock.acquire(timeout=RELEASE_WAIT):
            log.warning("lease %s: an attempt is still in flight; not releasing", self._where())
            return
        try:
            self._hand_over()
        finally:
            self._lock.release()

    # -- one attempt --------------------------------------------------------------------------

    def _attempt_once(self) -> None:
        with self._lock:
            if not self._released:
                self._try(started=self._clock())

    def _patience(self) -> float:
        """How long attempt() waits for its API calls: a leader until its renew deadline."""
        renewed_at = self._renewed_at
        if renewed_at is None:
            return self.renew_deadline
        return max(LATE_ANSWER_WAIT, renewed_at + self.renew_deadline - self._clock())

    def _no_answer(self) -> None:
        if self.error is not None and not self.error.startswith(NO_ANSWER):
            return  # the API error already recorded says more
        waited = self._clock() - self._call_started
        message = f"{NO_ANSWER} for {waited:.0f}s about Lease {self._where()}"
        if self.error is None:
            log.error("leader election: %s", message)
        self._note_failure(message)

    def _try(self, started: float) -> None:
        try:
            current = self.cluster.get(API_VERSION, KIND, self.name, self.namespace)
        except client.ApiError as error:
            self._failed("get", error)
            return
        if current is None:
            self._create(started)
            return
        self._observe(current)
        if self._may_write(current):
            self._write(current, started)
        else:
            self._succeeded()

    def _observe(self, lease: dict[str, Any]) -> None:
        """Remember when, on our clock, we first saw this exact record."""
        metadata = lease.get("metadata") or {}
        spec = lease.get("spec") or {}
        record = (
            str(metadata.get("resourceVersion") or ""),
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
        )
        if record != self._record:
            self._record = record
            self._record_seen_at = self._clock()
        previous, self.holder = self.holder, record[1] or None
        if self.holder is not None and self.holder != self.identity:
            self._renewed_at = None  # someone else holds it: whatever our clock says, we do not
            if previous == self.identity:
                log.warning("lease %s: %s holds it now", self._where(), self.holder)

    def _may_write(self, lease: dict[str, Any]) -> bool:
        """Ours, free, or unchanged for a whole lease duration as we measure it ourselves."""
        if self.holder is None or self.holder == self.identity:
            return True
        unchanged_for = self._clock() - self._record_seen_at
        # A holder that announces a longer lease than ours gets the longer wait.
        return unchanged_for >= max(self.duration, _announced_duration(lease))

    def _create(self, started: float) -> None:
        now = micro_time(self._wall_clock())
        manifest = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._duration_seconds(),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            created = self.cluster.create(manifest)
        except client.ApiError as error:
            if error.status == 409:  # another replica created it first: not ours this round
                self._succeeded()
                return
            self._failed("create", error)
            return
        self._won(created, started, taken_from="")

    def _write(self, lease: dict[str, Any], started: float) -> None:
        """Renew our Lease or take a free or expired one, only if nobody wrote it since."""
        spec = lease.get("spec") or {}
        ours = self.holder == self.identity
        now = micro_time(self._wall_clock())
        transitions = int(spec.get("leaseTransitions") or 0)
        patch = {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self._duration_seconds(),
                "acquireTime": spec.get("acquireTime") if ours else now,
                "renewTime": now,
                "leaseTransitions": transitions if ours else transitions + 1,
            },
        }
        try:
            written = self.cluster.patch_merge(
                API_VERSION, KIND, self.name, patch, namespace=self.namespace
            )
        except client.ApiError as error:
            if error.status in (404, 409):  # written or deleted since we read it: try again
                self._succeeded()
                return
            self._failed("patch", error)
            return
        self._won(written, started, taken_from=None if ours else self.holder or "")

    def _won(self, lease: dict[str, Any], started: float, taken_from: str | None) -> None:
        # The renewal counts from before the request: a standby starts waiting only once it
        # sees the record we wrote, later than that, so our deadline always runs out first.
        if not self._released:
            self._renewed_at = started
        self._observe(lease)
        self._succeeded()
        if taken_from is not None:
            was = f" from {taken_from}" if taken_from else ""
            log.info("lease %s: acquired%s as %s", self._where(), was, self.identity)

    def _hand_over(self) -> None:
        if self.holder != self.identity or self._record is None:
            return
        patch = {
            "metadata": {"resourceVersion": self._record[0]},
            "spec": {"holderIdentity": "", "renewTime": micro_time(self._wall_clock())},
        }
        try:
            self.cluster.patch_merge(API_VERSION, KIND, self.name, patch, namespace=self.namespace)
        except client.ApiError as error:
            if error.status not in (404, 409):  # 409: someone else holds it already
                self._failed("patch", error)
            return
        self.holder = None
        log.info("lease %s: released by %s", self._where(), self.identity)

    # -- bookkeeping --------------------------------------------------------------------------

    def _succeeded(self) -> None:
        if self.error is not None:
            log.info("lease %s: reachable again", self._where())
        self.error = None
        self.failing_since = None

    def _failed(self, verb: str, error: client.ApiError) -> None:
        reason = error.reason or ("unreachable" if error.status == 0 else str(error.status))
        message = f"{reason.lower()}: cannot {verb} Lease {self._where()}: {error}"
        if message != self.error:
            log.error("leader election: %s", message)
        self._note_failure(message)

    def _note_failure(self, message: str) -> None:
        if self.failing_since is None:
            self.failing_since = self._clock()
        self.error = message

    def _duration_seconds(self) -> int:
        return max(1, math.ceil(self.duration))

    def _where(self) -> str:
        return f"{self.namespace}/{self.name}"


def _announced_duration(lease: dict[str, Any]) -> float:
    value = (lease.get("spec") or {}).get("leaseDurationSeconds")
    return float(value) if isinstance(value, int | float) else 0.0
