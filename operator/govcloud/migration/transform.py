"""Object -> portable object: what moves, what is skipped and why, stripped of its cluster.

Pure: a source object (a dict as the API server returned it) goes in; a decision comes out,
with the manifest to server-side apply into the target namespace when the object moves.
What is stripped follows Velero's and Konveyor's experience: identity and bookkeeping
(uid, resourceVersion, managedFields, ...), status, owner links (the Deployment moves, not its
ReplicaSets or Pods), addresses the target cluster allocates itself (clusterIP, nodePort), and
controller-uid selectors; Jobs and CronJobs arrive suspended so nothing runs twice.

Data never moves with an object: a PersistentVolumeClaim, or a StatefulSet with
volumeClaimTemplates, would arrive empty. Such an object is NeedsDataMigration (it blocks the
assessment) unless the plan names it in spec.dataMigration, with the step that moves its data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from govcloud import constants
from govcloud.desired import quantity

Manifest = dict[str, Any]

LABEL_PLAN_UID = f"{constants.GROUP}/migration-plan-uid"
ANNOTATION_PLAN = f"{constants.GROUP}/migration-plan"
ANNOTATION_ORIGINAL_REPLICAS = f"{constants.GROUP}/original-replicas"
ANNOTATION_ORIGINAL_SUSPEND = f"{constants.GROUP}/original-suspend"
ANNOTATION_GRANT = f"{constants.GROUP}/migration-grant"

MOVE = "Move"
SKIP = "Skip"
RECREATE_EMPTY = "RecreateEmpty"
NEEDS_DATA = "NeedsDataMigration"

API_VERSIONS = {
    "ServiceAccount": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "CronJob": "batch/v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
}
WORKLOADS = ("Deployment", "StatefulSet")
SUSPENDABLE = ("CronJob", "Job")
# Made by the cluster from the objects that do move; never copied whatever a plan says.
NEVER_MOVED = frozenset({"Event", "Endpoints", "EndpointSlice", "Pod", "ReplicaSet"})

STRIPPED_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "generateName",
)
STRIPPED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    ANNOTATION_ORIGINAL_REPLICAS,
    ANNOTATION_ORIGINAL_SUSPEND,
)
CONTROLLER_UID_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


@dataclass(frozen=True)
class Decision:
    """Whether one source object moves, why not if not, and the manifest that moves."""

    kind: str
    name: str
    action: str
    reason: str = ""
    manifest: Manifest | None = None

    @property
    def moves(self) -> bool:
        return self.manifest is not None


@dataclass(frozen=True)
class PlanRef:
    """What every copied object is marked with, so it can be found and rolled back."""

    uid: str
    namespace: str
    name: str


def decide(
    source: Mapping[str, Any],
    *,
    target_namespace: str,
    plan: PlanRef,
    empty_volumes: frozenset[str] = frozenset(),
) -> Decision:
    """Move, skip (with the reason a person reads in the inventory), recreate empty, or
    needs data migration. `empty_volumes`: the plan's dataMigration.volumes (Kind/name)."""
    kind = str(source.get("kind", ""))
    name = str((source.get("metadata") or {}).get("name", ""))
    reason = skip_reason(source)
    if reason is not None:
        return Decision(kind, name, SKIP, reason)
    volumes = data_volumes(source)
    if volumes is None:
        return Decision(kind, name, MOVE, "", portable(source, target_namespace, plan))
    ref = f"{kind}/{name}"
    if ref not in empty_volumes:
        return Decision(
            kind,
            name,
            NEEDS_DATA,
            f"the data of {volumes} does not move with the plan: name {ref} in"
            " spec.dataMigration.volumes, with the step that moves the data, to create"
            f" {volumes} empty in the target",
        )
    return Decision(
        kind,
        name,
        RECREATE_EMPTY if kind == "PersistentVolumeClaim" else MOVE,
        f"{volumes} created empty in the target; spec.dataMigration.step moves the data",
        portable(source, target_namespace, plan),
    )


def data_volumes(source: Mapping[str, Any]) -> str | None:
    """The object's own data volumes in words, e.g. "its volumeClaimTemplates (data)"; None
    when it has none (only PersistentVolumeClaims and StatefulSets with templates have)."""
    kind = source.get("kind")
    if kind == "PersistentVolumeClaim":
        return "the claim"
    if kind != "StatefulSet":
        return None
    templates = (source.get("spec") or {}).get("volumeClaimTemplates") or []
    names = [str((item.get("metadata") or {}).get("name", "")) for item in templates]
    return f"its volumeClaimTemplates ({', '.join(names)})" if names else None


