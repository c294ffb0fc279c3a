"""The overload check (issue 13, item 11; `make soak` only): a burst of GOVCLOUD_SOAK_TENANTS
(default 1,000) tenants, then a burst of an edit of every one, while /metrics and /healthz are
polled every second and the operator's memory is sampled. Every poll is answered, memory stays
within GOVCLOUD_SOAK_RSS_MIB, and every tenant converges at each generation.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing

pytestmark = [pytest.mark.integration, pytest.mark.soak]

TENANTS = int(os.environ.get("GOVCLOUD_SOAK_TENANTS") or 1000)
RSS_BOUND_MIB = float(os.environ.get("GOVCLOUD_SOAK_RSS_MIB") or 600)
BATCH = 100  # tenants per `kubectl apply`
POLL_TIMEOUT = 5.0  # an endpoint that takes longer counts as not served
CONVERGE_TIMEOUT = 1800.0
QUOTA = {"requests.cpu": "1", "requests.memory": "1Gi"}
SOAK_LABEL = "test.govcloud.io/soak"


@dataclass
class Poller:
    """Polls /metrics and /healthz every second and samples the process's RSS."""

    metrics_url: str
    health_url: str
    pid: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"metrics": [], "health": []})
    failures: list[str] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_TIMEOUT * 3)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for what, url in (("metrics", self.metrics_url), ("health", self.health_url)):
                self._poll(what, url)
            self.rss_mib.append(rss_mib(self.pid))

    def _poll(self, what: str, url: str) -> None:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=POLL_TIMEOUT) as response:
                response.read()
                if response.status != 200:
                    self.failures.append(f"{what}: HTTP {response.status}")
        except OSError as error:
            self.failures.append(f"{what}: {error}")
            return
        self.latencies[what].append(time.monotonic() - started)

    def summary(self) -> str:
        def p50(values: list[float]) -> str:
            return f"{statistics.median(values) * 1000:.0f} ms" if values else "-"

        metrics, health = self.latencies["metrics"], self.latencies["health"]
        return (
            f"polls: /metrics {len(metrics)} (p50 {p50(metrics)},"
            f" max {max(metrics, default=0) * 1000:.0f} ms),"
            f" /healthz {len(health)} (p50 {p50(health)}),"
            f" failures {len(self.failures)}; RSS max {max(self.rss_mib, default=0):.0f} MiB"
        )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def overloaded(
    hub: cluster.ControlPlane, crds: None, operator: testing.OperatorProcess
) -> Iterator[tuple[testing.OperatorProcess, Poller]]:
    """The session's operator paused; this test's own, with its liveness probe served."""
    operator.stop()
    health_port = testing.free_port()
    process = testing.OperatorProcess(
        hub.kubeconfig,
        testing.REPO_ROOT / ".cache" / "logs" / f"operator-overload-{os.getpid()}.log",
        env={"GOVCLOUD_LIVENESS_PORT": str(health_port), "GOVCLOUD_RESYNC_SECONDS": "300"},
    ).start()
    assert process.process is not None
    poller = Poller(
        f"http://127.0.0.1:{process.metrics_port}/metrics",
        f"http://127.0.0.1:{health_port}/healthz",
        process.process.pid,
    )
    try:
        yield process, poller
    finally:
        poller.stop()
        process.stop()
        operator.start()


def apply_all(kubectl: testing.Kubectl, manifests: list[dict[str, Any]]) -> None:
    for start in range(0, len(manifests), BATCH):
        batch = {"apiVersion": "v1", "kind": "List", "items": manifests[start : start + BATCH]}
        kubectl("apply", "-f", "-", stdin=json.dumps(batch))


def wait_all_current(kubectl: testing.Kubectl, names: set[str], what: str, started: float) -> float:
    """Seconds from `started` until every tenant of `names` is Active at its generation."""

    def done() -> bool:
        items = kubectl.json("get", "cloudtenants")["items"]
        settled = {
            item["metadata"]["name"]
            for item in items
            if helpers.current(item) and helpers.phase(item) == "Active"
        }
        return names <= settled

    testing.eventually(done, timeout=CONVERGE_TIMEOUT, interval=5.0, what=what)
    return time.monotonic() - started


def test_a_burst_of_tenants_and_edits_keeps_metrics_health_and_memory_in_bounds(
    kubectl: testing.Kubectl, overloaded: tuple[testing.OperatorProcess, Poller]
) -> None:
    _process, poller = overloaded
    tenants = helpers.Tenants(kubectl)  # the cleanup of what one delete leaves
    prefix = helpers.unique("soak")
    manifests = [
        helpers.tenant_manifest(f"{prefix}-{index:04d}", level=2, quota=QUOTA)
        for index in range(TENANTS)
    ]
    for manifest in manifests:
        manifest["metadata"]["labels"] = {SOAK_LABEL: prefix}
    names = {manifest["metadata"]["name"] for manifest in manifests}
    poller.start()
    try:
        started = time.monotonic()
        apply_all(kubectl, manifests)
        onboarded = wait_all_current(kubectl, names, f"{TENANTS} tenants Active", started)
        for manifest in manifests:
            manifest["spec"]["displayName"] += " (edited)"
        started = time.monotonic()
        apply_all(kubectl, manifests)
        edited = wait_all_current(kubectl, names, f"{TENANTS} edits converged", started)
        poller.stop()
        print(
            f"\n{TENANTS} tenants: all Active {onboarded:.0f}s after the first was sent,"
            f" all edits converged {edited:.0f}s after the first edit was sent"
        )
        print(poller.summary())
        assert not poller.failures, poller.failures[:10]
        assert poller.latencies["metrics"], poller.summary()
        assert poller.latencies["health"], poller.summary()
        assert max(poller.rss_mib) <= RSS_BOUND_MIB, poller.summary()
    finally:
        poller.stop()
        delete_all(kubectl, tenants, prefix, names)


def delete_all(
    kubectl: testing.Kubectl, tenants: helpers.Tenants, prefix: str, names: set[str]
) -> None:
    """One delete for the whole burst (each carries its confirmation), then the usual cleanup
    of any tenant still there."""
    kubectl.run("delete", "cloudtenants", "-l", f"{SOAK_LABEL}={prefix}", "--wait=false")
    try:
        testing.eventually(
            lambda: (
                not kubectl.json("get", "cloudtenants", "-l", f"{SOAK_LABEL}={prefix}")["items"]
            ),
            timeout=CONVERGE_TIMEOUT,
            interval=5.0,
            what="every soak tenant deleted",
        )
    finally:
        left = kubectl.json("get", "cloudtenants", "-l", f"{SOAK_LABEL}={prefix}")["items"]
        tenants.names.extend(item["metadata"]["name"] for item in left)
        tenants.cleanup()
