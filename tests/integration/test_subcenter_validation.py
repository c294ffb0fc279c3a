"""The real API server refuses bad SubCenters (and bad placements) with the models' messages.

The cases are the ones the model unit tests use (tests/unit/api/subcenter_cases.py), so the
operator and the API server agree on what is refused and say it the same way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import _tenant_helpers as helpers
import pytest

from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration


def _load_subcenter_cases() -> ModuleType:
    """tests/unit/api/subcenter_cases.py, loaded by path (tests/ is not a package)."""
    loaded = sys.modules.get("subcenter_cases")
    if loaded is not None:
        return loaded
    path = Path(__file__).resolve().parents[1] / "unit" / "api" / "subcenter_cases.py"
    spec = importlib.util.spec_from_file_location("subcenter_cases", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["subcenter_cases"] = module  # dataclasses look their module up while executing
    spec.loader.exec_module(module)
    return module


cases = _load_subcenter_cases()


def rename(obj: dict[str, Any]) -> dict[str, Any]:
    """Give the case's site a unique name, unless the case is about the name itself."""
    if obj["metadata"]["name"] in (cases.GOOD_NAME, "changfeng"):
        obj["metadata"]["name"] = helpers.unique(obj["metadata"]["name"])
    return obj


def create(kubectl: testing.Kubectl, obj: dict[str, Any]) -> Any:
    return kubectl.run("create", "-f", "-", stdin=json.dumps(obj, ensure_ascii=False))


@contextlib.contextmanager
def deleted_afterwards(kubectl: testing.Kubectl, kind: str, name: str) -> Iterator[None]:
    try:
        yield
    finally:
        kubectl.run("delete", kind, name, "--ignore-not-found", "--wait=false")


# What the plain OpenAPI schema (not CEL) answers; the API server words these itself.
SCHEMA_WORDS = {
    "unknown-tier": 'Unsupported value: "village": supported values: "city", "county", "devzone"',
    "no-secret-ref": "spec.kubeconfigSecretRef: Required value",
    "secret-ref-without-namespace": "spec.kubeconfigSecretRef.namespace: Required value",
    "no-max-level": "spec.maxSecurityLevel: Required value",
    "no-region": "spec.region: Required value",
    "retire-by-not-a-date": "spec.retireBy in body must be of type date",
    "unknown-field": 'unknown field "spec.kubeconfig"',
    "label-value-with-space": 'spec.placementLabels.zone: Invalid value: "west zone"',
}


def test_every_schema_case_has_the_api_servers_words() -> None:
    assert set(SCHEMA_WORDS) == {case.id for case in cases.SCHEMA_CASES}


@pytest.mark.parametrize("case", [*cases.CEL_CASES, *cases.SCHEMA_CASES], ids=lambda case: case.id)
def test_the_api_server_refuses_bad_input_with_a_readable_message(
    kubectl: testing.Kubectl, crds: None, case: Any
) -> None:
    obj = rename(case.object())
    name = obj["metadata"]["name"]

    with deleted_afterwards(kubectl, "subcenter", name):
        result = create(kubectl, obj)

        assert result.returncode != 0, f"{case.id} was accepted"
        assert SCHEMA_WORDS.get(case.id, case.message) in result.stderr, result.stderr
        assert kubectl.get("subcenter", name) is None


def test_the_good_sites_are_accepted_and_the_defaults_are_filled_in(
    kubectl: testing.Kubectl, crds: None
) -> None:
    """The control for every case above: only the change each case makes is refused."""
    federated, hosted = rename(cases.good_object()), rename(cases.hosted_object())
    with (
        deleted_afterwards(kubectl, "subcenter", federated["metadata"]["name"]),
        deleted_afterwards(kubectl, "subcenter", hosted["metadata"]["name"]),
    ):
        for obj in (federated, hosted):
            result = create(kubectl, obj)
            assert result.returncode == 0, result.stderr

        stored = kubectl.get("subcenter", federated["metadata"]["name"])

        assert stored is not None
        assert stored["spec"]["probe"] == {
            "intervalSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        }
        assert stored["spec"]["kubeconfigSecretRef"]["key"] == "kubeconfig"
        assert stored["spec"]["credentialExpiryWarningDays"] == 30


def test_switching_a_hosted_site_to_federated_needs_retire_by_removed(
    kubectl: testing.Kubectl, crds: None
) -> None:
    obj = rename(cases.hosted_object())
    name = obj["metadata"]["name"]
    with deleted_afterwards(kubectl, "subcenter", name):
        assert create(kubectl, obj).returncode == 0

        half = kubectl.run(
            "patch", "subcenter", name, "--type=merge", "-p", '{"spec":{"mode":"federated"}}'
        )
        whole = kubectl.run(
            "patch",
            "subcenter",
            name,
            "--type=merge",
            "-p",
            '{"spec":{"mode":"federated","retireBy":null}}',
        )

        assert half.returncode != 0
        assert "retireBy applies only to hosted sub-centers" in half.stderr
        assert whole.returncode == 0, whole.stderr


def test_printer_columns_show_readiness_and_capacity(subcenter: cluster.ControlPlane) -> None:
    # A cluster no operator watches: the status written here stays as written.
    kubectl = testing.Kubectl(subcenter.kubeconfig)
    kubectl.apply_crds()
    obj = rename(cases.good_object())
    name = obj["metadata"]["name"]
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Healthy",
                "message": "the sub-center answers and is ready",
                "lastTransitionTime": "2026-03-01T12:00:00Z",
                "observedGeneration": 1,
            }
        ],
        "kubernetesVersion": "v1.36.3",
        "nodeCount": 2,
        "summary": {"cpu": "8/32"},
        "tenantCount": 1,
    }
    with deleted_afterwards(kubectl, "subcenter", name):
        assert create(kubectl, obj).returncode == 0
        kubectl(
            "patch",
            "subcenter",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

        table = kubectl("get", "subc", name, "--no-headers").split()

        assert table[:8] == [name, "肥西县", "federated", "True", "v1.36.3", "2", "8/32", "1"]


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        ({"subCenter": "hub"}, "to keep the tenant on the hub (the central cluster), remove"),
        ({"subCenter": "Feixi"}, "placement.subCenter must be the name of a SubCenter"),
        ({}, "spec.placement.subCenter: Required value"),
    ],
)
def test_bad_tenant_placements_are_refused(
    kubectl: testing.Kubectl, crds: None, placement: dict[str, str], message: str
) -> None:
    name = helpers.unique("placed")
    obj = helpers.tenant_manifest(name)
    obj["spec"]["placement"] = placement
    with deleted_afterwards(kubectl, "cloudtenant", name):
        result = create(kubectl, obj)

        assert result.returncode != 0
        assert message in result.stderr, result.stderr
