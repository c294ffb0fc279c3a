"""Backups by policy (pure): a tenant's level and overrides -> its Velero Schedule and its RPO.

The platform sets a policy per security level (when to back up, how long to keep, the
recovery-point objective); a tenant may ask for more frequent backups or a longer retention
within the platform's limits, never for less than its level's policy, and a level-3 tenant
cannot turn its backups off. The Schedule covers exactly the tenant's own namespaces on one
cluster, never a wildcard; whether the objective is met is decided from the Velero Backups
the Schedule made, with the clock passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta

Manifest = dict[str, Any]

VELERO_API_VERSION = "velero.io/v1"
SCHEDULE_KIND = "Schedule"
BACKUP_KIND = "Backup"
# Velero labels each Backup a Schedule makes with the Schedule's name.
SCHEDULE_NAME_LABEL = "velero.io/schedule-name"
SCHEDULE_PREFIX = "govcloud-"
COMPLETED = "Completed"
# The level whose backups may never be turned off (MLPS 等保 level 3).
REQUIRED_LEVEL = 3

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class PolicyError(ValueError):
    """A platform policy that cannot work (raised at start-up, from the settings)."""


def parse_duration(text: str) -> float:
    """Seconds of a Go-style duration of hours, minutes and seconds (``26h``, ``1h30m``,
    ``720h0m0s``, ``45s``); raises ValueError for anything else or for zero."""
    match = _DURATION_RE.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration like 24h, 90m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = float(hours * 3600 + minutes * 60 + seconds)
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return total


def format_duration(seconds: float) -> str:
    """``seconds`` as Velero writes a duration (``720h0m0s``)."""
    whole = round(seconds)
    return f"{whole // 3600}h{whole % 3600 // 60}m{whole % 60}s"


@dataclass(frozen=True)
class LevelPolicy:
    """The platform's backups of one security level."""

    schedule: str  # cron (Velero: UTC unless prefixed CRON_TZ=...)
    interval: float  # seconds: the longest gap between two backups the schedule makes
    ttl: float  # seconds a backup is kept
    rpo: float  # seconds: the newest completed backup may be at most this old


@dataclass(frozen=True)
class Policy:
    """The platform policy: per level, and the limits of a tenant's overrides."""

    namespace: str
    levels: Mapping[int, LevelPolicy]
    min_interval: float  # a tenant may not ask for backups more often than this
    max_ttl: float  # nor keep them longer than this

    def check(self) -> None:
        """Raises PolicyError for a policy no tenant could follow."""
        for level in (1, 2, 3):
            found = self.levels.get(level)
            if found is None:
                raise PolicyError(f"no backup policy for security level {level}")
            if found.rpo < found.interval:
                raise PolicyError(
                    f"level {level}: the RPO ({format_duration(found.rpo)}) is shorter than the"
                    f" interval between backups ({format_duration(found.interval)}): it could"
                    " never be met"
                )
            if found.ttl > self.max_ttl:
                raise PolicyError(
                    f"level {level}: its retention ({format_duration(found.ttl)}) is longer than"
                    f" the longest allowed ({format_duration(self.max_ttl)})"
                )
            if not found.schedule.strip():
                raise PolicyError(f"level {level}: the schedule is empty")


@dataclass(frozen=True)
class TenantPlan:
    """What a tenant gets: its level's policy with the overrides that were allowed."""

    enabled: bool
    schedule: str
    ttl: float
    rpo: float
    refused: tuple[str, ...] = ()  # overrides not taken, each with why


def plan_for(level: int, override: cloudtenant.BackupSpec | None, policy: Policy) -> TenantPlan:
    """The tenant's backups: its level's policy, then each override the limits allow."""
    base = policy.levels[level]
    refused: list[str] = []
    enabled, schedule, ttl = True, base.schedule, base.ttl
    if override is None:
        return TenantPlan(True, schedule, ttl, base.rpo)
    if not override.enabled:
        if level >= REQUIRED_LEVEL:  # the CRD refuses this too; a spec stored before it
            refused.append("backups of a security level 3 system cannot be turned off")
        else:
            enabled = False
    if override.every is not None:
        every = parse_duration(override.every)
        if every > base.interval:
            refused.append(
                f"backup.every {override.every} is less frequent than the level {level} policy"
                f" (at least every {format_duration(base.interval)}); it may only be shorter"
            )
        elif every < policy.min_interval:
            refused.append(
                f"backup.every {override.every} is more frequent than the platform allows"
                f" (at most every {format_duration(policy.min_interval)})"
            )
        else:
            schedule = f"@every {format_duration(every)}"
    if override.ttl is not None:
        wanted = parse_duration(override.ttl)
        if wanted < base.ttl:
            refused.append(
                f"backup.ttl {override.ttl} is shorter than the level {level} retention"
                f" ({format_duration(base.ttl)}); it may only be longer"
            )
        elif wanted > policy.max_ttl:
            refused.append(
                f"backup.ttl {override.ttl} is longer than the platform keeps backups"
                f" ({format_duration(policy.max_ttl)} at most)"
            )
        else:
            ttl = wanted
    return TenantPlan(enabled, schedule, ttl, base.rpo, tuple(refused))


