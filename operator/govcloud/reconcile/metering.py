"""Metering: one tick accrues every tenant's usage since its report's lastSampleTime.

API cost per tick is O(1) reads whatever the number of tenants: one LIST of CloudTenants and
one LIST of the UsageReports of this and the previous period (by label); usage comes from
the watch-fed `usage.UsageCache`, never from a GET per tenant. Tenants placed on sub-centers
cost one LIST of ResourceQuotas per site (plus the GETs of its SubCenter and kubeconfig
Secret), run on their own threads and bounded in time (`SiteReader`): a site that does not
answer in time neither stalls the tick nor is billed (its tenants' usage is unknown until it
answers). A tenant with neither this month's nor last month's report costs one LIST of its
reports, once, to find what to catch up (`rollover`).

Writes: only the reports that are due (`billing.checkpoint`): a charge or the total moved by
a fen, a line, the tier or the Rated condition changed, the usage changed since the report's
lastSampleTime, a price change or a rate card edit, a tenant being deleted, or the report was
last written a checkpoint ago (`metering_checkpoint_seconds`, default 15 minutes; 0 writes
every tick). So a tick over tenants whose usage holds still writes about tenants x interval /
checkpoint reports, not one per tenant; plus a create at the start of a month and a close at
its end, which are always written. A tenant gone since the last tick has its report written up
to that tick, once.

Nothing lost, nothing counted twice: the increment starts at the report's own
lastSampleTime (a skipped write only makes the next one cover a longer interval; the usage
timeline is trimmed only up to what was written) and every status patch carries the
resourceVersion that was read, so a restarted operator continues where the report says, and
of two replicas racing for the same interval only one patch succeeds (the other gets 409 and
accrues nothing). A closed report is final; the CRD's status rule refuses any later change.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import cloudtenant, ratecard, subcenter, usagereport
from govcloud.billing import accrual, checkpoint, periods, rating, rollover, usage
from govcloud.k8s import cache as caches
from govcloud.k8s import client, clusters
from govcloud.reconcile import conditions, events, placement

log = logging.getLogger(__name__)

KIND = "UsageReport"
LABEL_PERIOD = f"{constants.GROUP}/period"
RATED = "Rated"
PRICED = "Priced"

Manifest = dict[str, Any]


Event = events.Event


@dataclass
class TickResult:
    """What a tick did: events to post (on which object), usage snapshots, trouble."""

    events: list[tuple[Manifest, Event]] = field(default_factory=list)
    usage: dict[str, metrics.UsageSnapshot] = field(default_factory=dict)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable_sites: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def zone(settings: Any) -> Any:
    return periods.zone(getattr(settings, "billing_utc_offset_hours", 8.0))


# -- sub-centers: one bounded LIST of ResourceQuotas per site per tick ----------------------

SITE_READ_TIMEOUT = 5.0  # seconds a tick waits for all its sites together
SITE_RETRY_SECONDS = 2.0  # transient errors of one site read are retried this long
QUOTA_SELECTOR = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY},{constants.LABEL_TENANT}"


class SiteError(RuntimeError):
    """A sub-center's quotas cannot be read (no SubCenter, bad credentials, no answer)."""


@dataclass(frozen=True)
class SiteRead:
    """One read of a site: its quotas as of `at`, or None and why not."""

    site: str
    at: datetime
    quotas: list[usage.Quota] | None
    error: str = ""


