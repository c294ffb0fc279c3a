"""Metering: one tick accrues every tenant's usage since its report's lastSampleTime.

API cost per tick is O(1) reads whatever the number of tenants: one LIST of CloudTenants and
one LIST of the UsageReports of this and the previous period (by label); usage comes from
the watch-fed `usage.UsageCache`, never from a GET per tenant. Tenants placed on sub-centers
cost one LIST of ResourceQuotas per site (plus the GETs of its SubCenter and kubeconfig
Secret), run on their own threads and bounded in time (`SiteReader`): a site that does not
answer in time neither stalls the tick nor is billed (its tenants' usage is unknown until it
answers). A tenant with neither this month's nor last month's report costs one LIST of its
reports, once, to find what to catch up (`rollover`). The annual assessment of the current
year (`assess`, for the metrics) reads the year's earlier months once at start and once a
month (one LIST by the period label), and plans from the cache: nothing more per tick.

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

Time is the API server's (`ServerClock`): a node clock that is wrong never closes a month
that has not ended for the cluster. Reports are the tenant's by its UID (`spec.tenantUID`):
a tenant deleted and created again under its name is a new tenant with a report of its own
(`<tenant>-<period>-<uid>` when `<tenant>-<period>` is taken), metered from its own first
tick; a report written by an earlier release (no tenantUID) stays the report of the tenant
of that name that existed when it was created. A report whose tenant is gone is accrued up
to the last tick that saw the tenant and closed. A report that exists where metering must
create one (AlreadyExists: relabelled, or made by someone else) is an error: counted,
logged and posted as a Warning Event on the tenant, every tick until it is resolved.
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client
import pydantic
import urllib3
from kubernetes.client.exceptions import ApiException

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import cloudtenant, ratecard, subcenter, usagereport
from govcloud.billing import (
    accrual,
    assessment,
    checkpoint,
    periods,
    rating,
    rollover,
    statement,
    usage,
)
from govcloud.desired import compare, ledger
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
    # Every tenant's annual assessment of the current year so far (when the tick was given
    # the year's earlier months to hold).
    assessments: dict[str, metrics.AssessmentSnapshot] = field(default_factory=dict)
    assessed: bool = False  # `assessments` holds every tenant's
    written: dict[str, Manifest] = field(default_factory=dict)  # reports as this tick wrote them
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    unreadable_sites: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def zone(settings: Any) -> Any:
    return periods.zone(getattr(settings, "billing_utc_offset_hours", 8.0))


# -- the API server's time ------------------------------------------------------------------

# The Date header has whole seconds: an offset this small is the header's rounding, not skew.
CLOCK_TOLERANCE = timedelta(seconds=2)
DATE_TIMEOUT = 10.0


class ClockError(RuntimeError):
    """The API server's time could not be read."""


def server_date(hub: client.Cluster) -> datetime:
    """The API server's time, from the `Date` header of a GET /version (one cheap request)."""
    api = caches.uncached(hub).api
    try:
        _, _, headers = kubernetes.client.VersionApi(api).get_code_with_http_info(
            _request_timeout=DATE_TIMEOUT
        )
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        raise ClockError(f"the API server's time cannot be read: {error}") from error
    date = (headers or {}).get("Date")
    if not date:
        raise ClockError("the API server's answer has no Date header")
    return email.utils.parsedate_to_datetime(date).astimezone(UTC)


class ServerClock:
    """The node's clock corrected by its offset from the API server's, measured each tick.

    Periods close by this time: a node clock a year fast would otherwise close (and fill)
    months that have not begun for the cluster, and a closed report is final.
    """

    def __init__(
        self,
        local: Callable[[], datetime] = lambda: datetime.now(UTC),
        read: Callable[[client.Cluster], datetime] = server_date,
    ) -> None:
        self.local = local
        self.read = read
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.local() + self.offset

    def measure(self, hub: client.Cluster) -> timedelta:
        """Read the server's time once; the offset kept (0 within CLOCK_TOLERANCE)."""
        before = self.local()
        server = self.read(hub)
        after = self.local()
        # The header truncates to the second: the server's time was in [Date, Date + 1 s).
        offset = server + timedelta(seconds=0.5) - (before + (after - before) / 2)
        self.offset = offset if abs(offset) > CLOCK_TOLERANCE else timedelta(0)
        return self.offset