def skip_reason(source: Mapping[str, Any]) -> str | None:  # noqa: PLR0911 - one rule a line
    """Why an object never moves, whatever the plan says; None if it may."""
    kind = str(source.get("kind", ""))
    metadata = source.get("metadata") or {}
    name = str(metadata.get("name", ""))
    if kind in NEVER_MOVED or kind not in API_VERSIONS:
        return f"{kind} objects are made by the cluster and never move"
    if metadata.get("deletionTimestamp"):
        return "being deleted in the source"
    owner = next(
        (ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller")), None
    )
    if owner is not None:
        return f"owned by {owner.get('kind')} {owner.get('name')}; moves with its owner"
    if kind == "ConfigMap" and name == ROOT_CA_CONFIGMAP:
        return "published by Kubernetes in every namespace"
    if kind == "Secret" and source.get("type") == SA_TOKEN_TYPE:
        return "a service-account token; the target cluster issues its own"
    if kind == "ServiceAccount" and name == "default":
        return "created by Kubernetes in every namespace"
    if kind == "Job" and _finished(source):
        return "the Job has finished; a migration never runs it again"
    return None


def portable(source: Mapping[str, Any], target_namespace: str, plan: PlanRef) -> Manifest:
    """The object as it should be applied in the target namespace."""
    obj: Manifest = copy.deepcopy(dict(source))
    kind = str(obj.get("kind"))
    obj["apiVersion"] = API_VERSIONS.get(kind, obj.get("apiVersion", "v1"))
    obj.pop("status", None)
    metadata = obj.setdefault("metadata", {})
    source_annotations = dict(metadata.get("annotations") or {})
    for key in STRIPPED_METADATA:
        metadata.pop(key, None)
    metadata["namespace"] = target_namespace
    annotations = {
        key: value for key, value in source_annotations.items() if key not in STRIPPED_ANNOTATIONS
    }
    annotations[ANNOTATION_PLAN] = f"{plan.namespace}/{plan.name}"
    labels = dict(metadata.get("labels") or {})
    labels[LABEL_PLAN_UID] = plan.uid
    metadata["labels"] = labels
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _strip_spec(kind, spec, source_annotations, annotations)
    if kind == "ServiceAccount":
        obj.pop("secrets", None)
    metadata["annotations"] = annotations
    return obj


def _strip_spec(
    kind: str, spec: Manifest, source_annotations: Mapping[str, str], annotations: Manifest
) -> None:
    if kind == "Service":
        if spec.get("clusterIP") != "None":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        spec.pop("healthCheckNodePort", None)
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    if kind == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
        spec.pop("dataSource", None)
        spec.pop("dataSourceRef", None)
    if kind in WORKLOADS:
        remembered = source_annotations.get(ANNOTATION_ORIGINAL_REPLICAS)
        if remembered is not None and remembered.isdigit():
            # The source was already scaled down by a cutover: the copy runs the real count.
            spec["replicas"] = int(remembered)
        _strip_pod_template(spec.get("template"))
    if kind == "StatefulSet" and spec.get("volumeClaimTemplates"):
        # Deleting the copy (a rollback) must never take its claims with it.
        policy = dict(spec.get("persistentVolumeClaimRetentionPolicy") or {})
        policy["whenDeleted"] = "Retain"
        spec["persistentVolumeClaimRetentionPolicy"] = policy
    if kind == "Job":
        _strip_job(spec)
        spec["suspend"] = True
    if kind == "CronJob":
        original = source_annotations.get(ANNOTATION_ORIGINAL_SUSPEND)
        if original is None:
            original = "true" if spec.get("suspend") else "false"
        annotations[ANNOTATION_ORIGINAL_SUSPEND] = original
        spec["suspend"] = True
        job_template = spec.get("jobTemplate") or {}
        _strip_job(job_template.get("spec") or {})


def _strip_job(job_spec: Manifest) -> None:
    selector = job_spec.get("selector") or {}
    labels = selector.get("matchLabels") or {}
    if any(key in labels for key in CONTROLLER_UID_LABELS) or not job_spec.get("manualSelector"):
        job_spec.pop("selector", None)
        job_spec.pop("manualSelector", None)
    _strip_pod_template(job_spec.get("template"))


def _strip_pod_template(template: Any) -> None:
    if not isinstance(template, dict):
        return
    metadata = template.get("metadata") or {}
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for key in CONTROLLER_UID_LABELS:
            labels.pop(key, None)
    metadata.pop("creationTimestamp", None)
    pod = template.get("spec")
    if isinstance(pod, dict):
        pod.pop("nodeName", None)


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return any(
        item.get("type") in ("Complete", "Failed") and item.get("status") == "True"
        for item in status.get("conditions") or []
    )


# -- what a workload asks of the target's quota --------------------------------------------

DEMAND_RESOURCES = ("requests.cpu", "requests.memory", "pods")


def demand(manifest: Mapping[str, Any]) -> dict[str, Decimal]:
    """Requests (cpu, memory) and pods a moved workload will take in the target, at full scale."""
    kind = manifest.get("kind")
    if kind not in WORKLOADS:
        return {}
    spec = manifest.get("spec") or {}
    replicas = int(spec.get("replicas", 1) or 0)
    pod = (spec.get("template") or {}).get("spec") or {}
    totals = {"requests.cpu": Decimal(0), "requests.memory": Decimal(0)}
    for container in pod.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        for resource in ("cpu", "memory"):
            if resource in requests:
                totals[f"requests.{resource}"] += quantity.parse(str(requests[resource]))
    result = {key: value * replicas for key, value in totals.items()}
    result["pods"] = Decimal(replicas)
    return result


def shortfall(
    wanted: Mapping[str, Decimal], hard: Mapping[str, str], used: Mapping[str, str]
) -> list[str]:
    """Each resource whose demand exceeds the free quota (hard - used), in words."""
    problems = []
    for resource, amount in sorted(wanted.items()):
        if amount <= 0 or resource not in hard:
            continue
        free = quantity.parse(str(hard[resource])) - quantity.parse(str(used.get(resource, "0")))
        if amount > free:
            binary = quantity.is_binary(resource)
            problems.append(
                f"{resource}: needs {quantity.to_string(amount, binary=binary)},"
                f" free {quantity.to_string(max(free, Decimal(0)), binary=binary)}"
            )
    return problems
