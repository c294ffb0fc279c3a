"""RecoveryDrill passes: restore a tenant's backup onto another cluster, verify it, clean up.

One pass moves the drill one step and records where it stands (status, conditions, Events):
check the target site and the tenant; choose the backup on the cluster the tenant lives on and
refuse one that is not the tenant's; refuse when a namespace to restore exists on the target;
wait for Velero there to sync the backup from the shared bucket; create the Restore of exactly
the tenant's namespaces; once Velero completes it, compare every object of the backup (read
through a DownloadRequest link) with its restored copy; then, unless `keep`, delete what was
restored. Past its timeout a drill fails as Overdue. A finished drill whose clean-up is done
reads and writes nothing. What is decided is pure (desired.drills).
"""

from __future__ import annotations

import logging
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import recoverydrill, subcenter
from govcloud.desired import backups, drills
from govcloud.k8s import cache, client, clusters
from govcloud.reconcile import conditions, events, placement, plan, statuses

log = logging.getLogger(__name__)

KIND = "RecoveryDrill"
SUCCEEDED = "Succeeded"
CLEANED_UP = "CleanedUp"
OVERDUE = "Overdue"
Phase = recoverydrill.DrillPhase

Manifest = dict[str, Any]
Event = events.Event
Fetch = Callable[[str, int], bytes]


@dataclass
class Result:
    outcome: str
    body: Manifest | None = None
    events: list[Event] = field(default_factory=list)
    next_look: float | None = None
    written: Manifest = field(default_factory=dict)  # the status as this pass left it


class Stop(Exception):  # noqa: N818 - a step's verdict, not an error
    """A step ended the pass: the drill waits, or it is over (a verdict for the status)."""

    def __init__(self, phase: Phase, reason: str, message: str) -> None:
        super().__init__(message)
        self.phase, self.reason, self.message = phase, reason, message