def placed_sites(tenants: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Sub-center -> the tenants whose namespaces live there (by status.placement.cluster)."""
    found: dict[str, list[str]] = {}
    for tenant in tenants:
        cluster = placement.current_cluster(dict(tenant))
        if cluster and cluster != cloudtenant.HUB_CLUSTER:
            found.setdefault(cluster, []).append(str(tenant["metadata"]["name"]))
    return found


def quotas_of(items: Iterable[Mapping[str, Any]], tenants: Iterable[str]) -> list[usage.Quota]:
    """The listed ResourceQuotas of `tenants` (others, e.g. released ones, are not theirs)."""
    wanted = set(tenants)
    found = []
    for item in items:
        metadata = item.get("metadata") or {}
        owner = str((metadata.get("labels") or {}).get(constants.LABEL_TENANT) or "")
        if owner not in wanted:
            continue
        status = item.get("status") or {}
        found.append(
            usage.Quota(
                namespace=str(metadata.get("namespace")),
                name=str(metadata.get("name")),
                tenant=owner,
                hard=dict(status.get("hard") or (item.get("spec") or {}).get("hard") or {}),
                used=dict(status.get("used") or {}),
            )
        )
    return found


class SiteReader:
    """Reads every site's ResourceQuotas at once, on its own threads, within a deadline.

    A read still running from an earlier tick is not started again (at most one thread per
    site is ever held by a site that does not answer); its tenants count as unreadable until
    it has finished. A read that answers after the deadline is dropped.
    """

    def __init__(
        self,
        hub: client.Cluster,
        registry: clusters.ClusterRegistry,
        executor: concurrent.futures.Executor,
        timeout: float = SITE_READ_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.executor = executor
        self.timeout = timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, concurrent.futures.Future[list[Manifest]]] = {}

    def read(self, sites: Mapping[str, list[str]]) -> dict[str, SiteRead]:
        found: dict[str, SiteRead] = {}
        started: dict[str, tuple[datetime, concurrent.futures.Future[list[Manifest]]]] = {}
        for site in sorted(sites):
            with self._lock:
                running = self._running.get(site)
                if running is not None and not running.done():
                    found[site] = SiteRead(
                        site, self.clock(), None, "an earlier read has not answered yet"
                    )
                    continue
                at = self.clock()
                future = self.executor.submit(self._list, site)
                self._running[site] = future
            started[site] = (at, future)
        concurrent.futures.wait([future for _, future in started.values()], self.timeout)
        for site, (at, future) in started.items():
            if not future.done():
                found[site] = SiteRead(site, at, None, f"no answer within {self.timeout:g}s")
            elif (error := future.exception()) is not None:
                found[site] = SiteRead(site, at, None, str(error) or type(error).__name__)
            else:
                found[site] = SiteRead(site, at, quotas_of(future.result(), sites[site]))
        return found

    def _list(self, site: str) -> list[Manifest]:
        body = self.hub.get(constants.API_VERSION, "SubCenter", site)
        if body is None:
            raise SiteError(f"SubCenter {site} does not exist")
        try:
            spec = subcenter.SubCenterSpec.model_validate(body.get("spec") or {})
        except pydantic.ValidationError as error:
            raise SiteError(f"SubCenter {site} has an invalid spec") from error
        target = placement.connect(self.hub, self.registry, site, spec)
        if target.cluster is None:
            raise SiteError(target.message)
        # From the site itself, not its cache: what is billed must be what the site says now,
        # and a site that does not answer is not billed (its usage is unknown meanwhile).
        return caches.uncached(target.cluster).list(
            "v1", "ResourceQuota", label_selector=QUOTA_SELECTOR, retry_deadline=SITE_RETRY_SECONDS
        )


def feed_sites(
    cache: usage.UsageCache, reads: Mapping[str, SiteRead], sites: Mapping[str, list[str]]
) -> list[str]:
    """Put what each site read found into the cache; the sites that could not be read."""
    unreadable = []
    for site, read in sorted(reads.items()):
        if read.quotas is None:
            cache.unreachable(sites.get(site, []), read.at)
            unreadable.append(f"{site}: {read.error}")
        else:
            cache.sync_cluster(site, read.quotas, sites.get(site, []), read.at)
    return unreadable


# -- the tick --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every tenant's accrual in one tick shares."""

    hub: client.Cluster
    cache: usage.UsageCache
    table: rating.RateTable
    tz: Any
    now: datetime
    reports: Mapping[str, Manifest]
    result: TickResult
    every: timedelta  # the checkpoint interval
    card_edited: bool  # the rate card changed since the last tick: every report is written


@dataclass(frozen=True)
class Metered:
    """One tenant's current report after a tick: accrued, and as written (the same if written)."""

    accrued: accrual.Report
    written: accrual.Report


def tick(
    hub: client.Cluster,
    cache: usage.UsageCache,
    card: Mapping[str, Any],
    settings: Any,
    now: datetime | None = None,
    sites: SiteReader | None = None,
) -> TickResult:
    """Accrue every tenant up to `now`; roll over and close earlier months' reports."""
    result = TickResult()
    tz = zone(settings)
    try:
        table = rating.table(ratecard.parse(ratecard.DEFAULT_NAME, card.get("spec") or {}), tz)
    except (pydantic.ValidationError, ValueError) as error:
        result.errors.append(f"RateCard default is invalid, nothing metered: {error}")
        return result
    tenants = hub.list(constants.API_VERSION, "CloudTenant")
    placed = placed_sites(tenants)
    if sites is not None and placed:
        for problem in feed_sites(cache, sites.read(placed), placed):
            result.unreadable_sites.append(problem)
    now = now or datetime.now(UTC)
    period = periods.period_of(now, tz)
    previous = period.previous()
    context = Context(
        hub=hub,
        cache=cache,
        table=table,
        tz=tz,
        now=now,
        reports={
            item["metadata"]["name"]: item
            for item in hub.list(
                constants.API_VERSION,
                KIND,
                label_selector=f"{LABEL_PERIOD} in ({period.name},{previous.name})",
            )
        },
        result=result,
        every=checkpoint_of(settings),
        card_edited=card_edited(card),
    )
    work = [tenant for tenant in tenants if cache.timeline(tenant["metadata"]["name"])]
    # Tenants are independent (each its own report, each patch guarded by its
    # resourceVersion), so their writes go out side by side.
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(concurrency_of(settings), len(work))),
        thread_name_prefix="govcloud-metering",
    ) as pool:
        metered = list(pool.map(lambda tenant: meter_tenant(context, tenant), work))
    listed = {str(tenant["metadata"]["name"]) for tenant in tenants}
    for name, last_tick in sorted(cache.unlisted(listed).items()):
        settle(context, name, last_tick)
    unrated: set[str] = set()
    for report in metered:
        if report is not None:
            unrated.update(report.accrued.unrated)
    _card_status(hub, card, sorted(unrated), now, result)
    return result