# -- sub-centers: one bounded LIST of ResourceQuotas per site per tick ----------------------

SITE_READ_TIMEOUT = 5.0  # seconds after which an unanswered site read makes its tenants unread
SITE_READ_WAIT = 1.0  # seconds a tick waits for the site reads it started
SITE_RETRY_SECONDS = 2.0  # transient errors of one site read are retried this long
QUOTA_SELECTOR = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY},{constants.LABEL_TENANT}"


_Answer = tuple[datetime, list[dict[str, Any]]]  # when a site answered, and what it listed


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
    """Reads every site's ResourceQuotas on its own threads; a tick never waits long for them.

    A tick starts a read of each site that has none running and waits at most `wait` for the
    reads it started (a site that answers at once is billed in the same tick). A read that
    answers later is taken by the next tick, as of when it answered; one still unanswered
    `timeout` after it started makes its site's tenants unreadable (not billed) from its start
    until a read answers in time; one that answers after `timeout` is dropped. A read still
    running is never started again: at most one thread per site is ever held by a site that
    does not answer, and a frozen site delays no tick by more than `wait`, once.
    """

    def __init__(
        self,
        hub: client.Cluster,
        registry: clusters.ClusterRegistry,
        executor: concurrent.futures.Executor,
        timeout: float = SITE_READ_TIMEOUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wait: float = SITE_READ_WAIT,
    ) -> None:
        self.hub = hub
        self.registry = registry
        self.executor = executor
        self.timeout = timeout
        self.wait = wait
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, tuple[datetime, concurrent.futures.Future[_Answer]]] = {}

    def read(self, sites: Mapping[str, list[str]]) -> list[SiteRead]:
        """What was learnt of the sites since the last tick, oldest first: reads that answered
        since, reads gone unanswered too long, then this tick's reads that answered within
        `wait`. A site whose read is pending (and not late) has no news: its tenants keep the
        usage last read."""
        self._forget_gone(sites)
        found = [read for site in sorted(sites) if (read := self._outcome(site, sites[site]))]
        started = [site for site in sorted(sites) if self._start(site)]
        with self._lock:
            fresh = [self._running[site][1] for site in started]
        if fresh:
            concurrent.futures.wait(fresh, self.wait)
        found += [read for site in started if (read := self._outcome(site, sites[site]))]
        return found

    def _forget_gone(self, sites: Mapping[str, list[str]]) -> None:
        """Drop the finished reads of sites no tenant is placed on any more (a site deleted,
        or emptied): what they said bills nobody, and they must not pile up."""
        with self._lock:
            for site in [site for site in self._running if site not in sites]:
                if self._running[site][1].done():
                    del self._running[site]

    def _start(self, site: str) -> bool:
        """Start a read of `site` unless one is still running; whether one was started."""
        with self._lock:
            if site in self._running:
                return False
            self._running[site] = (self.clock(), self.executor.submit(self._answer, site))
            return True

    def _outcome(self, site: str, tenants: list[str]) -> SiteRead | None:
        with self._lock:
            running = self._running.get(site)
            if running is None:
                return None
            at, future = running
            if not future.done():
                if (self.clock() - at).total_seconds() < self.timeout:
                    return None
                return SiteRead(site, at, None, f"no answer within {self.timeout:g}s")
            del self._running[site]
        error = future.exception()
        if error is not None:
            return SiteRead(site, at, None, str(error) or type(error).__name__)
        answered, items = future.result()
        if (answered - at).total_seconds() >= self.timeout:
            # Its tenants were unreadable from `at`; what it says now is not billed backwards.
            return SiteRead(site, at, None, f"answered after {self.timeout:g}s; read again")
        return SiteRead(site, answered, quotas_of(items, tenants))

    def _answer(self, site: str) -> _Answer:
        items = self._list(site)
        return self.clock(), items

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
    cache: usage.UsageCache, reads: Iterable[SiteRead], sites: Mapping[str, list[str]]
) -> list[str]:
    """Put what each site read found into the cache, in order; the sites that could not be
    read."""
    unreadable = []
    for read in reads:
        if read.quotas is None:
            cache.unreachable(sites.get(read.site, []), read.at)
            unreadable.append(f"{read.site}: {read.error}")
        else:
            cache.sync_cluster(read.site, read.quotas, sites.get(read.site, []), read.at)
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
    reports: Mapping[tuple[str, str], list[Manifest]]  # (spec.tenant, spec.period) -> reports
    names: frozenset[str]  # every listed report's name (taken for a new report)
    result: TickResult
    every: timedelta  # the checkpoint interval
    card_edited: bool  # the rate card changed since the last tick: every report is written
    earlier_months: assessment.EarlierMonths | None = None  # the year's earlier months, held


