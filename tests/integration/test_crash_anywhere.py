"""Crash anywhere (issue 13, item 1): the operator SIGKILLed at seeded random points while it
onboards tenants, rebalances quota, places tenants on a site, meters and closes a month, and
runs a migration; restarted each time; every promise checked after each restart and, through
watches of every ResourceQuota and Deployment version, continuously in between.

`GOVCLOUD_CRASH_SEED` replays a run (the seed is printed, and named in every failure);
`GOVCLOUD_CRASH_KILLS` sets the number of kill points (default 30; `make soak` sets more).
"""

from __future__ import annotations

import datetime
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import _crash_helpers as crash
import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
import test_billing as billing
import test_migration as mig
from _billing_helpers import RATE_CARD

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

Manifest = dict[str, Any]

SEED_ENV, KILLS_ENV = "GOVCLOUD_CRASH_SEED", "GOVCLOUD_CRASH_KILLS"
DEFAULT_KILLS = 30
# The kill lands this long after the operator serves again (or after the test's own change):
# its start-up sweep, a pass, a metering tick or a migration step is then in flight.
KILL_DELAY = (0.1, 1.4)
SETTLE_EVERY = 10  # every so many kills, everything must converge before the next one
SETTLE_TIMEOUT = 120.0
QUOTA = {"requests.cpu": "2", "requests.memory": "4Gi", "pods": "12"}
BILLED_CPU = Decimal("0.3")  # the metered tenant's three pods of 100m, constant all run long
MAX_PLACED = 8  # the site's one kwok node has 32 CPUs; each placed tenant is granted 2
LOADS = 3  # 3 x 2 x 200m of the split tenant's 2 CPUs: each fits whatever the split (no slivers)
TZ = billing.TZ