def checkpoint_of(settings: Any) -> timedelta:
    """How long a report may go unwritten while nothing billable changes (0: every tick)."""
    seconds = getattr(settings, "metering_checkpoint_seconds", checkpoint.DEFAULT_SECONDS)
    return timedelta(seconds=float(seconds))


def card_edited(card: Mapping[str, Any]) -> bool:
    """The card's spec changed since a tick last wrote its status (observedGeneration)."""
    generation = (card.get("metadata") or {}).get("generation")
    return generation != (card.get("status") or {}).get("observedGeneration")


def meter_tenant(context: Context, tenant: Mapping[str, Any]) -> Metered | None:
    """Accrue one tenant (catching up any months an outage left open); None if it failed."""
    name = tenant["metadata"]["name"]
    points = context.cache.timeline(name)
    period = periods.period_of(context.now, context.tz)
    previous = period.previous()
    tier = str(((tenant.get("spec") or {}).get("unit") or {}).get("tier") or "city")
    deleting = bool((tenant.get("metadata") or {}).get("deletionTimestamp"))
    meter = Meter(context, tier, force=deleting or context.card_edited)
    try:
        current = context.reports.get(usagereport.report_name(name, period.name))
        old = context.reports.get(usagereport.report_name(name, previous.name))
        earlier = {previous: old} if old is not None else {}
        if current is None and not earlier:
            earlier = history(context.hub, name, period)  # new tenant, or down across month ends
        backlog = rollover.catch_up(
            period,
            {
                month: bool((body.get("status") or {}).get("closed"))
                for month, body in earlier.items()
            },
        )
        for month in backlog.close:
            meter.close(earlier[month], month, points)
        for month in backlog.fill:
            meter.fill(name, month, points)
        report = meter.accrue(name, current, period, points, continued=backlog.continued)
    except client.ApiError as error:
        conflict(context.result, name, error)
        return None
    # Only what was written is forgotten: a skipped interval is accrued by a later tick.
    context.cache.trim(name, report.written.last_sample)
    context.cache.metered(name, context.now)
    with context.result.lock:
        context.result.usage[name] = snapshot(report.written, tier, period)
    return report


