"""The benchmark runner: start two local control planes and the operator, run the scenarios,
print a table and write JSON. Everything it starts it stops, on Ctrl-C too.

    .venv/bin/python -m bench --tenants 200 --json .cache/bench/results.json

The hub runs the operator; the second control plane takes the floor (the same objects written
directly, no operator) and, in the sub-center scenario, stands for the county site. Each
scenario runs the floor and the operator back to back in the same session.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from bench import floor, probes, report, scenarios
from govcloud.dev import cluster, testing
from govcloud.k8s import client

REPO_ROOT = testing.REPO_ROOT
STATE_ROOT = REPO_ROOT / ".cache" / "clusters"
OUTPUT_ROOT = REPO_ROOT / ".cache" / "bench"
ALL_SCENARIOS = (
    "burst",
    "steady",
    "memory",
    "single",
    "drift",
    "metering",
    "metrics",
    "subcenter",
    "migration",
)


@dataclass
class Options:
    tenants: int = 200
    scenarios: tuple[str, ...] = ALL_SCENARIOS
    json_path: Path = OUTPUT_ROOT / "results.json"
    workers: int = 8
    resync_seconds: float = 60.0
    trials: int = 20
    metering_interval: float = 15.0
    metering_ticks: int = 3
    subcenter_tenants: int = 100
    migration_objects: int = 100
    quiet_seconds: float = 12.0
    profile: bool = False


@dataclass
class Session:
    """Two control planes, the operator on the hub, API clients and the CloudTenant watch."""

    options: Options
    log: Callable[[str], None] = print
    hub: probes.BenchControlPlane | None = None
    second: probes.BenchControlPlane | None = None
    operator: testing.OperatorProcess | None = None
    tracker: probes.TenantTracker | None = None
    hub_api: k8s_client.ApiClient | None = None
    driver: client.Cluster = field(init=False)
    floor: client.Cluster = field(init=False)
    results: dict[str, Any] = field(default_factory=dict)
    rows: list[report.Row] = field(default_factory=list)
    onboarded: list[str] = field(default_factory=list)
    out_dir: Path = OUTPUT_ROOT
    _keepers: list[threading.Thread] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        cluster.sweep_dead_sessions(STATE_ROOT, "bench-")
        pid = os.getpid()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.hub = probes.BenchControlPlane(
            name=f"bench-hub-{pid}", state_root=STATE_ROOT, log=lambda _: None
        )
        self.second = probes.BenchControlPlane(
            name=f"bench-second-{pid}",
            state_root=STATE_ROOT,
            log=lambda _: None,
            # As the sub-center site it must hold every placed tenant's quota (placement
            # refuses a tenant whose cpu/memory/pods do not fit the nodes' allocatable).
            kwok_nodes=scenarios.site_nodes(self.options)
            if "subcenter" in self.options.scenarios
            else 1,
        )
        began = time.monotonic()
        # Both clusters start at once, each from a thread that lives as long as the session:
        # the launcher ties every component to the thread that spawned it (PR_SET_PDEATHSIG
        # fires when that thread ends), so a finished pool thread would kill its cluster.
        errors: list[BaseException] = []
        ready = [threading.Event(), threading.Event()]
        for plane, started in zip((self.hub, self.second), ready, strict=True):
            keeper = threading.Thread(
                target=self._keep, args=(plane, started, errors), name=f"keep-{plane.name}"
            )
            keeper.start()
            self._keepers.append(keeper)
        for started in ready:
            started.wait()
        if errors:
            raise errors[0]
        self.log(f"control planes up in {time.monotonic() - began:.1f}s")
        for plane in (self.hub, self.second):
            testing.Kubectl(plane.kubeconfig).apply_crds()
        self.hub_api, self.driver = floor.connect(str(self.hub.kubeconfig), "govcloud-bench/driver")
        _, self.floor = floor.connect(str(self.second.kubeconfig), "govcloud-bench/floor")
        # API discovery is paid once, before anything is timed (the operator pays it at start).
        floor.warm(self.driver)
        floor.warm(self.floor)
        self.operator = testing.OperatorProcess(
            self.hub.kubeconfig,
            self.out_dir / f"operator-{pid}.log",
            env={
                "GOVCLOUD_RESYNC_SECONDS": str(self.options.resync_seconds),
                "GOVCLOUD_PLATFORM_NAMESPACES": ",".join(floor.PLATFORM_NAMESPACES),
                "GOVCLOUD_WORKERS": str(self.options.workers),
                "GOVCLOUD_METERING_INTERVAL_SECONDS": str(self.options.metering_interval),
            },
        ).start()
        self.tracker = probes.TenantTracker(self.hub_api).start()
        self.log(f"operator pid {self.operator_pid} serving /metrics")

    def _keep(
        self,
        plane: probes.BenchControlPlane,
        started: threading.Event,
        errors: list[BaseException],
    ) -> None:
        try:
            plane.start()
        except BaseException as error:
            errors.append(error)
            started.set()
            return
        started.set()
        self._released.wait()

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.stop()
        if self.operator is not None:
            self.operator.stop()
        for plane in (self.hub, self.second):
            if plane is not None:
                plane.stop()
                shutil.rmtree(plane.state_dir / "etcd", ignore_errors=True)
        self._released.set()
        for keeper in self._keepers:
            keeper.join(30)

    # -- helpers for scenarios -------------------------------------------------------------

    @property
    def operator_pid(self) -> int:
        assert self.operator is not None
        assert self.operator.process is not None
        return self.operator.process.pid

    def operator_alive(self) -> None:
        assert self.operator is not None
        assert self.operator.process is not None
        if self.operator.process.poll() is not None:
            raise RuntimeError(f"the operator exited:\n{self.operator.log_tail()}")

    def metrics_text(self) -> str:
        assert self.operator is not None
        return self.operator.metrics()

    def add(
        self,
        scenario: str,
        metric: str,
        operator: float | None,
        floor_value: float | None = None,
        unit: str = "s",
    ) -> None:
        self.rows.append(report.Row(scenario, metric, operator, floor_value, unit))

    @contextlib.contextmanager
    def profiled(self, label: str, seconds: float) -> Iterator[dict[str, Any]]:
        """py-spy the operator for `seconds` (if --profile); the summary lands in the dict."""
        found: dict[str, Any] = {}
        if not self.options.profile or shutil.which("py-spy", path=_venv_bin()) is None:
            yield found
            return
        raw = self.out_dir / f"profile-{label}.txt"
        command = [
            shutil.which("py-spy", path=_venv_bin()) or "py-spy",
            "record",
            "--pid",
            str(self.operator_pid),
            "--duration",
            str(max(1, int(seconds))),
            "--rate",
            "50",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
            "--threads",
        ]
        recorder = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        try:
            yield found
        finally:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
            if raw.exists():
                found.update(report.profile_summary(raw.read_text()))
                found["raw"] = str(raw)


def _venv_bin() -> str:
    return str(Path(sys.executable).parent)


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(meminfo[0].split()[1])
    with contextlib.suppress(OSError):
        load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "loadavg_at_start": [round(value, 2) for value in load],
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor()


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=200, help="N for the burst (50, 200, 1000)")
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}",
    )
    parser.add_argument("--json", type=Path, default=OUTPUT_ROOT / "results.json")
    parser.add_argument("--workers", type=int, default=8, help="operator workers = floor threads")
    parser.add_argument("--resync-seconds", type=float, default=60.0)
    parser.add_argument("--trials", type=int, default=20, help="single-tenant and drift trials")
    parser.add_argument("--metering-interval", type=float, default=15.0)
    parser.add_argument("--metering-ticks", type=int, default=3)
    parser.add_argument("--subcenter-tenants", type=int, default=100)
    parser.add_argument("--migration-objects", type=int, default=100)
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=12.0,
        help="onboarding has settled once the operator wrote nothing for this long",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the operator")
    args = parser.parse_args(argv)
    chosen = tuple(item.strip() for item in args.scenarios.split(",") if item.strip())
    unknown = [item for item in chosen if item not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {','.join(ALL_SCENARIOS)}")
    return Options(
        tenants=args.tenants,
        scenarios=tuple(item for item in ALL_SCENARIOS if item in chosen),
        json_path=args.json,
        workers=args.workers,
        resync_seconds=args.resync_seconds,
        trials=args.trials,
        metering_interval=args.metering_interval,
        metering_ticks=args.metering_ticks,
        subcenter_tenants=args.subcenter_tenants,
        migration_objects=args.migration_objects,
        quiet_seconds=args.quiet_seconds,
        profile=args.profile,
    )


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write_json(path: Path, document: dict[str, Any], session: Session, began: float) -> None:
    document["wall_seconds"] = round(time.monotonic() - began, 1)
    document["table"] = [row.as_dict() for row in session.rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    session = Session(options, log=lambda line: print(f"[bench] {line}", flush=True))
    document: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(options).items()
        },
        "scenarios": session.results,
        "errors": {},
    }
    began = time.monotonic()
    try:
        session.start()
        for name in options.scenarios:
            session.log(f"scenario {name} ...")
            scenario_began = time.monotonic()
            try:
                scenarios.RUN[name](session)
            except (TimeoutError, AssertionError, RuntimeError, OSError, ApiException) as error:
                document["errors"][name] = str(error)[:2000]
                session.log(f"scenario {name} failed: {error}")
                session.operator_alive()
            session.log(f"scenario {name} done in {time.monotonic() - scenario_began:.1f}s")
            write_json(options.json_path, document, session, began)  # partial results survive
    except KeyboardInterrupt:
        session.log("interrupted: stopping everything this run started")
        document["errors"]["interrupted"] = True
        raise
    finally:
        session.close()
        write_json(options.json_path, document, session, began)
        print(report.table(session.rows))
        print(f"[bench] JSON written to {options.json_path}")
    return 1 if document["errors"] else 0