@dataclass(frozen=True)
class Metered:
    """One tenant's current report after a tick: accrued, and as written (the same if written)."""

    accrued: accrual.Report
    written: accrual.Report
    name: str = ""  # the report's


class ReportExistsError(RuntimeError):
    """A report had to be created and its name was taken (AlreadyExists): never benign."""


def tick(
    hub: client.Cluster,
    cache: usage.UsageCache,
    card: Mapping[str, Any],
    settings: Any,
    now: datetime | None = None,
    sites: SiteReader | None = None,
    clock: ServerClock | None = None,
    earlier_months: assessment.EarlierMonths | None = None,
) -> TickResult:
    """Accrue every tenant up to `now` (default: the API server's time); roll over and close
    earlier months' reports and the reports of tenants that are gone. With `earlier_months`
    (held between ticks), assess every tenant on the current year so far (`assess`)."""
    result = TickResult()
    tz = zone(settings)
    try:
        table = rating.table(ratecard.parse(ratecard.DEFAULT_NAME, card.get("spec") or {}), tz)
    except (pydantic.ValidationError, ValueError) as error:
        result.errors.append(f"RateCard default is invalid, nothing metered: {error}")
        return result
    if now is None:
        clock = clock or ServerClock()
        try:
            clock.measure(hub)
        except ClockError as error:
            result.errors.append(f"nothing metered: {error}")
            return result
    tenants = hub.list(constants.API_VERSION, "CloudTenant")
    placed = placed_sites(tenants)
    if sites is not None and placed:
        for problem in feed_sites(cache, sites.read(placed), placed):
            result.unreadable_sites.append(problem)
    now = now or (clock or ServerClock()).now()
    period = periods.period_of(now, tz)
    listed_reports = hub.list(
        constants.API_VERSION,
        KIND,
        label_selector=f"{LABEL_PERIOD} in ({period.name},{period.previous().name})",
    )
    context = Context(
        hub=hub,
        cache=cache,
        table=table,
        tz=tz,
        now=now,
        reports=index_reports(listed_reports),
        names=frozenset(str(item["metadata"]["name"]) for item in listed_reports),
        result=result,
        every=checkpoint_of(settings),
        card_edited=card_edited(card),
        earlier_months=earlier_months,
    )
    work = [tenant for tenant in tenants if cache.timeline(tenant["metadata"]["name"])]
    # Tenants are independent (each its own report, each patch guarded by its
    # resourceVersion), so their writes go out side by side.
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(concurrency_of(settings), len(work))),
        thread_name_prefix="govcloud-metering",
    ) as pool:
        metered = list(pool.map(lambda tenant: meter_tenant(context, tenant), work))
    close_gone(context, tenants, listed_reports)
    cache.forget_gone(str(tenant["metadata"]["name"]) for tenant in tenants)
    if earlier_months is not None:
        assess(context, tenants, listed_reports)
    unrated: set[str] = set()
    for report in metered:
        if report is not None:
            unrated.update(report.accrued.unrated)
    _card_status(hub, card, sorted(unrated), now, result)
    return result


# -- the annual assessment, current year so far -----------------------------------------------


def assess(context: Context, tenants: list[Manifest], listed: list[Manifest]) -> None:
    """Every tenant's annual assessment of the current year so far, as `report assessment`
    makes it (`assessment.build`, the same rule) from the same reports: the earlier months'
    sums held (read once a month, `load_earlier`, and again after a tick that caught up on
    earlier months: an outage across month ends), this and the previous month's reports as
    they stand after the tick. Plans and tenants come from the caches: no read at rest."""
    held = context.earlier_months
    if held is None:
        return
    period = periods.period_of(context.now, context.tz)
    earlier = set(assessment.earlier_months(period))
    if any(period_label(body) in earlier for body in context.result.written.values()):
        held.drop()  # the tick caught up on earlier months (closed or filled): read them again
    if not load_earlier(context, held, period):
        return
    names = {str(tenant["metadata"]["name"]) for tenant in tenants}
    held.keep(names)
    plans = context.hub.list(constants.API_VERSION, "ResourcePlan")
    today = context.now.astimezone(context.tz).date()
    rows = assessment.build(
        period.year,
        tenants,
        reports_so_far(listed, context.result.written, (period.name, period.previous().name)),
        plans,
        today,
        assessment.Rule(),
        held.sums(),
    )
    context.result.assessments = {
        row.tenant: assessment_snapshot(row) for row in rows if row.tenant in names
    }
    context.result.assessed = True