def conflict(result: TickResult, name: str, error: client.ApiError) -> None:
    with result.lock:
        if error.status == 409:
            result.conflicts += 1  # someone else accrued this interval; next tick goes on
        else:
            result.errors.append(f"{name}: {error}")


def snapshot(report: accrual.Report, tier: str, period: periods.Period) -> metrics.UsageSnapshot:
    """The metrics of a report as written (metrics equal the reports)."""
    return metrics.UsageSnapshot(
        tier=tier,
        period=period.name,
        charge=float(report.total),
        requested_hours={k: float(v.requested_hours) for k, v in report.lines.items()},
        allocated_hours={k: float(v.allocated_hours) for k, v in report.lines.items()},
    )


def settle(context: Context, name: str, last_tick: datetime) -> None:
    """A tenant gone since the last tick: its report is written up to that tick, as writing
    every tick would have left it, once (its usage timeline stays, as for any tenant)."""
    period = periods.period_of(last_tick, context.tz)
    body = context.reports.get(usagereport.report_name(name, period.name))
    if body is not None and not (body.get("status") or {}).get("closed"):
        tier = str((body.get("status") or {}).get("tier") or "city")
        meter = Meter(context, tier, force=True, end=last_tick)
        try:
            report = meter.accrue(name, body, period, context.cache.timeline(name), continued=True)
        except client.ApiError as error:
            conflict(context.result, name, error)
            return
        context.cache.trim(name, report.written.last_sample)
    context.cache.settled(name)


def concurrency_of(settings: Any) -> int:
    return int(getattr(settings, "metering_concurrency", 8))


def history(
    hub: client.Cluster, tenant: str, before: periods.Period
) -> dict[periods.Period, Manifest]:
    """The tenant's reports of months before `before` (one LIST by the tenant label)."""
    found: dict[periods.Period, Manifest] = {}
    for body in hub.list(
        constants.API_VERSION, KIND, label_selector=f"{constants.LABEL_TENANT}={tenant}"
    ):
        spec = body.get("spec") or {}
        try:
            month = periods.parse(str(spec.get("period")))
        except ValueError:
            continue
        if spec.get("tenant") == tenant and month < before:
            found[month] = body
    return found


