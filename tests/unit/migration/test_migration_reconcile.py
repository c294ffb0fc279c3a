"""The migration reconciler's data rules against an in-memory API: rollback, Secrets, probing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from govcloud import constants
from govcloud.api.v1alpha1 import migrationplan
from govcloud.k8s import client
from govcloud.migration import transform
from govcloud.reconcile import migration

Manifest = dict[str, Any]
SOURCE, TARGET, TENANT = "legacy", "transport-apps", "transport"
PLAN: Manifest = {"metadata": {"name": "move", "namespace": TARGET, "uid": "plan-1"}}
UID = {transform.LABEL_PLAN_UID: "plan-1"}


class Fake:
    """Just enough of `client.Cluster`: objects by (kind, namespace, name), writes recorded."""

    def __init__(self, forbidden: tuple[str, ...] = ()) -> None:
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.forbidden = forbidden

    def add(self, manifest: Manifest) -> None:
        meta = manifest["metadata"]
        self.objects[(manifest["kind"], meta.get("namespace", ""), meta["name"])] = manifest

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        return copy.deepcopy(self.objects.get((kind, namespace or "", name)))

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, **options: Any
    ) -> list[Manifest]:
        if kind in self.forbidden:
            raise client.ApiError(f"{kind.lower()}s is forbidden", 403)
        wanted = dict(
            pair.split("=", 1) for pair in (options.get("label_selector") or "").split(",") if pair
        )
        return [
            copy.deepcopy(item)
            for (k, ns, _), item in self.objects.items()
            if k == kind
            and ns == namespace
            and all(item["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]

    def apply(self, manifest: Manifest) -> Manifest:
        self.writes.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        self.add(copy.deepcopy(manifest))
        return copy.deepcopy(manifest)

    def patch_merge(
        self, api_version: str, kind: str, name: str, patch: Manifest, namespace: str
    ) -> Manifest:
        self.writes.append(("patch", kind, name))
        return self.objects[(kind, namespace, name)]

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "", **_: Any) -> bool:
        self.writes.append(("delete", kind, name))
        return self.objects.pop((kind, namespace, name), None) is not None


def spec(*kinds: str, **extra: Any) -> migrationplan.MigrationPlanSpec:
    return migrationplan.parse(
        {
            "app": {"name": "permits", "securityLevel": 2},
            "source": {"namespace": SOURCE, "kinds": list(kinds)},
            "targetNamespace": TARGET,
            "deadline": "2030-01-01T00:00:00Z",
            **extra,
        }
    )


def deployment(namespace: str, replicas: int, ready: int, **meta: Any) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "permits", "namespace": namespace, "generation": 1, **meta},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "availableReplicas": ready},
    }


def plain(kind: str, namespace: str, name: str = "permits", **meta: Any) -> Manifest:
    return {
        "apiVersion": transform.API_VERSIONS[kind],
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, **meta},
    }


def rolled_back_app(source_deployment: Manifest | None) -> tuple[Fake, str]:
    """A cluster with the plan's copies in the target, and the source as given; rolled back."""
    cluster = Fake()
    cluster.add(deployment(TARGET, 2, 2, labels=UID))
    cluster.add(plain("PersistentVolumeClaim", TARGET, "uploads", labels=UID))
    cluster.add(plain("Secret", TARGET, "permits-db", labels=UID))
    if source_deployment is not None:
        cluster.add(source_deployment)
    plan = spec("Secret", "PersistentVolumeClaim", "Deployment")
    inventory = migration.gather(cluster, cluster, PLAN, plan)
    waiting = migration.rollback(cluster, cluster, PLAN, plan, inventory)
    return cluster, waiting


def deleted(cluster: Fake) -> list[str]:
    return [kind for verb, kind, _ in cluster.writes if verb == "delete"]


# -- a rollback never deletes the target while the source does not run -----------------------


def test_a_rollback_with_the_source_gone_keeps_every_copy_and_says_why() -> None:
    cluster, waiting = rolled_back_app(None)

    assert deleted(cluster) == []
    assert "Deployment legacy/permits to exist in the source" in waiting
    assert "copies in the target stay" in waiting


def test_a_rollback_with_the_source_scaled_down_by_hand_keeps_every_copy() -> None:
    # a kubectl apply of the legacy manifest drops the remembered-count annotation
    cluster, waiting = rolled_back_app(deployment(SOURCE, 0, 0))

    assert deleted(cluster) == []
    assert "to be scaled up in the source" in waiting