def load_earlier(context: Context, held: assessment.EarlierMonths, period: periods.Period) -> bool:
    """Read the year's earlier months when the month held is not `period` (at start, then
    once a month: one LIST by the period label); whether they are held."""
    months = held.due(period)
    if months is None:
        return True
    found: list[Manifest] = []
    if months:
        selector = f"{LABEL_PERIOD} in ({','.join(months)})"
        try:
            found = context.hub.list(constants.API_VERSION, KIND, label_selector=selector)
        except client.ApiError as error:
            context.result.errors.append(
                f"the year's earlier UsageReports cannot be read, no assessment: {error}"
            )
            return False
    held.load(period, found)
    return True


def reports_so_far(
    listed: Iterable[Manifest], written: Mapping[str, Manifest], recent: Iterable[str]
) -> list[Manifest]:
    """This and the previous month's reports (`recent`) as they stand after the tick: those it
    wrote (this month's, last month's closed) as written, the others as listed."""
    found = [written.get(str(body["metadata"]["name"]), body) for body in listed]
    names = {str(body["metadata"]["name"]) for body in listed}
    months = set(recent)
    return found + [
        body
        for name, body in sorted(written.items())
        if name not in names and period_label(body) in months
    ]


def period_label(body: Manifest) -> str:
    return str(((body.get("metadata") or {}).get("labels") or {}).get(LABEL_PERIOD) or "")


def assessment_snapshot(row: assessment.Row) -> metrics.AssessmentSnapshot:
    """The metrics of one unit's assessment."""
    ratios = {resource: row.utilisation_ratio(resource) for resource in assessment.UTILISED}
    return metrics.AssessmentSnapshot(
        tier=row.tier,
        payer=row.payer,
        spend=float(row.spend),
        utilisation={key: float(value) for key, value in ratios.items() if value is not None},
        lagging=row.verdict == assessment.LAGGING,
        reasons=len(row.reasons),
    )


def checkpoint_of(settings: Any) -> timedelta:
    """How long a report may go unwritten while nothing billable changes (0: every tick)."""
    seconds = getattr(settings, "metering_checkpoint_seconds", checkpoint.DEFAULT_SECONDS)
    return timedelta(seconds=float(seconds))


def card_edited(card: Mapping[str, Any]) -> bool:
    """The card's spec changed since a tick last wrote its status (observedGeneration)."""
    generation = (card.get("metadata") or {}).get("generation")
    return generation != (card.get("status") or {}).get("observedGeneration")


# -- whose report is it ----------------------------------------------------------------------


def uid_of(tenant: Mapping[str, Any]) -> str:
    """The UID the tenant's reports are kept under (the same across a restore of the ledger)."""
    return ledger.tenant_uid(tenant)


def owns(tenant: Mapping[str, Any], report: Mapping[str, Any]) -> bool:
    """Whether `report` is this tenant's: by its tenantUID; a report from an earlier release
    (none) is the tenant's of that name that existed when the report was created."""
    spec = report.get("spec") or {}
    metadata = tenant.get("metadata") or {}
    if spec.get("tenant") != metadata.get("name"):
        return False
    if spec.get("tenantUID"):
        return bool(spec["tenantUID"] == uid_of(tenant))
    born = accrual.parse_time(metadata.get("creationTimestamp"))
    written = accrual.parse_time((report.get("metadata") or {}).get("creationTimestamp"))
    return born is None or written is None or born <= written


def index_reports(items: Iterable[Manifest]) -> dict[tuple[str, str], list[Manifest]]:
    found: dict[tuple[str, str], list[Manifest]] = {}
    for item in items:
        spec = item.get("spec") or {}
        found.setdefault((str(spec.get("tenant")), str(spec.get("period"))), []).append(item)
    return found


