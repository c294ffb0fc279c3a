"""Shared by the fault tests: a fast-restarting operator, watches of every version, ledgers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from govcloud.api import quantity
from govcloud.dev import testing

Manifest = dict[str, Any]
Handler = Callable[[str, Manifest], None]

MANAGED = "app.kubernetes.io/managed-by=govcloud-operator"
TENANT_LABEL = "govcloud.io/tenant"
# The operator's own process, imports done, waiting for one line on stdin to run `main`.
WARM_ENTRY = (
    "import sys\n"
    "from govcloud import __main__ as entry\n"
    "if sys.stdin.readline():\n"
    "    sys.exit(entry.main([]))\n"
)


@dataclass
class WarmOperator(testing.OperatorProcess):
    """The real operator, restarted fast: the next process is spawned (and has imported
    everything) while the current one runs, and is told to run `main` when it is started.

    What runs after `start` is exactly `python -m govcloud`; only its imports came earlier.
    """

    spare: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def _spawn_spare(self) -> subprocess.Popen[bytes]:
        environment = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "GOVCLOUD_STANDALONE": "true",
            "GOVCLOUD_METRICS_PORT": str(self.metrics_port),
            "GOVCLOUD_METRICS_HOST": "127.0.0.1",
            "GOVCLOUD_LIVENESS_PORT": "0",
            **self.env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-c", WARM_ENTRY],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,
            )

    def start(self) -> WarmOperator:
        process = self.spare if self.spare is not None else self._spawn_spare()
        self.spare = None
        assert process.stdin is not None
        process.stdin.write(b"run\n")
        process.stdin.close()
        self.process = process
        self.starts += 1
        testing.eventually(self._serving, timeout=60, what="the operator's /metrics endpoint")
        self.spare = self._spawn_spare()
        return self

    def discard_spare(self) -> None:
        """End the waiting spare (it never ran `main`): at teardown, or before an env change."""
        spare, self.spare = self.spare, None
        if spare is not None and spare.poll() is None:
            spare.kill()
            spare.wait()

    def stop(self) -> None:
        self.discard_spare()
        super().stop()


# -- every version of every object of a kind, from kubectl's own watch ---------------------


class StreamWatch:
    """`kubectl get KIND -A --watch --output-watch-events -o json`: each event to `handler`
    in the order the API server sent them (one stream: resourceVersion order)."""

    def __init__(self, kubectl: testing.Kubectl, kind: str, handler: Handler, selector: str = ""):
        args = ["get", kind, "-A", "--watch", "--output-watch-events", "-o", "json"]
        if selector:
            args += ["-l", selector]
        self.process = subprocess.Popen(
            kubectl._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.handler = handler
        self.events = 0
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        try:
            for line in self.process.stdout:
                buffer += line
                while stripped := buffer.lstrip():
                    try:
                        event, end = decoder.raw_decode(stripped)
                    except ValueError:
                        break
                    buffer = stripped[end:]
                    self.events += 1
                    self.handler(str(event.get("type")), event.get("object") or {})
                else:
                    buffer = ""
        except BaseException as error:  # surfaced by `check`: a dead watch proves nothing
            self.failure = error

    def check(self) -> None:
        """Raise if the watch died or its handler failed: the invariants would go unobserved."""
        if self.failure is not None:
            raise AssertionError(f"a watch's handler failed: {self.failure!r}")
        if self.process.poll() is not None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"kubectl --watch ended ({self.process.returncode}): {stderr}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._thread.join(10)


# -- invariant ledgers -----------------------------------------------------------------------


def amount(text: str | None) -> Decimal:
    return quantity.parse(text) if text else Decimal(0)


@dataclass
class QuotaLedger:
    """Every version of the operator's ResourceQuotas in one cluster, checked as it arrives:
    for each tenant and each resource of its quota, Σ hard and Σ max(hard, used) over its
    namespaces never exceed the tenant's quota (docs/cloudtenant.md)."""

    cluster: str
    quotas: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> spec.quota
    held: dict[str, tuple[str, Manifest, Manifest]] = field(default_factory=dict)
    checks: int = 0
    versions: int = 0
    violations: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, tenant: str, quota: dict[str, str]) -> None:
        with self._lock:
            self.quotas[tenant] = dict(quota)

    def on_event(self, event_type: str, obj: Manifest) -> None:
        metadata = obj.get("metadata") or {}
        tenant = (metadata.get("labels") or {}).get(TENANT_LABEL)
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        with self._lock:
            self.versions += 1
            if event_type == "DELETED":
                self.held.pop(key, None)
                return
            status = obj.get("status") or {}
            hard = (obj.get("spec") or {}).get("hard") or {}
            self.held[key] = (str(tenant), dict(hard), dict(status.get("used") or {}))
            if tenant in self.quotas:
                self._check(str(tenant), metadata.get("resourceVersion"))

    def _check(self, tenant: str, version: str | None) -> None:
        mine = [(hard, used) for owner, hard, used in self.held.values() if owner == tenant]
        for resource, limit in self.quotas[tenant].items():
            self.checks += 1
            hards = sum((amount(hard.get(resource)) for hard, _ in mine), Decimal(0))
            peaks = sum(
                (
                    max(amount(hard.get(resource)), amount(used.get(resource)))
                    for hard, used in mine
                ),
                Decimal(0),
            )
            if hards > amount(limit) or peaks > amount(limit):
                self.violations.append(
                    f"{self.cluster} rv {version}: tenant {tenant} {resource}: Σhard {hards}, "
                    f"Σmax(hard,used) {peaks} > quota {limit}"
                )