def test_a_rollback_waits_while_the_source_comes_back() -> None:
    source = deployment(
        SOURCE, 0, 0, annotations={transform.ANNOTATION_ORIGINAL_REPLICAS: "2"}, labels={}
    )
    cluster, waiting = rolled_back_app(source)

    assert ("patch", "Deployment", "permits") in cluster.writes  # scaled back to 2
    assert deleted(cluster) == []
    assert "to scale back to 2" in waiting


def test_a_rollback_with_the_source_running_deletes_the_copies_but_never_a_claim() -> None:
    cluster, waiting = rolled_back_app(deployment(SOURCE, 2, 2))

    assert waiting == ""
    assert sorted(deleted(cluster)) == ["Deployment", "Secret"]
    assert cluster.get("v1", "PersistentVolumeClaim", "uploads", TARGET) is not None


# -- volumes that hold data block the assessment ---------------------------------------------


def test_a_claim_in_the_source_blocks_the_assessment_until_the_plan_names_its_data_step() -> None:
    cluster = Fake()
    cluster.add(plain("PersistentVolumeClaim", SOURCE, "uploads"))
    blocked = spec("PersistentVolumeClaim")
    named = spec(
        "PersistentVolumeClaim",
        dataMigration={"volumes": ["PersistentVolumeClaim/uploads"], "step": "rsync by the DBA"},
    )

    problems = migration.data_problems(migration.gather(cluster, cluster, PLAN, blocked), blocked)
    accepted = migration.data_problems(migration.gather(cluster, cluster, PLAN, named), named)

    assert len(problems) == 1
    assert problems[0].startswith("PersistentVolumeClaim uploads: the data of the claim")
    assert accepted == []


def test_a_data_volume_the_plan_does_not_move_is_named_as_a_problem() -> None:
    cluster = Fake()
    typo = spec(
        "Deployment",
        dataMigration={"volumes": ["StatefulSet/postgress"], "step": "restore from backup"},
    )

    problems = migration.data_problems(migration.gather(cluster, cluster, PLAN, typo), typo)

    assert problems == [
        "spec.dataMigration.volumes names StatefulSet/postgress, which is not among the objects"
        " the plan moves"
    ]


# -- L1: Secrets the operator may not read are skipped, not a failure --------------------------


def test_secrets_the_operator_may_not_read_are_skipped_with_one_line_that_says_so() -> None:
    cluster = Fake(forbidden=("Secret",))
    cluster.add(plain("ConfigMap", SOURCE))
    plan = spec("ConfigMap", "Secret")

    inventory = migration.gather(cluster, cluster, PLAN, plan)
    waiting = migration.rollback(cluster, cluster, PLAN, plan, inventory)

    assert [(d.kind, d.action) for d in inventory.decisions] == [
        ("ConfigMap", transform.MOVE),
        ("Secret", transform.SKIP),
    ]
    assert "copySecrets: false" in inventory.decisions[1].reason
    assert waiting == ""


def test_other_forbidden_kinds_still_fail_loudly() -> None:
    cluster = Fake(forbidden=("ConfigMap",))

    with pytest.raises(client.ApiError):
        migration.gather(cluster, cluster, PLAN, spec("ConfigMap"))


# -- L2: a plan cannot probe which namespaces exist or who owns them ---------------------------


def namespace(name: str, **meta: Any) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}


def test_a_missing_a_foreign_and_an_ungranted_source_get_the_same_answer() -> None:
    answers = []
    for present in (
        None,
        namespace(SOURCE, labels={constants.LABEL_TENANT: "police"}),
        namespace(SOURCE),
        namespace(SOURCE, annotations={transform.ANNOTATION_GRANT: "police"}),
    ):
        cluster = Fake()
        if present is not None:
            cluster.add(present)
        answers.append(migration.source_verdict(cluster, TENANT, spec("ConfigMap")))

    assert len(set(answers)) == 1
    reason, message = answers[0]
    assert reason == "SourceNotGranted"
    assert "police" not in message
    assert "nothing was read or copied" in message


def test_a_missing_and_a_foreign_target_get_the_same_answer() -> None:
    foreign = Fake()
    foreign.add(namespace(TARGET, labels={constants.LABEL_TENANT: "police"}))

    missing = migration.target_verdict(Fake(), TENANT, TARGET)
    other = migration.target_verdict(foreign, TENANT, TARGET)

    assert missing == other
    assert missing[0] == "TargetNotOfTenant"
    assert "police" not in missing[1]
