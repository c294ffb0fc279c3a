"""Backups by policy (pure): the level's policy, overrides within limits, the Schedule, the RPO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from govcloud import settings
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import backups

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOUR = 3600.0
POLICY = settings.Settings(backup_enabled=True).backup_policy


def override(**fields: Any) -> cloudtenant.BackupSpec:
    return cloudtenant.BackupSpec.model_validate(fields)


# -- durations and the platform policy --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("26h", 26 * HOUR),
        ("90m", 5400.0),
        ("1h30m", 5400.0),
        ("720h0m0s", 720 * HOUR),
        ("45s", 45.0),
    ],
)
def test_durations_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert backups.parse_duration(text) == seconds
    assert backups.parse_duration(backups.format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "0h", "1d", "h", "-1h", "1.5h", "24"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        backups.parse_duration(text)


def test_the_default_policy_backs_level_3_up_daily_and_levels_1_and_2_weekly() -> None:
    assert POLICY.namespace == "velero"
    assert POLICY.levels[3].interval == 24 * HOUR
    assert POLICY.levels[3].ttl == 720 * HOUR
    assert POLICY.levels[3].rpo == 26 * HOUR
    for level in (1, 2):
        assert POLICY.levels[level].interval == 168 * HOUR
        assert POLICY.levels[level].rpo >= POLICY.levels[level].interval


def test_a_level_given_in_the_environment_replaces_only_that_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "GOVCLOUD_BACKUP_LEVELS",
        '{"2": {"schedule": "*/5 * * * *", "interval": "5m", "ttl": "1h", "rpo": "30s"}}',
    )
    with pytest.raises(pydantic.ValidationError, match=r"RPO .* is shorter than the interval"):
        settings.Settings()
    monkeypatch.setenv(
        "GOVCLOUD_BACKUP_LEVELS",
        '{"2": {"schedule": "*/5 * * * *", "interval": "5m", "ttl": "1h", "rpo": "7m"}}',
    )
    policy = settings.Settings().backup_policy
    assert policy.levels[2] == backups.LevelPolicy("*/5 * * * *", 300.0, HOUR, 420.0)
    assert policy.levels[3] == POLICY.levels[3]


def test_a_level_kept_longer_than_the_platform_allows_is_refused_at_start_up() -> None:
    with pytest.raises(pydantic.ValidationError, match="longer than the longest allowed"):
        settings.Settings(backup_max_ttl="100h")


# -- a tenant's plan: its level, then overrides within the limits ---------------------------


def test_without_overrides_a_tenant_gets_its_levels_policy() -> None:
    plan = backups.plan_for(3, None, POLICY)
    assert plan == backups.TenantPlan(True, "0 18 * * *", 720 * HOUR, 26 * HOUR)


def test_more_frequent_backups_and_a_longer_retention_are_granted() -> None:
    plan = backups.plan_for(3, override(every="6h", ttl="2160h"), POLICY)
    assert plan.schedule == "@every 6h0m0s"
    assert plan.ttl == 2160 * HOUR
    assert plan.rpo == 26 * HOUR  # the objective stays the level's
    assert plan.refused == ()


@pytest.mark.parametrize(
    ("level", "fields", "why"),
    [
        (3, {"every": "48h"}, "less frequent than the level 3 policy"),
        (1, {"every": "200h"}, "less frequent than the level 1 policy"),
        (3, {"every": "10m"}, "more frequent than the platform allows"),
        (3, {"ttl": "24h"}, "shorter than the level 3 retention"),
        (2, {"ttl": "9000h"}, "longer than the platform keeps backups"),
        (3, {"enabled": False}, "cannot be turned off"),
    ],
)
def test_an_override_beyond_the_limits_is_refused_and_the_level_policy_applies(
    level: int, fields: dict[str, Any], why: str
) -> None:
    if fields.get("enabled") is False:  # the model refuses it too: a spec stored before
        spec = cloudtenant.BackupSpec.model_construct(enabled=False, every=None, ttl=None)
    else:
        spec = override(**fields)
    plan = backups.plan_for(level, spec, POLICY)
    assert len(plan.refused) == 1, plan.refused
    assert why in plan.refused[0], plan.refused
    base = POLICY.levels[level]
    assert (plan.enabled, plan.schedule, plan.ttl) == (True, base.schedule, base.ttl)


def test_levels_1_and_2_may_turn_backups_off() -> None:
    assert not backups.plan_for(2, override(enabled=False), POLICY).enabled
    assert not backups.plan_for(1, override(enabled=False), POLICY).enabled


# -- the Schedule -------------------------------------------------------------------------------


def test_the_schedule_covers_exactly_the_tenants_own_namespaces() -> None:
    plan = backups.plan_for(3, None, POLICY)
    found = backups.schedule(
        "finance", ["finance-web", "finance-db", "health-db", "*", "financex-a"], plan, POLICY
    )
    assert found is not None
    assert found["apiVersion"] == "velero.io/v1"
    assert found["kind"] == "Schedule"
    assert found["metadata"]["name"] == "govcloud-finance"
    assert found["metadata"]["namespace"] == "velero"
    labels = {"app.kubernetes.io/managed-by": "govcloud-operator", "govcloud.io/tenant": "finance"}
    assert found["metadata"]["labels"] == labels
    spec = found["spec"]
    assert spec["schedule"] == "0 18 * * *"
    assert spec["useOwnerReferencesInBackup"] is False
    assert spec["skipImmediately"] is False
    assert spec["template"]["includedNamespaces"] == ["finance-db", "finance-web"]
    assert spec["template"]["ttl"] == "720h0m0s"
    assert spec["template"]["metadata"]["labels"] == labels
    assert "excludedNamespaces" not in spec["template"]


def test_a_tenant_without_namespaces_there_or_without_backups_gets_no_schedule() -> None:
    # An empty includedNamespaces is every namespace to Velero: never written.
    assert backups.schedule("finance", [], backups.plan_for(3, None, POLICY), POLICY) is None
    assert (
        backups.schedule("finance", ["health-db"], backups.plan_for(3, None, POLICY), POLICY)
        is None
    )
    off = backups.plan_for(2, override(enabled=False), POLICY)
    assert backups.schedule("finance", ["finance-web"], off, POLICY) is None


# -- the recovery point -----------------------------------------------------------------------


def backup(
    name: str, phase: str, finished: datetime | None, schedule: str = "govcloud-a"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finished is not None:
        status["completionTimestamp"] = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "labels": {backups.SCHEDULE_NAME_LABEL: schedule}},
        "status": status,
    }


def test_the_newest_completed_backup_of_the_schedule_is_the_recovery_point() -> None:
    found = [
        backup("old", "Completed", NOW - timedelta(hours=30)),
        backup("new", "Completed", NOW - timedelta(hours=2)),
        backup("failed", "Failed", NOW - timedelta(hours=1)),
        backup("partial", "PartiallyFailed", NOW - timedelta(minutes=30)),
        backup("running", "InProgress", None),
        backup("other", "Completed", NOW - timedelta(minutes=5), schedule="govcloud-b"),
    ]
    point = backups.recovery(NOW - timedelta(days=9), found, 26 * HOUR, NOW, "govcloud-a")
    assert point.rpo_met
    assert point.last_backup == "new"
    assert point.last_time == NOW - timedelta(hours=2)
    assert point.deadline == NOW + timedelta(hours=24)


def test_a_newest_backup_older_than_the_rpo_misses_it() -> None:
    found = [backup("old", "Completed", NOW - timedelta(hours=26, seconds=1))]
    point = backups.recovery(NOW - timedelta(days=9), found, 26 * HOUR, NOW, "govcloud-a")
    assert not point.rpo_met
    assert point.last_backup == "old"


def test_a_new_schedule_has_one_rpo_of_grace_then_misses_it() -> None:
    young = backups.recovery(NOW - timedelta(hours=25), [], 26 * HOUR, NOW, "govcloud-a")
    assert young.rpo_met
    assert young.in_grace
    assert young.last_backup is None
    assert young.deadline == NOW + timedelta(hours=1)
    old = backups.recovery(NOW - timedelta(hours=27), [], 26 * HOUR, NOW, "govcloud-a")
    assert not old.rpo_met
    assert old.last_backup is None
    failed_only = [backup("failed", "Failed", NOW - timedelta(hours=1))]
    assert not backups.recovery(
        NOW - timedelta(hours=27), failed_only, 26 * HOUR, NOW, "govcloud-a"
    ).rpo_met


def test_without_a_schedule_there_is_no_recovery_point() -> None:
    assert not backups.recovery(None, [], 26 * HOUR, NOW, "govcloud-a").rpo_met


# -- the spec ---------------------------------------------------------------------------------


def test_the_spec_refuses_turning_off_backups_at_level_3_and_malformed_durations() -> None:
    with pytest.raises(pydantic.ValidationError, match="cannot be turned off"):
        cloudtenant.CloudTenantSpec.model_validate(
            {
                "displayName": "x",
                "unit": {"code": "x", "tier": "county"},
                "contacts": [{"name": "x", "email": "x@example.gov.cn"}],
                "securityLevel": 3,
                "namespaces": [{"name": "app"}],
                "backup": {"enabled": False},
            }
        )
    for bad in ("1d", "", "6", "6h30"):
        with pytest.raises(pydantic.ValidationError, match="a duration in hours and minutes"):
            override(every=bad)
