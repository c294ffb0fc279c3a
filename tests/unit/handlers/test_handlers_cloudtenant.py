"""A tenant pass that ends after the tenant's DELETED event brings none of its series back."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from govcloud import metrics
from govcloud.handlers import cloudtenant, startup
from govcloud.reconcile import tenant_types

SNAPSHOT = metrics.TenantSnapshot(tier="city", phase="Active", namespaces=1)


class Scheduler:
    def __init__(self) -> None:
        self.due: dict[Any, float] = {}

    def at(self, key: Any, delay: float, **_: Any) -> None:
        self.due[key] = delay

    def cancel(self, key: Any) -> None:
        self.due.pop(key, None)


def memo() -> Any:
    return types.SimpleNamespace(
        recorder=metrics.Recorder(CollectorRegistry()),
        scheduler=Scheduler(),
        failures={},
        config=types.SimpleNamespace(resync_seconds=60.0),
        hub=None,
        clusters=None,
    )


def passes_while(event: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass converges; `event` (if any) about the tenant arrives while it runs."""

    async def run(memo: Any, function: Any, *args: Any) -> tenant_types.Result:
        if event is not None:
            cloudtenant.tenant_changed(memo, event, {"metadata": {"name": "jtj"}})
        return tenant_types.Result(outcome="success", snapshot=SNAPSHOT)

    monkeypatch.setattr(startup, "run_in_executor", run)


def test_a_pass_ending_after_the_tenants_deletion_does_not_record_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = memo()
    passes_while(None, monkeypatch)
    asyncio.run(cloudtenant.reconcile("jtj", found))
    assert "jtj" in found.recorder.tenants()
    passes_while("DELETED", monkeypatch)
    asyncio.run(cloudtenant.reconcile("jtj", found))
    assert "jtj" not in found.recorder.tenants()
    assert 'tenant="jtj"' not in found.recorder.exposition().decode()


def test_a_tenant_created_again_under_the_name_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = memo()
    monkeypatch.setattr(cloudtenant, "request", lambda memo, name: None)
    passes_while("DELETED", monkeypatch)
    asyncio.run(cloudtenant.reconcile("jtj", found))
    passes_while("ADDED", monkeypatch)
    asyncio.run(cloudtenant.reconcile("jtj", found))
    assert "jtj" in found.recorder.tenants()


def test_only_the_newest_deletions_are_remembered() -> None:
    remembered = cloudtenant.Deleted()
    for index in range(cloudtenant.DELETED_KEPT + 5):
        remembered.add(f"t{index}")
    assert "t0" not in remembered
    assert f"t{cloudtenant.DELETED_KEPT + 4}" in remembered