def download(url: str, limit: int) -> bytes:
    """The backup's contents from the link Velero signed (never logged: it carries a key id).
    Only http(s): the link comes from a sub-center, which must not make the operator read its
    own files (file://) or anything else urllib would open."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Stop(
            Phase.FAILED,
            "BackupUnreadable",
            "Velero's download link for the backup is not an http(s) URL; the drill reads"
            " backups only from the object store",
        )
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data: bytes = response.read(limit + 1)
    except (OSError, urllib.error.URLError, ValueError):
        raise Stop(
            Phase.FAILED,
            "BackupUnreadable",
            "the backup's contents could not be downloaded from the object store through"
            " Velero's link (velero backup download works from the operator's network?)",
        ) from None
    if len(data) > limit:
        raise Stop(
            Phase.FAILED,
            "BackupTooLarge",
            f"the backup is larger than {limit // 2**20} MiB, the most a drill compares"
            " (setting GOVCLOUD_DRILL_MAX_CONTENTS_MIB)",
        )
    return data


def reconcile(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry | None,
    name: str,
    settings: Any,
    now: datetime | None = None,
    fetch: Fetch = download,
) -> Result:
    """One pass over the RecoveryDrill `name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name)
    if body is None:
        return Result("deleted")
    status = body.get("status") or {}
    try:
        spec = recoverydrill.parse(body.get("spec") or {})
    except (pydantic.ValidationError, ValueError) as error:
        if status.get("phase") in recoverydrill.FINISHED:
            return Result("success", body)
        verdict = Stop(Phase.FAILED, "InvalidSpec", plan.spec_message(error))
        return _record(hub, body, status, {"startedAt": _text(now)}, verdict, now, [])
    drill = Drill(hub, registry, body, spec, settings, now, fetch)
    if status.get("phase") in recoverydrill.FINISHED:
        return drill.after()
    return drill.run()


@dataclass
class Drill:
    """One pass over one drill: what it read so far and what it records."""

    hub: client.Cluster
    registry: clusters.ClusterRegistry | None
    body: Manifest
    spec: recoverydrill.RecoveryDrillSpec
    settings: Any
    now: datetime
    fetch: Fetch
    said: list[Event] = field(default_factory=list)

    @property
    def status(self) -> Manifest:
        return dict(self.body.get("status") or {})

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def velero(self) -> str:
        return str(getattr(self.settings, "backup_namespace", "velero"))

    @property
    def poll(self) -> float:
        return float(getattr(self.settings, "drill_poll_seconds", 5.0))

    def run(self) -> Result:
        status = self.status
        started = backups.parse_time(status.get("startedAt")) or self.now
        deadline = started + timedelta(seconds=backups.parse_duration(self.spec.timeout))
        new: Manifest = {
            key: value for key, value in status.items() if key not in ("conditions", "phase")
        }
        new.update(
            requestedBy=self.spec.requested_by, site=self.spec.target.site, startedAt=_text(started)
        )
        target: client.Cluster | None = None
        try:
            if self.now >= deadline:
                raise Stop(
                    Phase.FAILED,
                    OVERDUE,
                    f"the drill did not finish within its timeout ({self.spec.timeout}, from"
                    f" {_text(started)}); it was {status.get('phase') or 'Pending'}: see the"
                    " Restore on the target (velero restore describe) and the operator's log",
                )
            target = self._site()
            verdict = self._step(target, new, started)
        except Stop as stop:
            verdict = stop
        except client.ApiError as error:
            verdict = Stop(
                Phase(status.get("phase") or Phase.PENDING.value),
                "ApiError",
                f"the drill could not go on: {error}"[:1000],
            )
        if verdict.phase.value not in recoverydrill.FINISHED:
            left = max(1.0, (deadline - self.now).total_seconds() + 0.5)
            result = _record(self.hub, self.body, status, new, verdict, self.now, self.said)
            result.next_look = min(self.poll, left)
            return result
        new["completedAt"] = _text(self.now)
        result = _record(self.hub, self.body, status, new, verdict, self.now, self.said)
        self.body = {**self.body, "status": result.written}
        cleaned = self.after(target)
        result.events += cleaned.events
        result.next_look = cleaned.next_look
        return result

    # -- the steps --------------------------------------------------------------------------

    def _site(self) -> client.Cluster:
        site_name = self.spec.target.site
        site = self.hub.get(constants.API_VERSION, "SubCenter", site_name)
        if site is None:
            raise Stop(
                Phase.FAILED,
                "SiteNotFound",
                f"SubCenter {site_name} does not exist: name a registered sub-center in"
                " spec.target.site",
            )
        try:
            site_spec = subcenter.SubCenterSpec.model_validate(site.get("spec") or {})
        except pydantic.ValidationError:
            raise Stop(
                Phase.PENDING, "SiteUnavailable", f"SubCenter {site_name} has an invalid spec"
            ) from None
        target = placement.connect(self.hub, self.registry, site_name, site_spec, site)
        if target.cluster is None:
            raise Stop(Phase.PENDING, "SiteUnavailable", target.message)
        return target.cluster

    def _source(self, tenant: Manifest) -> tuple[client.Cluster, str]:
        """The cluster the tenant lives on (its backups are made there) and its name."""
        where = placement.current_cluster(tenant) or "hub"
        if where == "hub":
            return self.hub, where
        site = self.hub.get(constants.API_VERSION, "SubCenter", where)
        try:
            site_spec = subcenter.SubCenterSpec.model_validate((site or {}).get("spec") or {})
        except pydantic.ValidationError:
            site_spec = None
        found = (
            placement.connect(self.hub, self.registry, where, site_spec, site)
            if site is not None and site_spec is not None
            else None
        )
        if found is None or found.cluster is None:
            raise Stop(
                Phase.PENDING,
                "SourceUnavailable",
                f"tenant {self.spec.tenant} lives on SubCenter {where}, whose backups cannot be"
                " read now",
            )
        return found.cluster, where

    def _step(self, target: client.Cluster, new: Manifest, started: datetime) -> Stop:
        tenant_name = self.spec.tenant
        tenant = self.hub.get(constants.API_VERSION, "CloudTenant", tenant_name)
        if tenant is None:
            raise Stop(Phase.FAILED, "TenantNotFound", f"CloudTenant {tenant_name} does not exist")
        namespaces = drills.tenant_namespaces(tenant_name, tenant.get("spec") or {})
        source, where = self._source(tenant)
        if where == self.spec.target.site:
            raise Stop(
                Phase.FAILED,
                "SameCluster",
                f"tenant {tenant_name} lives on {where}: a drill restores onto another cluster",
            )
        backup = self._backup(source, namespaces, new)
        chosen = str(backup["metadata"]["name"])
        included = sorted((backup.get("spec") or {}).get("includedNamespaces") or [])
        restore_name = drills.restore_name(self.name)
        remote = cache.uncached(target)
        restore = remote.get(
            backups.VELERO_API_VERSION, drills.RESTORE_KIND, restore_name, self.velero
        )
        if restore is None:
            return self._start(target, backup, included, namespaces, new)
        return self._progress(target, restore, chosen, included, new, started)

    def _backup(self, source: client.Cluster, namespaces: set[str], new: Manifest) -> Manifest:
        tenant = self.spec.tenant
        wanted = self.status.get("backup") or self.spec.backup
        listed = _velero_list(source, backups.BACKUP_KIND, self.velero, backups.selector(tenant))
        backup = drills.choose_backup(listed, tenant, wanted)
        if backup is None and wanted:
            backup = cache.uncached(source).get(
                backups.VELERO_API_VERSION, backups.BACKUP_KIND, wanted, self.velero
            )
        if backup is None:
            raise Stop(
                Phase.FAILED,
                "BackupNotFound",
                f"backup {wanted} does not exist in {self.velero}"
                if wanted
                else f"tenant {tenant} has no Completed backup of its Schedule"
                f" {backups.schedule_name(tenant)} yet",
            )
        refused = drills.refusal(backup, tenant, namespaces)
        if refused is not None:
            raise Stop(Phase.FAILED, *refused)
        new["backup"] = backup["metadata"]["name"]
        finished = drills.completed_at(backup)
        if finished is not None:
            new["backupCompletedAt"] = _text(finished)
        return dict(backup)

    def _start(
        self,
        target: client.Cluster,
        backup: Manifest,
        included: list[str],
        namespaces: set[str],
        new: Manifest,
    ) -> Stop:
        """No Restore yet: check the namespaces are free and the backup synced, then create it."""
        if self.status.get("restore"):
            raise Stop(
                Phase.FAILED,
                "RestoreGone",
                f"the Restore {self.status['restore']} on {self.spec.target.site} was deleted"
                " before the drill finished",
            )
        taken = []
        for namespace in included:
            found = target.get("v1", "Namespace", namespace)
            if found is not None:
                owner = (found["metadata"].get("labels") or {}).get(constants.LABEL_TENANT)
                taken.append(f"{namespace} ({'tenant ' + owner if owner else 'no tenant'})")
        if taken:
            raise Stop(
                Phase.FAILED,
                "NamespaceTaken",
                f"namespaces to restore exist on {self.spec.target.site} already: "
                f"{', '.join(taken)}; a drill restores only into absent namespaces (it deletes"
                " them afterwards); nothing was restored",
            )
        name = str(backup["metadata"]["name"])
        synced = cache.uncached(target).get(
            backups.VELERO_API_VERSION, backups.BACKUP_KIND, name, self.velero
        )
        if synced is None:
            return Stop(
                Phase.WAITING_FOR_BACKUP,
                "WaitingForBackup",
                f"waiting for Velero on {self.spec.target.site} to sync backup {name} from the"
                " shared bucket (its BackupStorageLocation must point at the same bucket)",
            )
        refused = drills.refusal(synced, self.spec.tenant, namespaces)
        if refused is not None:
            raise Stop(Phase.FAILED, refused[0], f"on {self.spec.target.site}: {refused[1]}")
        target.create(drills.restore(self.name, name, included, self.velero, self.spec.tenant))
        new["restore"] = f"{self.velero}/{drills.restore_name(self.name)}"
        new["restoredNamespaces"] = included
        self.said.append(
            Event(
                "Normal",
                "DrillStarted",
                f"restoring backup {name} of tenant {self.spec.tenant} ({', '.join(included)})"
                f" onto {self.spec.target.site}, for {self.spec.requested_by}",
            )
        )
        return Stop(Phase.RESTORING, "Restoring", f"Velero on {self.spec.target.site} restores")

    def _progress(
        self,
        target: client.Cluster,
        restore: Manifest,
        backup: str,
        included: list[str],
        new: Manifest,
        started: datetime,
    ) -> Stop:
        new["restore"] = f"{self.velero}/{restore['metadata']['name']}"
        new["restoredNamespaces"] = included
        found = restore.get("status") or {}
        phase = str(found.get("phase") or "")
        site = self.spec.target.site
        if phase in drills.RESTORE_RUNNING:
            return Stop(
                Phase.RESTORING, "Restoring", f"Velero on {site} restores ({phase or 'New'})"
            )
        progress = found.get("progress") or {}
        new["itemsRestored"] = int(progress.get("itemsRestored") or 0)
        new["totalItems"] = int(progress.get("totalItems") or 0)
        finished = backups.parse_time(found.get("completionTimestamp"))
        if finished is not None:
            new["recoveryTimeSeconds"] = max(0, round((finished - started).total_seconds()))
        where = f"velero restore describe {restore['metadata']['name']} --details on {site}"
        if phase != drills.RESTORE_COMPLETED:
            why = found.get("failureReason") or "; ".join(found.get("validationErrors") or [])
            raise Stop(
                Phase.FAILED,
                "RestoreFailed",
                f"Velero's Restore ended {phase} ({found.get('errors') or 0} errors"
                f"{': ' + str(why)[:300] if why else ''}); see {where}",
            )
        if found.get("errors") or new["itemsRestored"] != new["totalItems"]:
            raise Stop(
                Phase.FAILED,
                "RestoreIncomplete",
                f"Velero restored {new['itemsRestored']} of {new['totalItems']} items with"
                f" {found.get('errors') or 0} errors; see {where}",
            )
        return self._verify(target, backup, included, new)

    def _verify(
        self, target: client.Cluster, backup: str, included: list[str], new: Manifest
    ) -> Stop:
        wanted = drills.download_request(self.name, backup, self.velero, self.spec.tenant)
        remote = cache.uncached(target)
        request_name = wanted["metadata"]["name"]
        request = remote.get(
            backups.VELERO_API_VERSION, drills.DOWNLOAD_KIND, request_name, self.velero
        )
        if request is None:
            target.create(wanted)
            return Stop(Phase.VERIFYING, "Verifying", "reading the backup's contents to compare")
        url = (request.get("status") or {}).get("downloadURL")
        if not url:
            return Stop(Phase.VERIFYING, "Verifying", "reading the backup's contents to compare")
        limit = int(getattr(self.settings, "drill_max_contents_mib", 256)) * 2**20
        try:
            items = drills.backup_items(self.fetch(str(url), limit), set(included), limit)
        except (tarfile.TarError, ValueError, KeyError, TypeError):
            raise Stop(
                Phase.FAILED,
                "BackupUnreadable",
                f"the contents of backup {backup} are not a Velero backup the operator can read",
            ) from None
        finally:
            _delete(
                target, backups.VELERO_API_VERSION, drills.DOWNLOAD_KIND, request_name, self.velero
            )
        compared, mismatches = drills.compare(items, lambda item: _restored(remote, item))
        new["compared"] = compared
        new["matched"] = not mismatches
        new["mismatches"] = mismatches[: recoverydrill.MAX_MISMATCHES]
        if mismatches:
            raise Stop(
                Phase.FAILED,
                "Mismatched",
                f"{len(mismatches)} of {compared} restored objects differ from backup {backup}:"
                f" {'; '.join(mismatches[:5])}"[:2000],
            )
        return Stop(
            Phase.SUCCEEDED,
            "Matched",
            f"backup {backup} restored onto {self.spec.target.site} in"
            f" {new.get('recoveryTimeSeconds')} s; all {compared} objects match the backup",
        )

    # -- after the end: clean up ----------------------------------------------------------

    def after(self, target: client.Cluster | None = None) -> Result:
        """A finished drill: delete what it restored unless `keep`; nothing once done."""
        status = self.status
        restored = list(status.get("restoredNamespaces") or [])
        cleanup = status.get("cleanup")
        if not restored and not status.get("restore"):
            wanted = None
        elif self.spec.keep:
            wanted = "Kept"
        else:
            wanted = "Deleted"
        said_already = any(
            item.get("type") == CLEANED_UP for item in status.get("conditions") or []
        )
        if said_already and (cleanup == wanted or (cleanup == "Deleted" and wanted == "Kept")):
            return Result("success", self.body)
        said: list[Event] = []
        next_look = None
        if wanted == "Deleted":
            try:
                site = target if target is not None else self._site()
                gone = self._clean(site, restored)
            except (Stop, client.ApiError) as error:
                wanted, next_look = "Failed", self.poll * 6
                message = f"the restored namespaces could not be deleted yet: {error}"[:1000]
            else:
                message = (
                    f"deleted the Restore and the restored namespaces on"
                    f" {self.spec.target.site}: {', '.join(gone) or 'none were left'}"
                )
                said.append(Event("Normal", "DrillCleanedUp", message))
        elif wanted == "Kept":
            message = (
                f"spec.keep: the restored namespaces stay on {self.spec.target.site}"
                f" ({', '.join(restored)}); set keep to false to delete them"
            )
        else:
            message = "nothing was restored, so nothing is left to clean up"
        condition = conditions.Condition(
            CLEANED_UP,
            conditions.TRUE if wanted in ("Deleted", None) else conditions.FALSE,
            wanted or "NothingRestored",
            message,
        )
        new = {**status, "conditions": _merge(status, condition, self.body, self.now)}
        if wanted is not None:
            new["cleanup"] = wanted
        statuses.replace(self.hub, constants.API_VERSION, KIND, self.body, new)
        return Result("success", self.body, said, next_look)

    def _clean(self, site: client.Cluster, restored: Sequence[str]) -> list[str]:
        restore = drills.restore_name(self.name)
        _delete(
            site,
            backups.VELERO_API_VERSION,
            drills.DOWNLOAD_KIND,
            f"{restore}-contents",
            self.velero,
        )
        _delete(site, backups.VELERO_API_VERSION, drills.RESTORE_KIND, restore, self.velero)
        gone = []
        for namespace in restored:
            found = cache.uncached(site).get("v1", "Namespace", namespace)
            if found is None:
                continue
            owner = (found["metadata"].get("labels") or {}).get(constants.LABEL_TENANT)
            if owner != self.spec.tenant:
                continue  # not the tenant's restored copy: never deleted by a drill
            _delete(site, "v1", "Namespace", namespace, None)
            gone.append(namespace)
        return gone


def _velero_list(
    cluster: client.Cluster, kind: str, namespace: str, selector: str
) -> list[Manifest]:
    try:
        return cluster.list(
            backups.VELERO_API_VERSION, kind, namespace=namespace, label_selector=selector
        )
    except client.ApiError as error:
        if error.status == 404 or "not found" in str(error).lower():
            raise Stop(
                Phase.PENDING, "VeleroNotInstalled", "Velero's kinds are not served there"
            ) from None
        raise


def _restored(remote: client.Cluster, item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    metadata = item["metadata"]
    try:
        return remote.get(
            str(item.get("apiVersion")),
            str(item.get("kind")),
            metadata["name"],
            metadata.get("namespace"),
        )
    except (client.ApiError, LookupError, ValueError):
        return None


def _delete(
    cluster: client.Cluster, api_version: str, kind: str, name: str, namespace: str | None
) -> None:
    try:
        cluster.delete(api_version, kind, name, namespace)
    except client.ApiError as error:
        if error.status != 404:
            raise


def _merge(
    status: Manifest, condition: conditions.Condition, body: Manifest, now: datetime
) -> list[Manifest]:
    kept = [item for item in status.get("conditions") or [] if item.get("type") != condition.type]
    merged = conditions.merge(
        status.get("conditions") or [], [condition], body["metadata"].get("generation"), now
    )
    return sorted(kept + merged, key=lambda item: str(item.get("type")))


def _record(
    hub: client.Cluster,
    body: Manifest,
    status: Manifest,
    new: Manifest,
    verdict: Stop,
    now: datetime,
    said: list[Event],
) -> Result:
    """Write the drill's status (only when it changed) and say what changed in Events."""
    finished = verdict.phase.value in recoverydrill.FINISHED
    state = (
        conditions.TRUE
        if verdict.phase == Phase.SUCCEEDED
        else conditions.FALSE
        if finished
        else conditions.UNKNOWN
    )
    condition = conditions.Condition(SUCCEEDED, state, verdict.reason, verdict.message)
    record = {
        **new,
        "observedGeneration": body["metadata"].get("generation"),
        "phase": verdict.phase.value,
        "conditions": _merge(status, condition, body, now),
    }
    record = {key: value for key, value in record.items() if value is not None}
    statuses.replace(hub, constants.API_VERSION, KIND, body, record, ("cleanup",))
    found = list(said)
    if status.get("phase") != verdict.phase.value or _reason(status) != verdict.reason:
        if verdict.phase == Phase.SUCCEEDED:
            found.append(Event("Normal", "DrillSucceeded", verdict.message))
        elif finished:
            found.append(Event("Warning", verdict.reason, verdict.message))
    return Result("success", body, found, written=record)


def _reason(status: Manifest) -> str | None:
    for item in status.get("conditions") or []:
        if item.get("type") == SUCCEEDED:
            return str(item.get("reason"))
    return None


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def records(
    tenants: Sequence[Manifest], found: Sequence[Manifest], settings: Any, now: datetime
) -> list[drills.TenantDrills]:
    """Each tenant's drill record for /metrics (from the hub's cache, at scrape time)."""
    period = float(getattr(settings, "drill_period_days", 180.0)) * 86400
    return drills.tenant_drills(tenants, found, now, period)
