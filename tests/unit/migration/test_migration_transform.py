"""Transform: every kind becomes portable (or is skipped, with the reason), table by table."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from govcloud.migration import transform

PLAN = transform.PlanRef(uid="uid-1", namespace="transport-apps", name="move-permits")
TARGET = "transport-apps"

Manifest = dict[str, Any]

BOOKKEEPING = {
    "uid": "abc",
    "resourceVersion": "42",
    "creationTimestamp": "2026-01-01T00:00:00Z",
    "generation": 3,
    "managedFields": [{"manager": "kubectl"}],
    "finalizers": ["example.com/keep"],
    "namespace": "legacy",
    "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "deployment.kubernetes.io/revision": "2",
        "team": "permits",
    },
    "labels": {"app": "permits"},
}


def obj(kind: str, name: str = "permits", spec: Manifest | None = None, **extra: Any) -> Manifest:
    body: Manifest = {
        "apiVersion": transform.API_VERSIONS.get(kind, "v1"),
        "kind": kind,
        "metadata": {"name": name, **BOOKKEEPING},
        "status": {"whatever": 1},
        **extra,
    }
    if spec is not None:
        body["spec"] = spec
    return body


def pod_template() -> Manifest:
    return {
        "metadata": {
            "labels": {"app": "permits", "controller-uid": "x", "job-name": "j"},
            "creationTimestamp": None,
        },
        "spec": {
            "nodeName": "node-7",
            "containers": [
                {"name": "app", "image": "app:1", "resources": {"requests": {"cpu": "250m"}}}
            ],
        },
    }


def decide(source: Manifest, **options: Any) -> transform.Decision:
    return transform.decide(source, target_namespace=TARGET, plan=PLAN, **options)


# -- every kind that moves: identity stripped, plan label added, kind-specific fields ------

MOVES: list[tuple[str, Manifest, Any]] = [
    ("ConfigMap", obj("ConfigMap", data={"a": "1"}), lambda m: m["data"] == {"a": "1"}),
    ("Secret", obj("Secret", type="Opaque", data={"p": "eA=="}), lambda m: m["type"] == "Opaque"),
    (
        "ServiceAccount",
        obj("ServiceAccount", name="runner", secrets=[{"name": "runner-token"}]),
        lambda m: "secrets" not in m,
    ),
    (
        "Service ClusterIP",
        obj(
            "Service",
            spec={
                "clusterIP": "10.0.0.7",
                "clusterIPs": ["10.0.0.7"],
                "ports": [{"port": 80}],
                "selector": {"app": "permits"},
            },
        ),
        lambda m: "clusterIP" not in m["spec"] and "clusterIPs" not in m["spec"],
    ),
    (
        "Service headless keeps clusterIP None",
        obj("Service", spec={"clusterIP": "None", "clusterIPs": ["None"], "ports": []}),
        lambda m: m["spec"]["clusterIP"] == "None",
    ),
    (
        "Service NodePort loses nodePort and healthCheckNodePort",
        obj(
            "Service",
            spec={
                "type": "LoadBalancer",
                "healthCheckNodePort": 30001,
                "ports": [{"port": 80, "nodePort": 30080}],
            },
        ),
        lambda m: (
            "nodePort" not in m["spec"]["ports"][0] and "healthCheckNodePort" not in m["spec"]
        ),
    ),
    (
        "Deployment",
        obj("Deployment", spec={"replicas": 3, "template": pod_template()}),
        lambda m: (
            m["spec"]["replicas"] == 3
            and "nodeName" not in m["spec"]["template"]["spec"]
            and "controller-uid" not in m["spec"]["template"]["metadata"]["labels"]
        ),
    ),
    (
        "Deployment already cut over runs its remembered count",
        obj(
            "Deployment",
            spec={"replicas": 0, "template": pod_template()},
        )
        | {
            "metadata": {
                "name": "permits",
                "annotations": {transform.ANNOTATION_ORIGINAL_REPLICAS: "4"},
            }
        },
        lambda m: (
            m["spec"]["replicas"] == 4
            and transform.ANNOTATION_ORIGINAL_REPLICAS not in m["metadata"]["annotations"]
        ),
    ),
    (
        "StatefulSet",
        obj("StatefulSet", spec={"replicas": 2, "template": pod_template()}),
        lambda m: "nodeName" not in m["spec"]["template"]["spec"],
    ),
    (
        "CronJob arrives suspended, remembering it ran",
        obj(
            "CronJob",
            spec={
                "schedule": "0 2 * * *",
                "suspend": False,
                "jobTemplate": {"spec": {"template": pod_template()}},
            },
        ),
        lambda m: (
            m["spec"]["suspend"] is True
            and m["metadata"]["annotations"][transform.ANNOTATION_ORIGINAL_SUSPEND] == "false"
        ),
    ),
    (
        "Job arrives suspended without its controller-uid selector",
        obj(
            "Job",
            spec={
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "x"}},
                "template": pod_template(),
            },
        ),
        lambda m: m["spec"]["suspend"] is True and "selector" not in m["spec"],
    ),
    (
        "Ingress",
        obj("Ingress", spec={"rules": [{"host": "permits.gov.cn"}]}),
        lambda m: m["spec"]["rules"][0]["host"] == "permits.gov.cn",
    ),
]


@pytest.mark.parametrize(("case", "source", "check"), MOVES, ids=[case for case, *_ in MOVES])
def test_moving_objects_are_portable(case: str, source: Manifest, check: Any) -> None:
    decision = decide(source)

    assert decision.action == transform.MOVE, case
    manifest = decision.manifest
    assert manifest is not None
    metadata = manifest["metadata"]
    assert metadata["namespace"] == TARGET
    for key in transform.STRIPPED_METADATA:
        assert key not in metadata, key
    assert "status" not in manifest
    assert metadata["labels"][transform.LABEL_PLAN_UID] == "uid-1"
    assert metadata["annotations"][transform.ANNOTATION_PLAN] == "transport-apps/move-permits"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in metadata["annotations"]
    assert check(manifest), case


def test_the_source_object_is_never_mutated() -> None:
    source = obj("Deployment", spec={"replicas": 3, "template": pod_template()})
    before = repr(source)

    decide(source)

    assert repr(source) == before


SKIPS: list[tuple[str, Manifest, str]] = [
    (
        "ReplicaSet owned by its Deployment",
        obj(
            "ReplicaSet",
            ownerReferences=[{"kind": "Deployment", "name": "permits", "controller": True}],
        ),
        "never move",
    ),
    (
        "ConfigMap owned by a controller",
        obj("ConfigMap")
        | {
            "metadata": {
                "name": "x",
                "ownerReferences": [{"kind": "Thing", "name": "t", "controller": True}],
            }
        },
        "moves with its owner",
    ),
    ("Event", obj("Event"), "never move"),
    ("Endpoints", obj("Endpoints"), "never move"),
    ("EndpointSlice", obj("EndpointSlice"), "never move"),
    ("Pod", obj("Pod"), "never move"),
    ("kube-root-ca.crt", obj("ConfigMap", name="kube-root-ca.crt"), "every namespace"),
    (
        "service-account token Secret",
        obj("Secret", name="t", type="kubernetes.io/service-account-token"),
        "issues its own",
    ),
    ("default ServiceAccount", obj("ServiceAccount", name="default"), "every namespace"),
    (
        "finished Job",
        obj("Job", status={"conditions": [{"type": "Complete", "status": "True"}]}),
        "never runs it again",
    ),
    (
        "object being deleted",
        obj("ConfigMap") | {"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
        "being deleted",
    ),
]


@pytest.mark.parametrize(("case", "source", "why"), SKIPS, ids=[case for case, *_ in SKIPS])
def test_skipped_objects_say_why(case: str, source: Manifest, why: str) -> None:
    decision = decide(source)

    assert decision.action == transform.SKIP, case
    assert decision.manifest is None
    assert why in decision.reason


def stateful_set(templates: tuple[str, ...] = ("data",), **spec: Any) -> Manifest:
    claims = [{"metadata": {"name": name}, "spec": {"resources": {}}} for name in templates]
    return obj(
        "StatefulSet",
        name="db",
        spec={"replicas": 1, "template": pod_template(), "volumeClaimTemplates": claims, **spec},
    )


DATA_HOLDERS = [
    ("a bound claim", obj("PersistentVolumeClaim", spec={"volumeName": "pv-1"})),
    ("an unbound claim", obj("PersistentVolumeClaim", spec={"resources": {}})),
    ("a StatefulSet with volumeClaimTemplates", stateful_set(("data", "logs"))),
]


@pytest.mark.parametrize(("case", "source"), DATA_HOLDERS, ids=[case for case, _ in DATA_HOLDERS])
def test_an_object_holding_data_needs_data_migration_and_never_moves_unnamed(
    case: str, source: Manifest
) -> None:
    decision = decide(source)

    assert decision.action == transform.NEEDS_DATA, case
    assert decision.manifest is None
    ref = f"{source['kind']}/{source['metadata']['name']}"
    assert f"name {ref} in spec.dataMigration.volumes" in decision.reason


def test_naming_another_volume_does_not_let_this_one_move() -> None:
    decision = decide(stateful_set(), empty_volumes=frozenset({"PersistentVolumeClaim/db"}))

    assert decision.action == transform.NEEDS_DATA


def test_a_named_claim_is_recreated_empty_without_its_volume() -> None:
    claim = obj(
        "PersistentVolumeClaim",
        spec={"volumeName": "pv-1", "dataSource": {"kind": "X"}, "resources": {}},
    )
    claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = "yes"

    decision = decide(claim, empty_volumes=frozenset({"PersistentVolumeClaim/permits"}))

    assert decision.action == transform.RECREATE_EMPTY
    assert decision.manifest is not None
    assert "volumeName" not in decision.manifest["spec"]
    assert "dataSource" not in decision.manifest["spec"]
    assert "pv.kubernetes.io/bind-completed" not in decision.manifest["metadata"]["annotations"]
    assert "created empty in the target" in decision.reason


def test_a_named_stateful_set_moves_and_its_copy_never_deletes_its_claims() -> None:
    source = stateful_set(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})

    decision = decide(source, empty_volumes=frozenset({"StatefulSet/db"}))

    assert decision.action == transform.MOVE
    assert decision.manifest is not None
    policy = decision.manifest["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenDeleted": "Retain"}
    assert "volumeClaimTemplates (data) created empty" in decision.reason


def test_a_stateful_set_without_templates_moves_like_a_deployment() -> None:
    decision = decide(stateful_set(templates=()))

    assert decision.action == transform.MOVE
    assert decision.reason == ""


def test_demand_is_requests_times_replicas() -> None:
    deployment = obj("Deployment", spec={"replicas": 3, "template": pod_template()})

    assert transform.demand(deployment) == {
        "requests.cpu": Decimal("0.750"),
        "requests.memory": Decimal(0),
        "pods": Decimal(3),
    }
    assert transform.demand(obj("ConfigMap")) == {}


def test_shortfall_names_each_resource_that_does_not_fit() -> None:
    wanted = {"requests.cpu": Decimal(3), "pods": Decimal(2)}

    problems = transform.shortfall(
        wanted, {"requests.cpu": "4", "pods": "10"}, {"requests.cpu": "2"}
    )

    assert problems == ["requests.cpu: needs 3, free 2"]
