"""Releasing and deleting a CloudTenant's namespaces: after converge's apply, and on finalize."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from govcloud import constants
from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta, networkpolicies, quotas
from govcloud.desired import namespaces as desired_namespaces
from govcloud.k8s import cache, client
from govcloud.reconcile import conditions, events, finalizers, tenant_types

API_NETWORK_POLICY = ("networking.k8s.io/v1", "NetworkPolicy")
DELETION_CONFIRMED = "DeletionConfirmed"

# kopf's own finalizer (its default), held while a timer runs on the object; kopf stops serving
# a resource whose CRD is terminating, so only this operator's code can remove it then.
KOPF_FINALIZER = finalizers.KOPF_FINALIZER
CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_NAME = f"{meta.CLOUDTENANT_PLURAL}.{constants.GROUP}"
CRD_DELETED_MESSAGE = (
    "the CloudTenant CRD is being deleted: the tenant's namespaces, quotas, network policies"
    " and RoleBindings are all kept as they are; reinstall the CRD and apply the tenant again"
    " to manage them"
)

Manifest = dict[str, Any]


Event = events.Event


# -- release ------------------------------------------------------------------------------


def thaw(applied: tenant_types.Applier, manifest: Manifest) -> None:
    """Lift the frozen label from a namespace whose tenant is no longer suspended, or that a
    tenant took back after it was released (then the released quota and policy go too).

    A server-side apply that stops setting a label removes it, but drift detection tolerates
    extra labels, so the apply alone would never be sent.
    """
    name = manifest["metadata"]["name"]
    found = applied.current.get(("Namespace", "", name)) or {}
    frozen = (found.get("metadata", {}).get("labels") or {}).get(constants.LABEL_FROZEN)
    if frozen is None or constants.LABEL_FROZEN in manifest["metadata"]["labels"]:
        return
    try:
        if frozen == desired_namespaces.FROZEN_RELEASED:
            for api_version, kind in (("v1", "ResourceQuota"), API_NETWORK_POLICY):
                applied.target.delete(api_version, kind, meta.RELEASED_NAME, name)
        patch = {"metadata": {"labels": {constants.LABEL_FROZEN: None}}}
        thawed = applied.target.patch_merge("v1", "Namespace", name, patch)
        applied.current[("Namespace", "", name)] = thawed or found
    except client.ApiError as error:
        applied.errors.append(f"Namespace {name}: {error}")


def release_namespaces(
    hub: client.Cluster,
    observed: tenant_types.Observed,
    spec: cloudtenant.CloudTenantSpec | None,
    wanted: set[str],
    events: list[Event],
    errors: list[str],
) -> None:
    """Namespaces the tenant owns but no longer wants follow its deletion policy.

    Delete deletes only a namespace this very tenant created (its UID is recorded on it) and
    only when the tenant confirms it; otherwise the namespace is released as under Retain.
    """
    tenant = observed.tenant["metadata"]["name"]
    policy = spec.deletion_policy if spec is not None else _policy_of(observed.tenant)
    for name, namespace in observed.namespaces.items():
        labels = namespace["metadata"].get("labels") or {}
        if name in wanted or labels.get(constants.LABEL_TENANT) != tenant:
            continue
        kept = (
            why_kept(observed.tenant, namespace)
            if policy == cloudtenant.DeletionPolicy.DELETE
            else "deletionPolicy: Retain"
        )
        try:
            if kept is None:
                if not namespace["metadata"].get("deletionTimestamp"):
                    hub.delete("v1", "Namespace", name)
                    events.append(
                        Event(
                            "Normal",
                            "NamespaceDeleted",
                            f"deleted namespace {name} (deletionPolicy: Delete, confirmed)",
                        )
                    )
            else:
                orphan(hub, tenant, name, observed)
                events.append(
                    Event(
                        "Normal" if policy == cloudtenant.DeletionPolicy.RETAIN else "Warning",
                        "NamespaceRetained",
                        f"released namespace {name}; it and its data are kept ({kept})",
                    )
                )
        except client.ApiError as error:
            errors.append(f"releasing namespace {name}: {error}")


def why_kept(tenant: Manifest, namespace: Manifest) -> str | None:
    """Why deletionPolicy Delete keeps `namespace`; None when it may be deleted."""
    name = tenant["metadata"]["name"]
    if was_adopted(namespace):
        return "it was adopted, and a namespace the tenant did not create is never deleted"
    if not delete_confirmed(tenant):
        return (
            f"deletionPolicy: Delete is not confirmed; to delete, annotate the CloudTenant"
            f" {constants.ANNOTATION_CONFIRM_DELETE}={name}"
        )
    creator = desired_namespaces.owner_uid(namespace)
    if creator != tenant["metadata"].get("uid"):
        return (
            f"it was created by an earlier CloudTenant {name} (uid {creator})"
            if creator
            else "it carries no record of the CloudTenant that created it"
        )
    return None


def deletion_condition(
    tenant: Manifest, spec: cloudtenant.CloudTenantSpec
) -> list[conditions.Condition]:
    """DeletionConfirmed, for a Delete tenant: whether its namespaces would really be deleted."""
    if spec.deletion_policy != cloudtenant.DeletionPolicy.DELETE:
        return []
    name = tenant["metadata"]["name"]
    if delete_confirmed(tenant):
        return [
            conditions.Condition(
                DELETION_CONFIRMED,
                conditions.TRUE,
                "Confirmed",
                "deleting the tenant, or removing a namespace from the spec, deletes the"
                " namespaces this tenant created, with their data",
            )
        ]
    return [
        conditions.Condition(
            DELETION_CONFIRMED,
            conditions.FALSE,
            "NotConfirmed",
            f"deletionPolicy: Delete is not confirmed, so namespaces are released (kept) as with"
            f" Retain; to delete them, annotate the CloudTenant"
            f" {constants.ANNOTATION_CONFIRM_DELETE}={name}",
        )
    ]


def delete_confirmed(tenant: Manifest) -> bool:
    """Whether the tenant carries govcloud.io/confirm-delete: <its own name>."""
    annotations = tenant["metadata"].get("annotations") or {}
    return bool(annotations.get(constants.ANNOTATION_CONFIRM_DELETE) == tenant["metadata"]["name"])


def was_adopted(namespace: Manifest) -> bool:
    annotations = namespace["metadata"].get("annotations") or {}
    return annotations.get(constants.ANNOTATION_ADOPTED) == "true"


def mark_adopted(manifest: Manifest) -> Manifest:
    """The namespace manifest with the adopted mark: such a namespace is never deleted."""
    metadata = manifest["metadata"]
    annotations = {**(metadata.get("annotations") or {}), constants.ANNOTATION_ADOPTED: "true"}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def orphan(
    hub: client.Cluster, tenant: str, namespace: str, observed: tenant_types.Observed
) -> None:
    """Keep a namespace and its data, bounded: a frozen quota (no new pods) and no ingress
    replace the operator's objects, and the namespace is marked orphaned and frozen."""
    previous = observed.objects.get(("ResourceQuota", namespace, meta.QUOTA_NAME)) or {}
    hub.apply(quotas.released(tenant, namespace, (previous.get("spec") or {}).get("hard") or {}))
    hub.apply(networkpolicies.released(tenant, namespace))
    for key in list(observed.objects):
        if key[1] == namespace:
            hub.delete(tenant_types.API_VERSIONS[key[0]], key[0], key[2], namespace)
    hub.patch_merge(
        "v1",
        "Namespace",
        namespace,
        {
            "metadata": {
                "labels": {
                    constants.LABEL_MANAGED_BY: None,
                    constants.LABEL_TENANT: None,
                    # Its govcloud-quota is gone; the released quota (pods: 0) bounds it now.
                    constants.LABEL_QUOTA: None,
                    constants.LABEL_ORPHANED: tenant,
                    constants.LABEL_FROZEN: desired_namespaces.FROZEN_RELEASED,
                },
                "annotations": {
                    constants.ANNOTATION_ORPHANED_AT: datetime.now(UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                },
            }
        },
    )


def _policy_of(tenant: Manifest) -> cloudtenant.DeletionPolicy:
    raw = (tenant.get("spec") or {}).get("deletionPolicy")
    return (
        cloudtenant.DeletionPolicy.DELETE
        if raw == cloudtenant.DeletionPolicy.DELETE.value
        else cloudtenant.DeletionPolicy.RETAIN
    )


# -- deletion -----------------------------------------------------------------------------


def finalize(hub: client.Cluster, target: client.Cluster, body: Manifest) -> tenant_types.Result:
    """The tenant is being deleted: release its namespaces per policy, remove its RBAC, let go."""
    name = body["metadata"]["name"]
    result = tenant_types.Result(outcome="deleted", body=body)
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return result
    if crd_deleting(hub):
        # The CRD itself is going away (an uninstall, or a reinstall from Git): every tenant is
        # being deleted at once, and none of them means it. Keep everything as it is.
        result.events.append(Event("Warning", "CRDDeleted", CRD_DELETED_MESSAGE))
        let_go(hub, body)
        return result
    status = body.get("status") or {}
    if status.get("phase") != cloudtenant.Phase.TERMINATING.value:
        hub.patch_status(
            constants.API_VERSION,
            tenant_types.KIND,
            name,
            {"phase": cloudtenant.Phase.TERMINATING.value},
        )
    observed = tenant_types.gather(hub, target, body, None)
    errors: list[str] = []
    release_namespaces(target, observed, None, set(), result.events, errors)
    for key in list(observed.objects):
        if not key[1]:
            try:
                hub.delete(tenant_types.API_VERSIONS[key[0]], key[0], key[2])
            except client.ApiError as error:
                errors.append(f"deleting {tenant_types.describe(key)}: {error}")
    if errors:
        result.outcome, result.retry = "error", True
        result.events.append(Event("Warning", "CleanupFailed", "; ".join(errors)))
        return result
    let_go(hub, body)
    return result


def let_go(hub: client.Cluster, body: Manifest) -> None:
    """Remove the operator's finalizer; once more from a fresh read if the list moved (someone
    else edited the finalizers meanwhile)."""
    try:
        finalizers.let_go(hub, body)
    except client.ApiError as error:
        if error.status not in (409, 422):
            raise
        fresh = cache.uncached(hub).get(
            constants.API_VERSION, tenant_types.KIND, body["metadata"]["name"]
        )
        if fresh is not None:
            finalizers.let_go(hub, fresh)


def crd_deleting(hub: client.Cluster) -> bool:
    """Whether the CloudTenant CRD is being deleted (or already gone)."""
    crd = hub.get(CRD_API_VERSION, "CustomResourceDefinition", CRD_NAME)
    return crd is None or bool(crd["metadata"].get("deletionTimestamp"))


def let_go_all(hub: client.Cluster) -> list[Manifest]:
    """The CRD is being deleted: drop the finalizer of every tenant, changing nothing else.

    The API server deletes every CloudTenant next, and none of them means it; without the
    finalizer they go without a finalization pass, so no namespace is deleted or released.
    kopf's finalizer goes too: kopf stops serving a resource whose CRD is terminating, so it
    would hold the CRD in Terminating for ever. Returns the tenants let go.
    """
    if not crd_deleting(hub):
        return []
    try:
        bodies = hub.list(constants.API_VERSION, tenant_types.KIND)
    except client.ApiError as error:
        if error.status == 404:  # the CRD and every tenant are gone
            return []
        raise
    released = []
    for body in bodies:
        current: Manifest | None = {
            **body,
            "apiVersion": constants.API_VERSION,
            "kind": tenant_types.KIND,
        }
        held = body["metadata"].get("finalizers") or []
        for finalizer in (constants.FINALIZER, KOPF_FINALIZER):
            if current is not None and finalizer in (current["metadata"].get("finalizers") or []):
                current = hub.remove_finalizer(current, finalizer)
        if constants.FINALIZER in held or KOPF_FINALIZER in held:
            released.append(body)
    return released