@dataclass
class ReplicaLedger:
    """Every version of the Deployments of migrated apps: never zero replicas on both sides,
    and the source goes to zero only while its copy in the target is Available."""

    apps: list[tuple[str, str, str]] = field(default_factory=list)  # (source ns, target ns, name)
    seen: dict[str, Manifest] = field(default_factory=dict)
    checks: int = 0
    violations: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, source: str, target: str, name: str) -> None:
        with self._lock:
            self.apps.append((source, target, name))

    def on_event(self, event_type: str, obj: Manifest) -> None:
        metadata = obj.get("metadata") or {}
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        with self._lock:
            before = self.seen.get(key)
            if event_type == "DELETED":
                self.seen.pop(key, None)
            else:
                self.seen[key] = obj
            version = metadata.get("resourceVersion")
            for source, target, name in self.apps:
                if key == f"{source}/{name}":
                    self._check(source, target, name, before, version)
                elif key == f"{target}/{name}":
                    self._check(source, target, name, None, version)

    def _check(
        self, source: str, target: str, name: str, source_before: Manifest | None, version: Any
    ) -> None:
        """`source_before`: the source's previous version when this event is the source's."""
        self.checks += 1
        old, new = self.seen.get(f"{source}/{name}"), self.seen.get(f"{target}/{name}")
        if old is None:
            return  # the source is not ours to judge once a person deleted it
        if _replicas(old) == 0 and (new is None or _replicas(new) == 0):
            self.violations.append(f"rv {version}: {name} at zero in {source} and {target}")
        went_down = source_before is not None and _replicas(source_before) > 0
        if went_down and _replicas(old) == 0 and (new is None or _available(new) == 0):
            self.violations.append(f"rv {version}: {source}/{name} scaled to 0, copy unavailable")


def _replicas(deployment: Manifest) -> int:
    return int((deployment.get("spec") or {}).get("replicas", 1))


def _available(deployment: Manifest) -> int:
    return int((deployment.get("status") or {}).get("availableReplicas") or 0)


# -- the operator's writes, from the audit log -----------------------------------------------


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class AuditTail:
    """New lines of one cluster's audit log: when the operator (its user agent) last wrote."""

    path: Path
    offset: int = 0
    last_write: float = 0.0

    def catch_up(self) -> float:
        """Read what was appended; returns the wall time of the operator's latest write."""
        if not self.path.exists():
            return self.last_write
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self.offset += complete
        for line in chunk[:complete].splitlines():
            if b"govcloud-operator" not in line:
                continue
            event = json.loads(line)
            if (
                event.get("stage") == "ResponseComplete"
                and event.get("verb") in WRITE_VERBS
                and str(event.get("userAgent", "")).startswith("govcloud-operator")
            ):
                stamp = str(event.get("requestReceivedTimestamp"))
                self.last_write = max(self.last_write, _epoch(stamp))
        return self.last_write


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Tally:
    """What one run did: the figures for docs/reliability.md."""

    seed: int
    kills: int = 0
    mid_work: int = 0
    mid_write: int = 0
    busy: int = 0  # mid-work, or within 1 s of an operator write
    restarts: int = 0
    snapshot_checks: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self, *ledgers: QuotaLedger | ReplicaLedger) -> str:
        checks = self.snapshot_checks + sum(ledger.checks for ledger in ledgers)
        violations = len(self.violations) + sum(len(ledger.violations) for ledger in ledgers)
        return (
            f"GOVCLOUD_CRASH_SEED={self.seed}: kill points {self.kills}, mid-work "
            f"{self.mid_work}, within 1 s of an operator write {self.mid_write}, either"
            f" {self.busy}, restarts "
            f"{self.restarts}, invariant checks {checks}, violations {violations}"
        )


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return time.monotonic() - self.started


def items(kubectl: testing.Kubectl, kind: str, selector: str = "") -> Iterator[Manifest]:
    args = ["get", kind, "-A"] + (["-l", selector] if selector else [])
    yield from kubectl.json(*args)["items"]
