"""What the benchmarks measure with: process CPU/RSS, the audit log, Prometheus text, a watch."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from govcloud import constants
from govcloud.desired import quantity
from govcloud.dev import cluster

OPERATOR_AGENTS = ("govcloud-operator", "kopf")
READ_VERBS = ("get", "list")  # watches are the caches: long-lived, not per pass
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (p50 of [1,2,3,4] is 2); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def ratio(operator: float | None, floor: float | None) -> float | None:
    if operator is None or floor is None or floor <= 0:
        return None
    return operator / floor


# -- a control plane that audits reads too ---------------------------------------------------


class BenchControlPlane(cluster.ControlPlane):
    """The shared launcher, with an audit policy that also records reads (at Metadata level).

    The stock policy logs writes only; the benchmarks count the operator's reads per metering
    tick and per resync pass, so every verb is logged with the caller's userAgent.
    """

    def _write_audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [{"level": "Metadata"}],
        }
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path


@dataclass
class AuditCursor:
    """Reads the audit log from where it stood when the cursor was made."""

    path: Path
    offset: int = 0

    @classmethod
    def at_end(cls, plane: cluster.ControlPlane) -> AuditCursor:
        path = plane.audit_log
        return cls(path, path.stat().st_size if path.exists() else 0)

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self.offset)
            data = log.read()
        # Only whole lines: a line being written now is read next time.
        end = data.rfind(b"\n") + 1
        self.offset += end
        found = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete":
                    found.append(event)
        return found


def calls_by(
    events: Iterable[Mapping[str, Any]], agents: Sequence[str] = OPERATOR_AGENTS
) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) -> count, for the callers whose userAgent starts so."""
    counted: Counter[tuple[str, str]] = Counter()
    for event in events:
        agent = str(event.get("userAgent") or "")
        if not agent.startswith(tuple(agents)):
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or event.get("requestURI") or "?")
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        counted[(str(event.get("verb")), resource)] += 1
    return counted


def writes(counted: Mapping[tuple[str, str], int]) -> int:
    return sum(count for (verb, _), count in counted.items() if verb in cluster.WRITE_VERBS)


def reads(counted: Mapping[tuple[str, str], int]) -> int:
    return sum(count for (verb, _), count in counted.items() if verb in READ_VERBS)


def flat(counted: Mapping[tuple[str, str], int]) -> dict[str, int]:
    return {f"{verb} {resource}": count for (verb, resource), count in sorted(counted.items())}


# -- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def proc_stat(pid: int) -> ProcStat:
    """User+system CPU seconds, current RSS and the kernel's peak RSS (VmHWM) of a process."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        status[key] = value.strip()
    return ProcStat(
        cpu, _kib(status.get("VmRSS", "0 kB")) * 1024, _kib(status.get("VmHWM", "0 kB")) * 1024
    )


def _kib(text: str) -> int:
    return int(text.split(maxsplit=1)[0])


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(OSError):
            self.peak = max(self.peak, proc_stat(self.pid).rss_bytes)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)


# -- Prometheus text -------------------------------------------------------------------------


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of the metric `name` (counters under their `_total` name)."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples(text, name)
        if all(sample_labels.get(key) == want for key, want in labels.items())
    )


def apiserver_metrics(api: k8s_client.ApiClient) -> str:
    response = api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    return bytes(response[0].data).decode()


# -- CloudTenants, watched -------------------------------------------------------------------


@dataclass
class TenantTracker:
    """Watches CloudTenants and stamps when each became Ready and when its quotas converged.

    Ready: condition Ready=True for the current generation. Converged: Ready, and every
    namespace's quota in the status equals the hards the desired-state code allocates (the
    operator writes quotas at 0 first and raises them once the quota controller caught up).
    """

    api: k8s_client.ApiClient
    ready: dict[str, float] = field(default_factory=dict)
    converged: dict[str, float] = field(default_factory=dict)
    expected: dict[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tenant-tracker")
        self._started = threading.Event()

    def start(self) -> TenantTracker:
        self._thread.start()
        if not self._started.wait(60):
            raise RuntimeError(f"the CloudTenant watch did not start: {self.errors[-3:]}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def expect(self, name: str, hards: Mapping[str, Mapping[str, str]]) -> None:
        with self._lock:
            self.expected[name] = hards
            self.ready.pop(name, None)
            self.converged.pop(name, None)

    def _observe(self, item: Mapping[str, Any], now: float) -> None:
        metadata = item.get("metadata") or {}
        name = str(metadata.get("name"))
        status = item.get("status") or {}
        if status.get("observedGeneration") != metadata.get("generation"):
            return
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if not ready:
            return
        with self._lock:
            if name not in self.expected:
                return
            self.ready.setdefault(name, now)
            if name not in self.converged and _quotas_match(
                self.expected[name], status.get("namespaces") or []
            ):
                self.converged[name] = now

    def _run(self) -> None:
        custom = k8s_client.CustomObjectsApi(self.api)
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = custom.list_cluster_custom_object(
                        constants.GROUP, constants.VERSION, "cloudtenants"
                    )
                    now = time.monotonic()
                    for item in listing.get("items") or []:
                        self._observe(item, now)
                    resource_version = listing["metadata"]["resourceVersion"]
                    self._started.set()
                stream = k8s_watch.Watch()
                for event in stream.stream(
                    custom.list_cluster_custom_object,
                    constants.GROUP,
                    constants.VERSION,
                    "cloudtenants",
                    resource_version=resource_version,
                    timeout_seconds=30,
                ):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    if event["type"] == "ERROR":
                        resource_version = None
                        break
                    item = event["object"]
                    self._observe(item, time.monotonic())
                    resource_version = item["metadata"].get("resourceVersion", resource_version)
            except ApiException as error:
                self.errors.append(str(error)[:200])
                if error.status == 410:
                    resource_version = None
                self._stop.wait(0.2)
            except Exception as error:  # a watch that breaks is resumed
                self.errors.append(repr(error)[:200])
                self._stop.wait(0.2)

    def wait(
        self,
        names: Iterable[str],
        which: str,
        timeout: float,
        on_wait: Callable[[], None] | None = None,
    ) -> dict[str, float]:
        """Block until every name has a `which` ("ready"/"converged") stamp; return them."""
        wanted = list(names)
        stamps = self.ready if which == "ready" else self.converged
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                missing = [name for name in wanted if name not in stamps]
                if not missing:
                    return {name: stamps[name] for name in wanted}
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(missing)} of {len(wanted)} CloudTenants not {which} after "
                    f"{timeout:.0f}s (e.g. {missing[:5]})"
                )
            if on_wait is not None:
                on_wait()
            time.sleep(0.05)


def _quotas_match(
    expected: Mapping[str, Mapping[str, str]], entries: Sequence[Mapping[str, Any]]
) -> bool:
    actual = {
        str(entry.get("name")): (entry.get("quota") or {}).get("hard") or {} for entry in entries
    }
    return all(
        namespace in actual and hards_equal(actual[namespace], hard)
        for namespace, hard in expected.items()
    )


def hards_equal(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """Same resources, equal quantities ("1024Mi" equals "1Gi")."""
    return set(left) == set(right) and all(
        quantity.equal(str(left[key]), str(right[key])) for key in left
    )