def schedule_name(tenant: str) -> str:
    """The tenant's Schedule in the Velero namespace (tenant names are at most 40 characters,
    so this stays a label value Velero can put on each Backup unchanged)."""
    return f"{SCHEDULE_PREFIX}{tenant}"


def own_namespaces(tenant: str, namespaces: Sequence[str]) -> list[str]:
    """The tenant's own namespaces among ``namespaces``: each named ``<tenant>-...``, sorted;
    never a wildcard, never another's."""
    prefix = f"{tenant}-"
    return sorted({name for name in namespaces if name.startswith(prefix) and "*" not in name})


def schedule(
    tenant: str, namespaces: Sequence[str], plan: TenantPlan, policy: Policy
) -> Manifest | None:
    """The Velero Schedule of the tenant's namespaces on one cluster; None when it should have
    none (backups off, or no namespace of it there: an empty includedNamespaces means every
    namespace to Velero)."""
    included = own_namespaces(tenant, namespaces)
    if not plan.enabled or not included:
        return None
    labels = meta.common_labels(tenant)
    return {
        "apiVersion": VELERO_API_VERSION,
        "kind": SCHEDULE_KIND,
        "metadata": meta.object_meta(schedule_name(tenant), policy.namespace, tenant),
        "spec": {
            "schedule": plan.schedule,
            # Velero writes false here once it has read a Schedule; said as it will be, so that
            # the operator's next pass finds nothing to change (no write at rest).
            "skipImmediately": False,
            # Backups outlive the Schedule (deleted with the tenant) until their ttl.
            "useOwnerReferencesInBackup": False,
            "template": {
                # Velero puts these on every Backup it makes (its schedule-name label too).
                "metadata": {"labels": dict(labels)},
                "includedNamespaces": included,
                "ttl": format_duration(plan.ttl),
            },
        },
    }


# -- the recovery point -----------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """Whether the tenant could be restored to a recent enough point, and when to look again."""

    rpo_met: bool
    last_backup: str | None = None
    last_time: datetime | None = None
    deadline: datetime | None = None  # when the objective is missed unless a backup completes
    in_grace: bool = False
    counted: int = field(default=0, compare=False)


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def recovery(
    schedule_created: datetime | None,
    backups: Sequence[Mapping[str, Any]],
    rpo: float,
    now: datetime,
    schedule: str,
) -> Recovery:
    """The newest Completed Backup the Schedule ``schedule`` made and whether it is younger
    than ``rpo`` seconds; without one, a new Schedule has one RPO from its creation."""
    completed = []
    for item in backups:
        labels = (item.get("metadata") or {}).get("labels") or {}
        status = item.get("status") or {}
        if labels.get(SCHEDULE_NAME_LABEL) != schedule or status.get("phase") != COMPLETED:
            continue
        finished = parse_time(status.get("completionTimestamp"))
        if finished is not None:
            completed.append((finished, str(item["metadata"]["name"])))
    objective = timedelta(seconds=rpo)
    if completed:
        last_time, last_name = max(completed)
        deadline = last_time + objective
        return Recovery(now < deadline, last_name, last_time, deadline, counted=len(completed))
    if schedule_created is None:
        return Recovery(False)
    deadline = schedule_created + objective
    return Recovery(now < deadline, deadline=deadline, in_grace=now < deadline)


def labels_of(tenant: str) -> dict[str, str]:
    return meta.common_labels(tenant)


def selector(tenant: str) -> str:
    """The tenant's Schedules and the Backups they made."""
    return meta.selector(tenant)


def managed_selector() -> str:
    return f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"
