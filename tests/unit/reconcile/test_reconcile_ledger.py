"""The platform ledger's backups against an in-memory cluster: its Schedule of exactly the
ledger's kinds, kept without a write at rest, its recovery point judged, Velero absent said."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from test_reconcile_backup import NOW, STAMP, Velero

from govcloud import metrics, settings
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import backups, ledger
from govcloud.k8s import client
from govcloud.reconcile import ledger as ledger_pass
from govcloud.reconcile import metering
from govcloud.reconcile import tenant as tenant_pass

Manifest = dict[str, Any]
SETTINGS = settings.Settings(backup_enabled=True, ledger_rpo="26h", ledger_ttl="2160h")


def backup(name: str, finished: str, phase: str = "Completed") -> Manifest:
    return {
        "kind": "Backup",
        "metadata": {
            "name": name,
            "namespace": "velero",
            "labels": {**ledger.labels(), backups.SCHEDULE_NAME_LABEL: ledger.SCHEDULE_NAME},
        },
        "status": {"phase": phase, "completionTimestamp": finished},
    }


def converge(hub: Velero, hours_later: float = 0.0) -> ledger_pass.Outcome:
    now = NOW + timedelta(hours=hours_later)
    return ledger_pass.converge(cast(client.Cluster, hub), SETTINGS, now)


def test_the_schedule_holds_the_ledgers_kinds_only_with_the_platform_policy() -> None:
    wanted = ledger.schedule(SETTINGS.ledger_policy)
    template = wanted["spec"]["template"]
    assert wanted["metadata"] == {
        "name": "govcloud.ledger",
        "namespace": "velero",
        "labels": {
            "app.kubernetes.io/managed-by": "govcloud-operator",
            "govcloud.io/ledger": "platform",
        },
    }
    assert wanted["spec"]["schedule"] == "0 17 * * *"  # daily, 01:00 UTC+8
    assert template["ttl"] == "2160h0m0s"  # 90 days
    assert template["includedClusterScopedResources"] == [
        "cloudtenants.govcloud.io",
        "subcenters.govcloud.io",
        "ratecards.govcloud.io",
        "resourceplans.govcloud.io",
        "usagereports.govcloud.io",
    ]
    assert template["includedNamespaceScopedResources"] == ["resourcerequests.govcloud.io"]
    assert "namespaces" not in str(template["includedClusterScopedResources"])  # but Velero's
    assert "includedResources" not in template  # the old filters do not mix with the new
    assert "govcloud.io/tenant" not in template["metadata"]["labels"]


def test_no_tenant_can_own_the_ledgers_schedule_name() -> None:

    assert not re.match(
        cloudtenant.TENANT_NAME_PATTERN, ledger.SCHEDULE_NAME.removeprefix("govcloud-")
    )
    assert not ledger.SCHEDULE_NAME.startswith(backups.SCHEDULE_PREFIX)


def test_the_restore_brings_back_status_of_exactly_the_kinds_asked() -> None:
    restore = ledger.restore("ledger-1", "govcloud.ledger-20261207", "velero")
    assert restore["spec"]["includedResources"] == list(ledger.KINDS)
    assert restore["spec"]["restoreStatus"] == {"includedResources": list(ledger.KINDS)}
    assert "namespaces" not in restore["spec"]["includedResources"]


def test_the_schedule_is_made_once_and_a_new_one_has_one_rpo_of_grace() -> None:
    hub = Velero()
    first = converge(hub)
    assert first.wrote
    assert hub.writes == [("apply", "govcloud.ledger")]
    assert first.snapshot.rpo_met
    assert first.snapshot.last_success is None
    assert first.due_in == pytest.approx(26 * 3600 + 1)
    again = converge(hub, 1)
    assert not again.wrote
    assert len(hub.writes) == 1  # at rest: nothing written
    late = converge(hub, 27)
    assert not late.snapshot.rpo_met
    assert "no backup has completed" in late.problems[0]


def test_the_newest_completed_backup_meets_the_objective_until_it_is_too_old() -> None:
    hub = Velero()
    converge(hub)
    done = (NOW + timedelta(hours=2)).strftime(STAMP)
    hub.objects[("Backup", "velero", "l1")] = backup("l1", done)
    hub.objects[("Backup", "velero", "l2")] = backup(
        "l2", (NOW + timedelta(hours=5)).strftime(STAMP), "Failed"
    )
    met = converge(hub, 3)
    assert met.snapshot.rpo_met
    assert not met.problems
    assert met.snapshot.last_success == (NOW + timedelta(hours=2)).timestamp()
    assert met.due_in == pytest.approx(25 * 3600 + 1)
    missed = converge(hub, 29)
    assert not missed.snapshot.rpo_met
    assert "l1" in missed.problems[0]


def test_a_hub_without_velero_misses_the_objective_and_says_so() -> None:
    outcome = converge(Velero(served=False))
    assert not outcome.snapshot.rpo_met
    assert "Velero is not installed" in outcome.problems[0]


def test_off_without_backups_or_when_the_ledger_setting_is_off() -> None:
    assert ledger_pass.enabled(SETTINGS)
    assert not ledger_pass.enabled(settings.Settings())
    assert not ledger_pass.enabled(
        settings.Settings(backup_enabled=True, ledger_backup_enabled=False)
    )


def test_the_settings_refuse_a_ledger_duration_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="ledger_rpo"):
        settings.Settings(ledger_rpo="1d")


OLD_UID = "11111111-1111-1111-1111-111111111111"
NEW_UID = "22222222-2222-2222-2222-222222222222"


def tenant(uid: str, ledger_uid: str | None = None) -> Manifest:
    status = {"ledgerUID": ledger_uid} if ledger_uid else {}
    return {"metadata": {"name": "jtj", "uid": uid}, "status": status}


def report(uid: str) -> Manifest:
    return {"spec": {"tenant": "jtj", "period": "2026-12", "tenantUID": uid}}


def test_a_restored_tenant_keeps_its_reports_and_a_re_created_one_does_not() -> None:
    restored = tenant(NEW_UID, OLD_UID)  # restored: a new UID, its status as it was
    assert ledger.tenant_uid(restored) == OLD_UID
    assert metering.owns(restored, report(OLD_UID))
    recreated = tenant(NEW_UID)  # deleted and created again: a new tenant
    assert ledger.tenant_uid(recreated) == NEW_UID
    assert not metering.owns(recreated, report(OLD_UID))


class StatusHub:
    def __init__(self) -> None:
        self.patches: list[Manifest] = []

    def patch_status(self, api_version: str, kind: str, name: str, patch: Manifest) -> None:
        self.patches.append(patch)


def test_a_tenant_pass_records_the_uid_its_records_are_kept_under_once() -> None:
    hub = StatusHub()
    body = tenant(OLD_UID)
    body["status"] = {"phase": "Ready"}
    tenant_pass.write_status(cast(client.Cluster, hub), body, {"phase": "Ready"})
    assert [patch["ledgerUID"] for patch in hub.patches] == [OLD_UID]
    body["status"]["ledgerUID"] = OLD_UID
    tenant_pass.write_status(cast(client.Cluster, hub), body, {"phase": "Ready"})
    assert len(hub.patches) == 1  # at rest: nothing
    restored = tenant(NEW_UID, OLD_UID)
    restored["status"]["phase"] = "Ready"
    tenant_pass.write_status(cast(client.Cluster, hub), restored, {"phase": "Ready"})
    assert len(hub.patches) == 1  # a restored tenant keeps the UID on record


def test_the_ledgers_series_appear_once_it_is_looked_at() -> None:
    recorder = metrics.Recorder(CollectorRegistry())
    assert "govcloud_ledger_backup" not in recorder.exposition().decode()
    recorder.ledger.record(
        metrics.LedgerSnapshot(rpo_met=True, rpo_seconds=93600, last_success=5.0)
    )
    text = recorder.exposition().decode()
    assert "govcloud_ledger_backup_rpo_met 1.0" in text
    assert "govcloud_ledger_backup_last_success_timestamp_seconds 5.0" in text
    assert "govcloud_ledger_backup_rpo_seconds 93600.0" in text
    recorder.ledger.record(metrics.LedgerSnapshot(rpo_met=False, rpo_seconds=93600))
    text = recorder.exposition().decode()
    assert "govcloud_ledger_backup_rpo_met 0.0" in text
    assert "govcloud_ledger_backup_last_success_timestamp_seconds" not in text