@pytest.fixture(scope="module")
def crashing(
    hub: cluster.ControlPlane, operator: testing.OperatorProcess
) -> Iterator[crash.WarmOperator]:
    """The session's operator paused; this module's own, metering every second and writing
    every report every tick (so kills land in metering writes too)."""
    operator.stop()
    process = crash.WarmOperator(
        hub.kubeconfig,
        testing.REPO_ROOT / ".cache" / "logs" / f"operator-crash-{os.getpid()}.log",
        env={
            "GOVCLOUD_RESYNC_SECONDS": "5",
            "GOVCLOUD_PLATFORM_NAMESPACES": "monitoring",
            "GOVCLOUD_METERING_INTERVAL_SECONDS": "1",
            "GOVCLOUD_METERING_CHECKPOINT_SECONDS": "0",
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        operator.start()


@pytest.fixture
def site(
    kubectl: testing.Kubectl,
    crashing: crash.WarmOperator,
    subcenter: cluster.ControlPlane,
    system_namespace: str,
) -> Iterator[str]:
    registry = sc.Sites(kubectl)
    name = registry.create(helpers.unique("crash-site"), sc.kubeconfig_of(subcenter))
    try:
        registry.wait_ready(name, timeout=60)
        yield name
    finally:
        if crashing.process is None or crashing.process.poll() is not None:
            crashing.start()  # a failure while it was down: its finalizers need it
        registry.cleanup()


@dataclass
class Run:
    """One seeded run: what it made, what it expects, and the watches that check it."""

    kubectl: testing.Kubectl
    site_kubectl: testing.Kubectl
    operator: crash.WarmOperator
    site: str
    hub: cluster.ControlPlane
    subcenter: cluster.ControlPlane
    seed: int
    kill_count: int
    rng: random.Random = field(init=False)
    tally: crash.Tally = field(init=False)
    tenants: sc.PlacedTenants = field(init=False)
    hub_quotas: crash.QuotaLedger = field(default_factory=lambda: crash.QuotaLedger("hub"))
    site_quotas: crash.QuotaLedger = field(default_factory=lambda: crash.QuotaLedger("site"))
    replicas: crash.ReplicaLedger = field(default_factory=crash.ReplicaLedger)
    watches: list[crash.StreamWatch] = field(default_factory=list)
    audits: list[crash.AuditTail] = field(default_factory=list)
    namespaces: dict[str, set[str]] = field(default_factory=dict)  # tenant -> namespaces
    placed: set[str] = field(default_factory=set)
    loads: list[tuple[str, str]] = field(default_factory=list)  # (namespace, deployment)
    bill: str = ""
    split: str = ""
    mover: str = ""
    legacy: str = ""
    plan: str = ""
    closing: str = ""  # last month's report, planted open
    closed_version: str = ""
    billed: tuple[Decimal, str] = (Decimal(0), "")
    idle: set[str] = field(default_factory=set)  # tenants that never run a pod

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.tally = crash.Tally(self.seed)
        self.tenants = sc.PlacedTenants(self.kubectl, self.site_kubectl)
        self.audits = [
            crash.AuditTail(self.hub.audit_log),
            crash.AuditTail(self.subcenter.audit_log),
        ]

    def fail(self, message: str) -> None:
        pytest.fail(f"{SEED_ENV}={self.seed}: {message}", pytrace=False)

    # -- what the operator is asked to do -------------------------------------------------

    def start_watches(self) -> None:
        self.watches = [
            crash.StreamWatch(
                self.kubectl, "resourcequotas", self.hub_quotas.on_event, crash.MANAGED
            ),
            crash.StreamWatch(
                self.site_kubectl, "resourcequotas", self.site_quotas.on_event, crash.MANAGED
            ),
            crash.StreamWatch(self.kubectl, "deployments", self.replicas.on_event),
        ]

    def onboard(self, prefix: str, shorts: tuple[str, ...] = ("a", "b", "c")) -> str:
        name = helpers.unique(prefix)
        self.hub_quotas.expect(name, QUOTA)
        self.namespaces[name] = {f"{name}-{short}" for short in shorts}
        self.tenants.create(name, namespaces=shorts, level=2, quota=QUOTA)
        return name

    def place(self) -> str:
        name = helpers.unique("crash-site-t")
        self.site_quotas.expect(name, QUOTA)
        self.namespaces[name] = {f"{name}-apps", f"{name}-data"}
        self.placed.add(name)
        self.idle.add(name)
        self.tenants.place(name, self.site, namespaces=("apps", "data"), quota=QUOTA)
        return name

    def grow(self) -> None:
        """One more namespace for a hub tenant: a new share carved out of the others' slack."""
        choices = sorted(n for n in self.namespaces if n not in self.placed and n != self.mover)
        name = self.rng.choice(choices)
        shorts = sorted(ns.removeprefix(f"{name}-") for ns in self.namespaces[name])
        extra = f"x{len(shorts)}"
        self.namespaces[name].add(f"{name}-{extra}")
        self.tenants.patch(name, {"namespaces": [{"name": s} for s in [*shorts, extra]]})

    def edit(self) -> None:
        """A new generation of a tenant (its display name): one pass that writes its status."""
        name = self.rng.choice(sorted(self.namespaces))
        self.tenants.patch(name, {"displayName": f"测试单位 {name} {self.rng.randrange(10**6)}"})

    def load(self) -> None:
        """Two 200m replicas in one namespace of the split tenant: the split has to move."""
        namespace = self.rng.choice(sorted(self.namespaces[self.split]))
        name = f"load-{len(self.loads)}"
        deployment = helpers.deployment(name, namespace, 2)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        amounts = {"cpu": "200m", "memory": "64Mi"}
        container["resources"] = {"requests": amounts, "limits": amounts}
        self.kubectl.apply(deployment)
        self.loads.append((namespace, name))

    def migrate(self) -> None:
        self.plan = helpers.unique("mig")
        target = f"{self.mover}-apps"
        spec: Manifest = {
            "app": {"name": "不动产登记系统", "securityLevel": 2},
            "source": {
                "namespace": self.legacy,
                "kinds": ["ConfigMap", "Secret", "Service", "Deployment", "CronJob"],
            },
            "targetNamespace": target,
            "deadline": (
                datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=60)
            ).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "verifyTimeoutSeconds": 120,
            "approvalsRequired": [],
        }
        self.kubectl.apply(mig.plan_manifest(self.plan, target, spec))

    def plant_open_report(self) -> None:
        """Last month's report as an earlier run left it, open (the operator is down)."""
        previous = billing.current_period().previous()
        self.closing = f"{self.bill}-{previous.name}"
        last_minute = previous.end(TZ) - datetime.timedelta(seconds=60)
        billing._leave_open_report(self.kubectl, self.bill, previous, self.closing, last_minute)

    # -- set-up --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Tenants the kills will find busy: metered, split, migrating; then the rate card."""
        self.start_watches()
        token = uuid.uuid4().hex[:5]
        self.bill = f"crash-{token}"
        self.hub_quotas.expect(self.bill, QUOTA)
        self.namespaces[self.bill] = {f"{self.bill}-apps"}
        self.tenants.create(self.bill, namespaces=("apps",), level=2, quota=QUOTA)
        self.split = split = f"crash-split-{token}"
        self.hub_quotas.expect(split, QUOTA)
        self.namespaces[split] = {f"{split}-a", f"{split}-b", f"{split}-c"}
        self.tenants.create(split, namespaces=("a", "b", "c"), level=2, quota=QUOTA)
        self.mover = self.onboard("crash-move", ("apps",))  # metered once the copies run
        self.legacy = helpers.unique("crash-legacy")
        self.tenants.track_namespace(self.legacy)
        grant = {"govcloud.io/migration-grant": self.mover}
        self.kubectl.apply(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": self.legacy, "annotations": grant}}
        )  # fmt: skip
        for manifest in mig.legacy_app(self.legacy, 2, helpers.pod_spec()):
            self.kubectl.apply(manifest)
        self.replicas.expect(self.legacy, f"{self.mover}-apps", "permits")
        for name in (self.bill, split, self.mover):
            helpers.wait_phase(self.kubectl, name, "Active", timeout=90)
        namespace = f"{self.bill}-apps"
        for index in range(3):
            body = billing.pod(f"p{index}")
            body["spec"]["containers"][0]["resources"]["limits"] = {"cpu": "100m", "memory": "64Mi"}
            self.kubectl("apply", "-n", namespace, "-f", "-", stdin=testing.json_text(body))
        testing.eventually(
            lambda: self._used_cpu(namespace) == BILLED_CPU, timeout=60, what="quota used 300m"
        )
        mig.wait_available(self.kubectl, "permits", self.legacy)
        self.kubectl.apply(RATE_CARD)
        testing.eventually(
            lambda: (
                (self._report(self._current_report()).get("status") or {}).get("samples", 0) >= 2
            ),
            timeout=60,
            what="the metered tenant's first ticks",
        )

    def _used_cpu(self, namespace: str) -> Decimal:
        found = self.kubectl.get("resourcequota", "govcloud-quota", namespace) or {}
        return crash.amount(((found.get("status") or {}).get("used") or {}).get("requests.cpu"))

    def _current_report(self) -> str:
        return f"{self.bill}-{billing.current_period().name}"

    def _report(self, name: str) -> Manifest:
        return self.kubectl.get("usagereport", name) or {}

    # -- the kill loop --------------------------------------------------------------------

    def schedule(self) -> dict[int, list[str]]:
        """Which of the test's own changes come before which kill (seeded), in proportion to
        the kills; the migration starts in the first third, so most of its stages are killed
        into. A kill with no change of the test's own lands in the restart's sweep or a tick."""
        kills = self.kill_count
        actions = ["onboard"] * max(1, kills // 6) + ["place"] * min(
            MAX_PLACED, max(1, kills // 10)
        )
        actions += ["grow"] * max(1, kills // 15) + ["load"] * LOADS + ["edit"] * max(1, kills // 2)
        actions.append("close")
        self.rng.shuffle(actions)
        planned: dict[int, list[str]] = {
            self.rng.randrange(max(1, self.kill_count // 3)): ["migrate"]
        }
        for index, action in enumerate(actions):
            at = index * self.kill_count // len(actions)
            planned.setdefault(at, []).append(action)
        return planned

    def cycle(self, index: int, actions: list[str]) -> None:
        while_down = [action for action in actions if action == "close"]
        for action in actions:
            if action not in while_down:
                self.act(action)
        time.sleep(self.rng.uniform(*KILL_DELAY))  # the seeded kill point; the operator runs on
        killed_at = datetime.datetime.now(datetime.UTC).timestamp()
        self.operator.kill()
        # Read once it is dead: what it had not finished stays so (nothing else writes it).
        unfinished = self.unfinished()
        self.tally.kills += 1
        self.tally.mid_work += bool(unfinished)
        last_write = max(audit.catch_up() for audit in self.audits)
        wrote = 0 <= killed_at - last_write <= 1.0
        self.tally.mid_write += wrote
        self.tally.busy += bool(unfinished) or wrote
        for action in while_down:
            self.act(action)
        self.check_snapshot(f"after kill {index + 1}")
        self.operator.start()
        self.tally.restarts += 1

    def act(self, action: str) -> None:
        if action == "onboard":
            self.idle.add(self.onboard("crash-t"))
        elif action == "place":
            self.place()
        elif action == "grow":
            self.grow()
        elif action == "load":
            self.load()
        elif action == "edit":
            self.edit()
        elif action == "migrate":
            self.migrate()
        elif action == "close":
            self.plant_open_report()

    def unfinished(self) -> list[str]:
        """What the operator had not finished when the kill came, as the hub shows it."""
        waiting = [
            f"tenant {item['metadata']['name']}"
            for item in self.kubectl.json("get", "cloudtenants")["items"]
            if item["metadata"]["name"] in self.namespaces and not _ready(item)
        ]
        if self.plan:
            plan = self.kubectl.get("migrationplan", self.plan, f"{self.mover}-apps") or {}
            if mig.phase_of(plan) != "Completed":
                waiting.append(f"plan {mig.phase_of(plan)}")
        if self.closing and not (self._report(self.closing).get("status") or {}).get("closed"):
            waiting.append("month close")
        for namespace, name in self.loads:
            found = self.kubectl.get("deployment", name, namespace) or {}
            if int((found.get("status") or {}).get("readyReplicas") or 0) < 2:
                waiting.append(f"load {namespace}/{name}")
        return waiting

    # -- invariants ------------------------------------------------------------------------

    def check_snapshot(self, when: str) -> None:
        """No orphaned or duplicate object; metering never went back; a closed month stays."""
        for watch in self.watches:
            watch.check()
        problems = self._misplaced(self.kubectl, hub=True) + self._misplaced(
            self.site_kubectl, hub=False
        )
        problems += self._duplicate_reports() + self._metering_went_back()
        problems += self._extra_replica_sets()
        self.tally.snapshot_checks += 5
        self.tally.violations += [f"{when}: {problem}" for problem in problems]
        ledgers = (
            self.hub_quotas.violations + self.site_quotas.violations + self.replicas.violations
        )
        if problems or ledgers:
            self.fail(f"{when}: {problems + ledgers}")

    def _misplaced(self, kubectl: testing.Kubectl, *, hub: bool) -> list[str]:
        """Tenant namespaces and quotas the run's tenants should not have there, or twice."""
        ours = {name for name in self.namespaces if (name in self.placed) != hub}
        problems: list[str] = []
        for item in crash.items(kubectl, "namespaces", crash.TENANT_LABEL):
            tenant = item["metadata"]["labels"][crash.TENANT_LABEL]
            name = item["metadata"]["name"]
            if tenant in self.namespaces and (
                tenant not in ours or name not in self.namespaces[tenant]
            ):
                problems.append(f"namespace {name} of {tenant} is orphaned")
        seen: set[str] = set()
        for item in crash.items(kubectl, "resourcequotas", crash.MANAGED):
            tenant = (item["metadata"].get("labels") or {}).get(crash.TENANT_LABEL, "")
            namespace = item["metadata"]["namespace"]
            if tenant in self.namespaces and namespace not in self.namespaces[tenant]:
                problems.append(f"quota {namespace}/{item['metadata']['name']} is orphaned")
            if namespace in seen:
                problems.append(f"two managed quotas in {namespace}")
            seen.add(namespace)
        return problems

    def _duplicate_reports(self) -> list[str]:
        keys = [
            (item["spec"]["tenant"], item["spec"]["period"])
            for item in crash.items(self.kubectl, "usagereports")
            if item["spec"]["tenant"] in self.namespaces
        ]
        return [f"two reports for {key}" for key in set(keys) if keys.count(key) > 1]

    def _metering_went_back(self) -> list[str]:
        problems: list[str] = []
        found = self._report(self._current_report())
        hours = Decimal(billing.line(found, "requests.cpu").get("requestedHours") or 0)
        last = str((found.get("status") or {}).get("lastSampleTime") or "")
        if hours < self.billed[0] or last < self.billed[1]:
            problems.append(f"metering went back: {self.billed} -> {(hours, last)}")
        self.billed = (hours, last)
        if self.closing:
            closed = self._report(self.closing)
            version = closed["metadata"]["resourceVersion"]
            if self.closed_version and version != self.closed_version:
                problems.append(f"the closed report {self.closing} changed")
            if (closed.get("status") or {}).get("closed"):
                self.closed_version = version
        return problems

    def _extra_replica_sets(self) -> list[str]:
        if not self.plan:
            return []
        target = f"{self.mover}-apps"
        names = [
            item["metadata"]["name"].rsplit("-", 1)[0]
            for item in self.kubectl.json("get", "replicasets", "-n", target)["items"]
        ]
        return [f"{target}: ReplicaSets {names}" for name in set(names) if names.count(name) > 1]

    # -- convergence -----------------------------------------------------------------------

    def settle(self, when: str) -> None:
        """Everything the run asked for is done, without another kill."""
        try:
            for name in sorted(self.namespaces):
                helpers.wait_tenant(
                    self.kubectl, name, _ready, "Ready at its generation", timeout=SETTLE_TIMEOUT
                )
            if self.plan:
                mig.wait_phase(
                    self.kubectl,
                    f"{self.mover}-apps",
                    self.plan,
                    "Completed",
                    timeout=SETTLE_TIMEOUT,
                )
            if self.closing:
                testing.eventually(
                    lambda: (self._report(self.closing).get("status") or {}).get("closed"),
                    timeout=SETTLE_TIMEOUT,
                    what="last month's report closed",
                )
            for namespace, name in self.loads:
                mig.wait_available(self.kubectl, name, namespace, timeout=SETTLE_TIMEOUT)
        except testing.WaitTimeoutError as error:
            self.fail(f"{when}: not converged: {error}")
        self.check_snapshot(when)

    def check_everything_in_place(self) -> None:
        for name, expected in self.namespaces.items():
            kubectl = self.site_kubectl if name in self.placed else self.kubectl
            quotas = crash.items(kubectl, "resourcequotas", f"{crash.TENANT_LABEL}={name}")
            held = sorted(item["metadata"]["namespace"] for item in quotas)
            if held != sorted(expected):
                self.fail(f"tenant {name}: quotas in {held}, expected {sorted(expected)}")
        self.tally.snapshot_checks += len(self.namespaces)

    def check_billing(self) -> None:
        """Constant usage, so the report must hold exactly usage x metered time: no gap lost or
        billed twice, whatever the kills (gap rule, docs/billing.md)."""
        found = self._report(self._current_report())
        status = found["status"]
        first, last = (_stamp(status[key]) for key in ("firstSampleTime", "lastSampleTime"))
        elapsed = Decimal(str((last - first).total_seconds()))
        got = Decimal(billing.line(found, "requests.cpu")["requestedHours"])
        expected = BILLED_CPU * elapsed / 3600
        if abs(got - expected) > Decimal("1e-7"):
            self.fail(f"billed {got} cpu-hours for {elapsed}s at 300m, expected {expected}")
        if Decimal(status.get("gapSeconds") or 0) <= 0:
            self.fail("the kills left no gap in the report: the gap rule was never exercised")
        for name in self.idle:
            report = self._report(f"{name}-{billing.current_period().name}")
            hours = [
                Decimal(i["requestedHours"])
                for i in (report.get("status") or {}).get("resources") or []
            ]
            if any(hours):
                self.fail(f"tenant {name} ran nothing, yet was billed {hours}")
        self.tally.snapshot_checks += 2 + len(self.idle)

    def check_month_closed_once(self) -> None:
        if not self.closing:
            return
        closed = self._report(self.closing)
        status = closed["status"]
        previous = billing.current_period().previous()
        cpu = Decimal(billing.line(closed, "requests.cpu")["requestedHours"])
        if cpu != Decimal("0.005") or status["samples"] != 8:
            self.fail(f"the closed month accrued {cpu} cpu-hours in {status['samples']} samples")
        if _stamp(status["lastSampleTime"]) != previous.end(TZ):
            self.fail(f"the closed month ends at {status['lastSampleTime']}")
        events = self.kubectl.json(
            "get", "events", "-A", "--field-selector",
            f"involvedObject.name={self.closing},reason=ReportClosed",
        )["items"]  # fmt: skip
        if sum(item.get("count") or 1 for item in events) > 1:
            self.fail(f"the month was announced closed {len(events)} times")
        self.tally.snapshot_checks += 3

    def check_migration(self) -> None:
        plan = mig.get_plan(self.kubectl, f"{self.mover}-apps", self.plan)
        moved = mig.planted(self.kubectl, f"{self.mover}-apps", plan)
        expected = sorted(
            ["ConfigMap/permits-config", "CronJob/permits-nightly", "Deployment/permits",
             "Secret/permits-db", "Service/permits"]
        )  # fmt: skip
        if moved != expected:
            self.fail(f"the migration planted {moved}, expected {expected}")
        if mig.replicas(self.kubectl, self.legacy) != (0, "2"):
            self.fail(f"the source is {mig.replicas(self.kubectl, self.legacy)}, expected (0, '2')")
        self.tally.snapshot_checks += 2

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()

    def cleanup(self) -> None:
        if self.operator.process is None or self.operator.process.poll() is not None:
            self.operator.start()
        if self.plan:
            self.kubectl.run("delete", "migrationplan", self.plan, "-n", f"{self.mover}-apps")
        try:
            self.tenants.cleanup()
        finally:
            self.kubectl.run("delete", "ratecard", "default", "--timeout=60s")
            for name in self.namespaces:
                self.kubectl.run("delete", "usagereports", "-l", f"{crash.TENANT_LABEL}={name}")


def _ready(tenant: Manifest) -> bool:
    return helpers.current(tenant) and helpers.condition(tenant, "Ready").get("status") == "True"


def _stamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def run(
    hub: cluster.ControlPlane,
    subcenter: cluster.ControlPlane,
    kubectl: testing.Kubectl,
    site_kubectl: testing.Kubectl,
    crashing: crash.WarmOperator,
    site: str,
) -> Iterator[Run]:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    kills = int(os.environ.get(KILLS_ENV) or DEFAULT_KILLS)
    print(f"{SEED_ENV}={seed} {KILLS_ENV}={kills}")
    made = Run(kubectl, site_kubectl, crashing, site, hub, subcenter, seed, kills)
    try:
        yield made
    finally:
        made.stop()
        made.cleanup()


def test_killed_anywhere_the_operator_keeps_every_promise(run: Run) -> None:
    run.prepare()
    planned = run.schedule()
    for index in range(run.kill_count):
        run.cycle(index, planned.get(index, []))
        if (index + 1) % SETTLE_EVERY == 0:
            run.settle(f"settled after kill {index + 1}")
    run.settle("at the end")
    run.check_everything_in_place()
    run.check_billing()
    run.check_month_closed_once()
    run.check_migration()
    ledgers = (run.hub_quotas, run.site_quotas, run.replicas)
    print(run.tally.line(*ledgers))
    print(f"quota versions watched: hub {run.hub_quotas.versions}, site {run.site_quotas.versions}")
    assert run.tally.kills == run.kill_count
    # The kills land in work: most while the hub shows work unfinished or within a second of
    # an operator write (the audit log's own timestamps), some while work is unfinished (seen:
    # 4-9 of 30 in `make test`, where metering writes every second; 69 of 100 in `make soak`).
    assert run.tally.busy >= run.kill_count // 2, run.tally.line(*ledgers)
    assert run.tally.mid_work >= run.kill_count // 10, run.tally.line(*ledgers)
    assert run.hub_quotas.checks
    assert run.site_quotas.checks
    assert run.replicas.checks
    assert not run.tally.violations, run.tally.line(*ledgers)


# -- the checkers themselves: each flags what it is there to flag ---------------------------


def quota_version(namespace: str, version: int, hard: str, used: str = "0") -> Manifest:
    return {
        "metadata": {
            "name": "govcloud-quota",
            "namespace": namespace,
            "resourceVersion": str(version),
            "labels": {crash.TENANT_LABEL: "t"},
        },
        "spec": {"hard": {"requests.cpu": hard}},
        "status": {"used": {"requests.cpu": used}},
    }


def test_the_quota_ledger_flags_a_moment_when_the_hards_sum_above_the_quota() -> None:
    ledger = crash.QuotaLedger("hub")
    ledger.expect("t", {"requests.cpu": "2"})
    ledger.on_event("ADDED", quota_version("t-a", 1, "1"))
    ledger.on_event("ADDED", quota_version("t-b", 2, "1"))
    ledger.on_event("MODIFIED", quota_version("t-a", 3, "500m"))  # lower first, then raise
    ledger.on_event("MODIFIED", quota_version("t-b", 4, "1500m"))
    assert ledger.violations == []
    ledger.on_event("MODIFIED", quota_version("t-a", 5, "600m"))  # raised before lowering
    assert len(ledger.violations) == 1
    ledger.on_event("MODIFIED", quota_version("t-a", 6, "100m", used="700m"))  # used counts
    assert len(ledger.violations) == 2


def deployment_version(namespace: str, replicas: int, available: int) -> Manifest:
    return {
        "metadata": {"name": "permits", "namespace": namespace, "resourceVersion": "1"},
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available},
    }


def test_the_replica_ledger_flags_an_app_down_on_both_sides() -> None:
    ledger = crash.ReplicaLedger()
    ledger.expect("src", "dst", "permits")
    ledger.on_event("ADDED", deployment_version("src", 2, 2))
    ledger.on_event("ADDED", deployment_version("dst", 2, 0))
    ledger.on_event("MODIFIED", deployment_version("dst", 2, 2))
    ledger.on_event("MODIFIED", deployment_version("src", 0, 2))  # cut over: the copy runs
    assert ledger.violations == []
    ledger.on_event("MODIFIED", deployment_version("dst", 0, 0))
    assert len(ledger.violations) == 1


def test_the_replica_ledger_flags_a_cutover_before_the_copy_is_available() -> None:
    ledger = crash.ReplicaLedger()
    ledger.expect("src", "dst", "permits")
    ledger.on_event("ADDED", deployment_version("src", 2, 2))
    ledger.on_event("ADDED", deployment_version("dst", 2, 0))
    ledger.on_event("MODIFIED", deployment_version("src", 0, 2))
    assert len(ledger.violations) == 1