def report_of(tenant: Mapping[str, Any], candidates: Iterable[Manifest] | None) -> Manifest | None:
    """The tenant's report among `candidates`; one keyed by its UID before an older one."""
    mine = [body for body in candidates or () if owns(tenant, body)]
    mine.sort(key=lambda body: not (body.get("spec") or {}).get("tenantUID"))
    return mine[0] if mine else None


def new_report_name(tenant: Mapping[str, Any], period: periods.Period, taken: Iterable[str]) -> str:
    """`<tenant>-<period>`, or with the tenant's UID when another tenant's report has it."""
    name = str(tenant["metadata"]["name"])
    plain = usagereport.report_name(name, period.name)
    uid = uid_of(tenant)
    return usagereport.report_name(name, period.name, uid) if plain in set(taken) and uid else plain


# -- one tenant ------------------------------------------------------------------------------


def meter_tenant(context: Context, tenant: Mapping[str, Any]) -> Metered | None:
    """Accrue one tenant (catching up any months an outage left open); None if it failed."""
    name = tenant["metadata"]["name"]
    points = context.cache.timeline(name)
    period = periods.period_of(context.now, context.tz)
    previous = period.previous()
    tier = str(((tenant.get("spec") or {}).get("unit") or {}).get("tier") or "city")
    deleting = bool((tenant.get("metadata") or {}).get("deletionTimestamp"))
    meter = Meter(context, tier, tenant, force=deleting or context.card_edited)
    try:
        current = report_of(tenant, context.reports.get((name, period.name)))
        old = report_of(tenant, context.reports.get((name, previous.name)))
        earlier = {previous: old} if old is not None else {}
        if current is None and not earlier:
            # A new tenant, or one down across month ends
            earlier, taken, listed = history(context.hub, tenant, period)
            meter.taken.update(taken)
            if context.earlier_months is not None:  # what its assessment counts, too
                context.earlier_months.learn(period, name, listed)
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
            meter.fill(month, points)
        report = meter.accrue(current, period, points, continued=backlog.continued)
    except ReportExistsError as error:
        refused(context.result, tenant, str(error))
        return None
    except client.ApiError as error:
        conflict(context.result, name, error)
        return None
    # Only what was written is forgotten: a skipped interval is accrued by a later tick.
    context.cache.trim(name, report.written.last_sample)
    context.cache.metered(name, context.now)
    show_bill(context, tenant, period, report)
    with context.result.lock:
        context.result.usage[name] = snapshot(report.written, tier, period)
    return report


def billing_status(
    tenant: Mapping[str, Any], period: periods.Period, report: Metered, currency: str
) -> dict[str, Any]:
    """status.billing of the tenant: this month's charge as written in its report, in whole
    units (so it is rewritten about once per unit, not every tick), and the reports its
    members may read (the latest MAX_BILLED_REPORTS)."""
    known = ((tenant.get("status") or {}).get("billing") or {}).get("reports") or []
    prefix = len(str(tenant["metadata"]["name"])) + 1
    # By month (<tenant>-YYYY-MM[-uid]), then name.
    reports = sorted(
        {*(str(item) for item in known), report.name}, key=lambda item: (item[prefix:][:7], item)
    )
    whole = int(report.written.total)  # rounded down: never shows more than is billed
    return {
        "period": period.name,
        "charge": f"{whole} {currency}",
        "report": report.name,
        "reports": reports[-cloudtenant.MAX_BILLED_REPORTS :],
    }


def show_bill(
    context: Context, tenant: Mapping[str, Any], period: periods.Period, report: Metered
) -> None:
    """Write status.billing of the tenant when it changed (a best effort: the report is the
    bill; a failure is said in the tick's errors and tried again next tick)."""
    if not report.name:
        return
    wanted = billing_status(tenant, period, report, context.table.currency)
    stored = (tenant.get("status") or {}).get("billing") or {}
    if stored == wanted:
        return
    name = str(tenant["metadata"]["name"])
    patch = {"billing": compare.merge_patch(stored, wanted)}  # keys gone are sent as null
    try:
        context.hub.patch_status(constants.API_VERSION, "CloudTenant", name, patch)
    except client.ApiError as error:
        if error.status != 404:  # a tenant deleted meanwhile has no status to show
            with context.result.lock:
                context.result.errors.append(f"{name}: status.billing not written: {error}")


