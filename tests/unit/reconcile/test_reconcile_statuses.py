"""A pass writes an object's whole status only when it differs, clears what it left out, and
never touches the append-only records it keeps."""

from __future__ import annotations

from typing import Any

import pytest

from govcloud.k8s import client
from govcloud.reconcile import statuses

Manifest = dict[str, Any]


class RecordingHub:
    def __init__(self, missing: bool = False) -> None:
        self.patches: list[tuple[str, Manifest, tuple[str, ...]]] = []
        self.missing = missing

    def patch_status(
        self, api_version: str, kind: str, name: str, status: Manifest, *namespace: str
    ) -> Manifest:
        if self.missing:
            raise client.ApiError("not found", 404)
        self.patches.append((name, status, namespace))
        return {}


def body(status: Manifest, namespace: str | None = None) -> Manifest:
    metadata = {"name": "jtj-2027", **({"namespace": namespace} if namespace else {})}
    return {"metadata": metadata, "status": status}


def replace(hub: Any, found: Manifest, status: Manifest) -> bool:
    return statuses.replace(hub, "govcloud.io/v1alpha1", "ResourcePlan", found, status, {"history"})


def test_the_same_status_again_writes_nothing() -> None:
    hub = RecordingHub()
    stored = {"observedGeneration": 2, "history": [{"state": "Approved"}]}
    assert replace(hub, body(stored), {"observedGeneration": 2}) is False
    assert hub.patches == []


def test_a_field_the_pass_left_out_is_cleared_even_when_nothing_else_changed() -> None:
    hub = RecordingHub()
    stored = {"observedGeneration": 2, "pendingSince": "2026-12-01T00:00:00Z", "history": []}
    assert replace(hub, body(stored), {"observedGeneration": 2}) is True
    assert hub.patches == [("jtj-2027", {"observedGeneration": 2, "pendingSince": None}, ())]


def test_a_namespaced_object_is_written_in_its_namespace() -> None:
    hub = RecordingHub()
    assert replace(hub, body({}, "jtj-app"), {"observedGeneration": 1}) is True
    assert hub.patches == [("jtj-2027", {"observedGeneration": 1}, ("jtj-app",))]


def test_an_object_deleted_meanwhile_is_no_error_and_no_write() -> None:
    assert replace(RecordingHub(missing=True), body({}), {"observedGeneration": 1}) is False


def test_other_api_errors_are_raised() -> None:
    class Refusing(RecordingHub):
        def patch_status(self, *args: Any) -> Manifest:
            raise client.ApiError("conflict", 409)

    with pytest.raises(client.ApiError):
        replace(Refusing(), body({}), {"observedGeneration": 1})