class Meter:
    """Accrues and closes the reports of one tenant within a tick."""

    def __init__(
        self, context: Context, tier: str, *, force: bool = False, end: datetime | None = None
    ) -> None:
        self.context = context
        self.hub = context.hub
        self.table = context.table
        self.tier = tier
        self.tz = context.tz
        self.now = context.now
        self.end = end or context.now  # accrued up to here (a gone tenant: its last tick)
        self.result = context.result
        self.force = force

    def close(
        self,
        body: Manifest,
        period: periods.Period,
        points: list[usage.Point],
        state: accrual.Report | None = None,
    ) -> accrual.Report:
        """Accrue up to the end of the month and close: exactly once (resourceVersion + CEL)."""
        end = period.end(self.tz)
        if state is None:
            state = accrual.from_status(
                body.get("status") or {}, default_start=period.start(self.tz)
            )
        state = accrual.accrue(state, points, end, self.table, self.tier)
        self._write(body, self._status(body, state, period, closed_at=self.now))
        self.result.events.append(
            (
                body,
                Event(
                    "Normal",
                    "ReportClosed",
                    f"period {period.name} closed: {accrual.money(state.total)}"
                    f" {self.table.currency}",
                ),
            )
        )
        return state

    def fill(self, tenant: str, period: periods.Period, points: list[usage.Point]) -> None:
        """A month the operator never metered: opened, accrued whole (gap rule) and closed."""
        body = self._create(tenant, period)
        state = accrual.Report(last_sample=period.start(self.tz))
        self.close(body, period, points, state=state)

    def _create(self, tenant: str, period: periods.Period) -> Manifest:
        body = self.hub.create(
            {
                "apiVersion": constants.API_VERSION,
                "kind": KIND,
                "metadata": {
                    "name": usagereport.report_name(tenant, period.name),
                    "labels": {
                        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
                        constants.LABEL_TENANT: tenant,
                        LABEL_PERIOD: period.name,
                    },
                },
                "spec": {"tenant": tenant, "period": period.name},
            }
        )
        self.result.events.append(
            (body, Event("Normal", "ReportOpened", f"metering {tenant} for {period.name}"))
        )
        return body

    def accrue(
        self,
        tenant: str,
        body: Manifest | None,
        period: periods.Period,
        points: list[usage.Point],
        *,
        continued: bool,
    ) -> Metered:
        """Accrue the month's report up to `end`; written only when due (`checkpoint`)."""
        if body is None:
            # A month that follows a metered one starts at the month's start; a tenant
            # metered for the first time starts now (nothing before it is billed).
            start = period.start(self.tz) if continued else self.now
            body = self._create(tenant, period)
            written = accrual.Report(last_sample=start)
            force = True
        else:
            status = body.get("status") or {}
            written = accrual.from_status(status, default_start=self.now)
            if status.get("closed"):
                return Metered(written, written)
            force = self.force
        state = accrual.accrue(written, points, self.end, self.table, self.tier)
        if state is written and not force:
            return Metered(state, written)
        new = self._status(body, state, period)
        if not force and not checkpoint.reason(
            body.get("status") or {}, new, written, points, self.table, self.end, self.context.every
        ):
            return Metered(state, written)
        self._write(body, new)
        return Metered(state, state)

    def _status(
        self,
        body: Manifest,
        state: accrual.Report,
        period: periods.Period,
        closed_at: datetime | None = None,
    ) -> dict[str, Any]:
        """The whole status the operator owns, its Rated condition merged into the old ones."""
        status = accrual.to_status(
            state,
            tier=self.tier,
            currency=self.table.currency,
            period_start=period.start(self.tz),
            period_end=period.end(self.tz),
            closed_at=closed_at,
        )
        rated = conditions.Condition(RATED, *accrual.rated_condition(state.unrated))
        old = body.get("status") or {}
        # Without the null observedGeneration (a report has no generation to observe): a
        # merge patch deletes a null, and the status would never equal the stored one.
        status["conditions"] = [
            {key: value for key, value in item.items() if value is not None}
            for item in conditions.merge(old.get("conditions") or [], [rated], None, self.now)
        ]
        return status

    def _write(self, body: Manifest, status: dict[str, Any]) -> None:
        old = body.get("status") or {}
        if all(old.get(key) == value for key, value in status.items()):
            return
        rated = next(item for item in status["conditions"] if item["type"] == RATED)
        if rated["status"] == conditions.FALSE and not any(
            item.get("type") == RATED and item.get("status") == conditions.FALSE
            for item in old.get("conditions") or []
        ):
            self.result.events.append((body, Event("Warning", "MissingRate", rated["message"])))
        self.hub.patch_status(
            constants.API_VERSION,
            KIND,
            body["metadata"]["name"],
            status,
            resource_version=body["metadata"]["resourceVersion"],
        )


def _card_status(
    hub: client.Cluster,
    card: Mapping[str, Any],
    unrated: list[str],
    now: datetime,
    result: TickResult,
) -> None:
    """The rate card says which requested resources it leaves unpriced (written on change)."""
    old = card.get("status") or {}
    priced = (
        conditions.Condition(
            PRICED,
            conditions.FALSE,
            "MissingRate",
            f"tenants request {', '.join(unrated)} but no rate is in force for it; their use"
            " is recorded, not charged. Add a rate for each",
        )
        if unrated
        else conditions.Condition(
            PRICED, conditions.TRUE, "AllPriced", "every resource tenants request has a rate"
        )
    )
    generation = (card.get("metadata") or {}).get("generation")
    status = {
        "observedGeneration": generation,
        "unratedResources": unrated,
        "conditions": conditions.merge(old.get("conditions") or [], [priced], generation, now),
    }
    if all(old.get(key) == value for key, value in status.items()):
        return
    try:
        hub.patch_status(constants.API_VERSION, "RateCard", ratecard.DEFAULT_NAME, status)
    except client.ApiError as error:
        result.errors.append(f"RateCard status: {error}")
        return
    if unrated:
        result.events.append((dict(card), Event("Warning", "MissingRate", priced.message)))