def unit_of(tenant: Mapping[str, Any]) -> dict[str, str] | None:
    """status.unit of a report: the unit's code, name and region from its CloudTenant."""
    spec = tenant.get("spec") or {}
    unit = spec.get("unit") or {}
    found = {
        "code": unit.get("code"),
        "name": spec.get("displayName"),
        "region": unit.get("region"),
    }
    kept = {key: str(value) for key, value in found.items() if value}
    return kept or None


def conflict(result: TickResult, name: str, error: client.ApiError) -> None:
    with result.lock:
        if error.status == 409 and error.reason != "AlreadyExists":
            result.conflicts += 1  # someone else accrued this interval; next tick goes on
        else:
            result.errors.append(f"{name}: {error}")


def refused(result: TickResult, tenant: Mapping[str, Any], message: str) -> None:
    """A report could not be created: an error of the tick, and a Warning on the tenant."""
    with result.lock:
        result.errors.append(f"{tenant['metadata']['name']}: {message}")
        result.events.append((dict(tenant), Event("Warning", "UsageReportExists", message)))


def snapshot(report: accrual.Report, tier: str, period: periods.Period) -> metrics.UsageSnapshot:
    """The metrics of a report as written (metrics equal the reports)."""
    return metrics.UsageSnapshot(
        tier=tier,
        period=period.name,
        charge=float(report.total),
        requested_hours={k: float(v.requested_hours) for k, v in report.lines.items()},
        allocated_hours={k: float(v.allocated_hours) for k, v in report.lines.items()},
    )


# -- tenants that are gone -------------------------------------------------------------------


def close_gone(
    context: Context, tenants: Iterable[Mapping[str, Any]], reports: Iterable[Manifest]
) -> None:
    """Close every open report whose tenant is gone (deleted, or deleted and created again),
    accrued up to the last tick that metered the tenant; then it is settled."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for tenant in tenants:
        by_name.setdefault(str(tenant["metadata"]["name"]), []).append(tenant)
    unlisted = context.cache.unlisted(by_name)
    failed: set[str] = set()
    for body in sorted(reports, key=lambda item: str(item["metadata"]["name"])):
        name = str((body.get("spec") or {}).get("tenant"))
        if (body.get("status") or {}).get("closed"):
            continue
        if any(owns(tenant, body) for tenant in by_name.get(name, ())):
            continue
        try:
            close_orphan(context, body, unlisted.get(name))
        except client.ApiError as error:
            conflict(context.result, name, error)
            failed.add(name)
    for name in sorted(set(unlisted) - failed):
        context.cache.settled(name)


def close_orphan(context: Context, body: Manifest, last_tick: datetime | None) -> None:
    """A gone tenant's report: accrued up to `last_tick` (when a tick of this run metered the
    tenant; else as last written) and closed now."""
    spec = body.get("spec") or {}
    name = str(spec.get("tenant"))
    period = periods.parse(str(spec.get("period")))
    status = body.get("status") or {}
    end = min(context.now, period.end(context.tz))
    state = accrual.from_status(status, default_start=end)
    if last_tick is not None:
        state = accrual.accrue(
            state,
            context.cache.timeline(name),
            min(last_tick, period.end(context.tz)),
            context.table,
            str(status.get("tier") or "city"),
        )
    meter = Meter(context, str(status.get("tier") or "city"), {"metadata": {"name": name}})
    meter.write_closed(body, period, state, f"tenant {name} is gone")
    context.cache.trim(name, state.last_sample)


def concurrency_of(settings: Any) -> int:
    return int(getattr(settings, "metering_concurrency", 8))


def history(
    hub: client.Cluster, tenant: Mapping[str, Any], before: periods.Period
) -> tuple[dict[periods.Period, Manifest], set[str], list[Manifest]]:
    """The tenant's reports of months before `before` (one LIST by the tenant label), the
    names of every report listed (another tenant of the same name may hold some), and the
    listing itself."""
    name = str(tenant["metadata"]["name"])
    found: dict[periods.Period, Manifest] = {}
    taken: set[str] = set()
    listed = hub.list(
        constants.API_VERSION, KIND, label_selector=f"{constants.LABEL_TENANT}={name}"
    )
    for body in listed:
        taken.add(str(body["metadata"]["name"]))
        spec = body.get("spec") or {}
        try:
            month = periods.parse(str(spec.get("period")))
        except ValueError:
            continue
        if owns(tenant, body) and month < before:
            found[month] = body
    return found, taken, listed


class Meter:
    """Accrues and closes the reports of one tenant within a tick."""

    def __init__(
        self,
        context: Context,
        tier: str,
        tenant: Mapping[str, Any],
        *,
        force: bool = False,
        end: datetime | None = None,
    ) -> None:
        self.context = context
        self.hub = context.hub
        self.table = context.table
        self.tier = tier
        self.tenant = tenant
        self.tz = context.tz
        self.now = context.now
        self.end = end or context.now  # accrued up to here
        self.result = context.result
        self.force = force
        self.taken = set(context.names)  # report names that exist (a new one must differ)

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
        self.write_closed(body, period, state, f"period {period.name} closed")
        return state

    def write_closed(
        self, body: Manifest, period: periods.Period, state: accrual.Report, why: str
    ) -> None:
        self._write(body, self._status(body, state, period, closed_at=self.now))
        total = f"{accrual.money(state.total)} {self.table.currency}"
        self.result.events.append((body, Event("Normal", "ReportClosed", f"{why}: {total}")))

    def fill(self, period: periods.Period, points: list[usage.Point]) -> None:
        """A month the operator never metered: opened, accrued whole (gap rule) and closed."""
        body = self._create(period)
        state = accrual.Report(last_sample=period.start(self.tz))
        self.close(body, period, points, state=state)

    def _create(self, period: periods.Period) -> Manifest:
        tenant = str(self.tenant["metadata"]["name"])
        uid = uid_of(self.tenant)
        name = new_report_name(self.tenant, period, self.taken)
        labels = {
            constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
            constants.LABEL_TENANT: tenant,
            LABEL_PERIOD: period.name,
        }
        spec = {"tenant": tenant, "period": period.name}
        if uid:
            labels[usagereport.LABEL_TENANT_UID] = uid
            spec["tenantUID"] = uid
        manifest = {
            "apiVersion": constants.API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }
        try:
            body = self.hub.create(manifest)
        except client.ApiError as error:
            if error.status == 409:
                raise ReportExistsError(
                    f"UsageReport {name} already exists but is not listed as {tenant}'s report"
                    f" of {period.name} (relabelled, or created by someone else): {tenant} is"
                    " not metered until the finance administrators resolve it"
                ) from error
            raise
        self.taken.add(name)
        self.result.events.append(
            (body, Event("Normal", "ReportOpened", f"metering {tenant} for {period.name}"))
        )
        return body

    def accrue(
        self,
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
            body = self._create(period)
            written = accrual.Report(last_sample=start)
            force = True
        else:
            status = body.get("status") or {}
            written = accrual.from_status(status, default_start=self.now)
            if status.get("closed"):
                return Metered(written, written, str(body["metadata"]["name"]))
            force = self.force
        name = str(body["metadata"]["name"])
        state = accrual.accrue(written, points, self.end, self.table, self.tier)
        if state is written and not force:
            return Metered(state, written, name)
        new = self._status(body, state, period)
        if not force and not checkpoint.reason(
            body.get("status") or {}, new, written, points, self.table, self.end, self.context.every
        ):
            return Metered(state, written, name)
        self._write(body, new)
        return Metered(state, state, name)

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
        # Who is billed and who pays, as the tenant says now (a gone tenant's: as last written).
        unit = unit_of(self.tenant) or old.get("unit")
        if unit:
            status["unit"] = unit
            status["payer"] = statement.payer_of(self.tier, unit.get("region"))
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
        # The fields it names, nested keys gone sent as null (a merge patch keeps the rest).
        patch = {
            key: value for key, value in compare.merge_patch(old, status).items() if key in status
        }
        self.hub.patch_status(
            constants.API_VERSION,
            KIND,
            body["metadata"]["name"],
            patch,
            resource_version=body["metadata"]["resourceVersion"],
        )
        with self.result.lock:  # as it stands now (the assessment counts it so)
            self.result.written[str(body["metadata"]["name"])] = {**body, "status": status}


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
