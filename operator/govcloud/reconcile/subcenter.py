"""SubCenter reconciler: probe the site, judge health with hysteresis, record capacity and tenants.

Each pass reads the kubeconfig Secret (so a rotation takes effect on the next probe), probes
the sub-center's API server with a timeout, advances the health state kept in the status
(so a restart neither forgets failures nor flaps), and writes the status only when something
a person would read has changed — probe time and latency alone are refreshed at most once a
minute, so an idle healthy site costs no writes between heartbeats.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from govcloud import constants, metrics
from govcloud.api.v1alpha1 import subcenter
from govcloud.desired import compare, quantity
from govcloud.federation import condition as federation_condition
from govcloud.federation import credentials, health, identity, placement, retirement
from govcloud.k8s import cache as caches
from govcloud.k8s import client, clusters
from govcloud.reconcile import conditions, events, finalizers
from govcloud.reconcile import placement as tenant_placement

log = logging.getLogger(__name__)

KIND = "SubCenter"
HEARTBEAT = timedelta(seconds=60)
# Refreshed by every probe, so written only with a lasting change or the heartbeat: the last
# successful probe time of a healthy site moves with the probe time.
VOLATILE = ("lastProbeTime", "lastSuccessfulProbeTime", "probeLatencySeconds")
DELETION_BLOCKED = "DeletionBlocked"
INVALID_KUBECONFIG = tenant_placement.INVALID_KUBECONFIG

Manifest = dict[str, Any]


Event = events.Event


@dataclass
class Result:
    """What a pass found: when to probe next, the tenants to resync, events and metrics."""

    outcome: str
    body: Manifest | None = None
    interval: float = 10.0
    placed_tenants: list[str] = field(default_factory=list)
    wake_tenants: bool = False  # the site's Ready or Reachable changed: its tenants look again
    events: list[Event] = field(default_factory=list)
    snapshot: metrics.SubCenterSnapshot | None = None


def wake_key(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a SubCenter, when it changes, calls for a probe at once rather than on schedule.

    A new object, a spec change (its generation), the start of its deletion and, once that has
    begun, its finalizers: kopf stops the object's timers then, and lets go of its own
    finalizer, which may have made a pass's release of ours fail. Never a change of the status
    alone: that is the operator's own write, and probing again for it would write again.
    """
    metadata = body.get("metadata") or {}
    deleting = bool(metadata.get("deletionTimestamp"))
    return (
        metadata.get("uid"),
        metadata.get("generation"),
        deleting,
        tuple(metadata.get("finalizers") or ()) if deleting else (),
    )


def reconcile(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry,
    name: str,
    now: datetime | None = None,
) -> Result:
    """One probe-and-record pass over the SubCenter `name`."""
    now = now or datetime.now(UTC)
    body = hub.get(constants.API_VERSION, KIND, name)
    if body is None:
        forget(registry, name)
        return Result(outcome="deleted")
    try:
        spec = subcenter.SubCenterSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        return refuse(hub, body, _validation_message(error), now)
    placed = placed_tenants(hub, name)
    if body["metadata"].get("deletionTimestamp"):
        return finalize(hub, registry, body, placed, now)
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        body = hub.add_finalizer(_typed(body), constants.FINALIZER)
    probed = probe_site(hub, registry, body, spec, now)
    result, expiry, expires_at, unusable = (
        probed.result,
        probed.expiry,
        probed.expires_at,
        probed.unusable,
    )
    previous = health.from_status(_status_model(body))
    state = health.advance(previous, result, spec.probe.failure_threshold)
    registry.gate(name).mark(result.message if state.reachable is False else "")
    wanted = [
        # Name what is wrong with the Secret or kubeconfig, not only that it cannot be used.
        dataclasses.replace(item, reason=unusable)
        if unusable is not None and item.reason == health.Outcome.INVALID_CREDENTIALS.value
        else item
        for item in (
            conditions.Condition(*found) for found in health.conditions(state, result, expiry)
        )
    ]
    wanted = identity_conditions(body, wanted, probed.identity)
    remaining = apps_remaining(hub, name) if spec.mode is subcenter.Mode.HOSTED else None
    retire = retirement.judge(spec, now.date(), remaining, len(placed))
    if retire.condition is not None:
        wanted.append(conditions.Condition(*retire.condition))
    allocated = placement.total(
        placement.held(tenant_quota(item), granted(item, name)) for item in placed
    )
    status = {
        **(body.get("status") or {}),
        **health.status_fields(state, result),
        "observedGeneration": body["metadata"].get("generation"),
        "allocated": allocated,
        "tenantCount": len(placed),
        "tenants": [placed_entry(item) for item in placed],
        "credentialExpiresAt": expires_at,
    }
    if probed.identity is not None and probed.identity.pin is not None:
        status["identity"] = probed.identity.pin.as_status()
    status["summary"] = placement.summary(allocated, status.get("allocatable") or {})
    # None removes a verdict that no longer holds (tenants gone, or the site federated again).
    status["retirable"] = retire.retirable
    status["appsRemaining"] = remaining
    status["conditions"] = conditions.merge(
        (body.get("status") or {}).get("conditions") or [],
        wanted,
        body["metadata"].get("generation"),
        now,
    )
    events = transition_events(body, status)
    write_status(hub, body, status, now)
    return Result(
        outcome="success",
        body=body,
        interval=float(spec.probe.interval_seconds),
        placed_tenants=[item["metadata"]["name"] for item in placed],
        wake_tenants=verdict_changed(body, status),
        events=events,
        snapshot=snapshot(spec, state, result, status, expires_at),
    )


@dataclass(frozen=True)
class SiteProbe:
    """What a probe found: its result, the credential's expiry, and the site's identity."""

    result: health.ProbeResult
    expiry: credentials.ExpiryVerdict | None = None
    expires_at: str | None = None
    unusable: str | None = None  # why the Secret or kubeconfig cannot be used at all
    identity: identity.Verdict | None = None  # None: the site did not answer


def probe_site(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry,
    body: Manifest,
    spec: subcenter.SubCenterSpec,
    now: datetime,
) -> SiteProbe:
    """Read the credentials, probe with them, judge their expiry and the site's identity;
    never raises for the site."""
    name = body["metadata"]["name"]
    try:
        opened = tenant_placement.open_site(registry, name, spec, fresh=True)
        credential = credentials.inspect(opened.secret.kubeconfig)
    except clusters.CredentialsError as error:
        return SiteProbe(_invalid(error.message, now), unusable=error.reason)
    except credentials.KubeconfigError as error:
        return SiteProbe(_invalid(str(error), now), unusable=INVALID_KUBECONFIG)
    expiry = credentials.verdict(
        credential, now, timedelta(days=spec.credential_expiry_warning_days)
    )
    raw = clusters.probe(
        opened.cluster, timeout=float(spec.probe.timeout_seconds), node_cap=registry.list_cap
    )
    if health.Outcome(raw.outcome).answered:
        registry.gate(name).mark("")  # it answers now: its identity may be read below
    expires_at = (
        credential.expires_at.astimezone(UTC).strftime(health.TIME_FORMAT)
        if credential.expires_at
        else None
    )
    verdict = (
        judge_identity(hub, registry, body, opened)
        if raw.outcome == health.Outcome.HEALTHY.value
        else None
    )
    return SiteProbe(to_probe_result(raw, now), expiry, expires_at, None, verdict)


def judge_identity(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry,
    body: Manifest,
    opened: tenant_placement.Site,
) -> identity.Verdict:
    """Whether the site is still the cluster its status pins (pinning it the first time)."""
    name = body["metadata"]["name"]
    pinned = identity.from_status(body.get("status"))
    try:
        uid = registry.kube_system_uid(name, opened.secret.fingerprint, fresh=True)
    except client.ApiError as error:
        return identity.Verdict(
            False,
            identity.unknown(
                f"the site's kube-system namespace cannot be read ({error.status or 'no answer'});"
                " the site's credentials need get on it"
            ),
            pinned,
        )
    observed = identity.Identity(uid, opened.ca_fingerprint())
    annotations = body["metadata"].get("annotations") or {}
    return identity.judge(
        pinned,
        observed,
        confirmed_uid=annotations.get(identity.CONFIRM_ANNOTATION),
        pinned_elsewhere=pinned_by_other(hub, name, uid),
    )


def pinned_by_other(hub: client.Cluster, name: str, uid: str) -> str | None:
    """Another SubCenter that has pinned the cluster with this kube-system UID, if any."""
    for item in hub.list(constants.API_VERSION, KIND):
        found = identity.from_status(item.get("status"))
        if item["metadata"]["name"] != name and found and found.kube_system_uid == uid:
            return str(item["metadata"]["name"])
    return None


def identity_conditions(
    body: Manifest, wanted: list[conditions.Condition], verdict: identity.Verdict | None
) -> list[conditions.Condition]:
    """`wanted` with IdentityVerified (the last one kept while the site does not answer); a
    site that is not the pinned cluster is not Ready, whatever its health."""
    if verdict is None:
        kept = [
            conditions.Condition(
                item["type"], item["status"], item["reason"], item.get("message", "")
            )
            for item in (body.get("status") or {}).get("conditions") or []
            if item.get("type") == identity.IDENTITY_VERIFIED
        ]
        return [*wanted, *kept]
    found = conditions.Condition(*verdict.condition)
    if verdict.trusted:
        return [*wanted, found]
    not_ready = conditions.Condition(
        federation_condition.READY, conditions.FALSE, found.reason, found.message
    )
    return [not_ready if item.type == federation_condition.READY else item for item in wanted] + [
        found
    ]


def _invalid(message: str, now: datetime) -> health.ProbeResult:
    return health.ProbeResult(outcome=health.Outcome.INVALID_CREDENTIALS, at=now, message=message)


def to_probe_result(raw: clusters.RawProbe, now: datetime) -> health.ProbeResult:
    outcome = health.Outcome(raw.outcome)
    healthy = outcome is health.Outcome.HEALTHY
    return health.ProbeResult(
        outcome=outcome,
        at=now,
        message=raw.message,
        latency_seconds=raw.latency_seconds if outcome.answered else None,
        version=raw.version if healthy else None,
        node_count=raw.node_count if healthy else None,
        allocatable=raw.allocatable if healthy else {},
    )


# -- tenants placed here -------------------------------------------------------------------


def placed_tenants(hub: client.Cluster, name: str) -> list[Manifest]:
    """The CloudTenants placed on this sub-center (or asking to be, not refused), by name."""
    # Only the tenants whose spec names the site are copied out of the cache.
    asking = caches.select(
        hub,
        constants.API_VERSION,
        "CloudTenant",
        lambda item: tenant_placement.asks_for(item, name),
    )
    found = [item for item in asking if tenant_placement.holds_place(item, name)]
    return sorted(found, key=lambda item: str(item["metadata"]["name"]))


def apps_remaining(hub: client.Cluster, name: str) -> int | None:
    """Apps still to move off a hosted site: its MigrationPlans that are not Completed.

    None when MigrationPlans are not served (the count is then unknown, not zero).
    """
    try:
        plans = hub.list(constants.API_VERSION, "MigrationPlan")
    except client.ApiError:
        return None
    return sum(
        1
        for item in plans
        if ((item.get("spec") or {}).get("source") or {}).get("subCenter") == name
        and (item.get("status") or {}).get("phase") != "Completed"
    )


def tenant_quota(tenant: Manifest) -> dict[str, str]:
    return {
        key: str(value) for key, value in ((tenant.get("spec") or {}).get("quota") or {}).items()
    }


def granted(tenant: Manifest, site_name: str) -> dict[str, str]:
    """The quota last applied for the tenant on this site (growth held back is not in it).

    Empty for a tenant admitted but not placed here yet: its status describes another cluster.
    """
    status = tenant.get("status") or {}
    if (status.get("placement") or {}).get("cluster") != site_name:
        return {}
    hard = (status.get("quota") or {}).get("hard") or {}
    return {key: str(value) for key, value in hard.items()}


def placed_entry(tenant: Manifest) -> dict[str, Any]:
    namespaces = (tenant.get("status") or {}).get("namespaces") or []
    return {
        "name": tenant["metadata"]["name"],
        "namespaces": [
            {"name": entry.get("name", ""), "phase": entry.get("phase", "")} for entry in namespaces
        ],
    }


# -- deletion ------------------------------------------------------------------------------


def finalize(
    hub: client.Cluster,
    registry: clusters.ClusterRegistry,
    body: Manifest,
    placed: Sequence[Manifest],
    now: datetime,
) -> Result:
    """Hold the deletion while tenants are placed here; never touch the sub-center itself."""
    name = body["metadata"]["name"]
    if constants.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return Result(outcome="deleted", body=body)
    if placed:
        names = ", ".join(item["metadata"]["name"] for item in placed)
        message = (
            f"deletion waits: tenants still placed here: {names}; move or delete them first "
            "(nothing in the sub-center is deleted either way)"
        )
        status = dict(body.get("status") or {})
        status["conditions"] = conditions.merge(
            status.get("conditions") or [],
            [
                conditions.Condition(
                    federation_condition.READY, conditions.FALSE, DELETION_BLOCKED, message
                )
            ],
            body["metadata"].get("generation"),
            now,
        )
        events = (
            []
            if _has_reason(body, DELETION_BLOCKED)
            else [Event("Warning", DELETION_BLOCKED, message)]
        )
        write_status(hub, body, status, now)
        return Result(outcome="blocked", body=body, interval=10.0, events=events)
    finalizers.let_go(hub, _typed(body))
    forget(registry, name)
    return Result(
        outcome="deleted",
        body=body,
        events=[
            Event(
                "Normal",
                "Released",
                f"SubCenter {name} released; everything in the sub-center cluster stays in place",
            )
        ],
    )


def forget(registry: clusters.ClusterRegistry, name: str) -> None:
    """Drop the site's client, gate, credentials and admissions (the SubCenter is gone)."""
    registry.forget(name)
    tenant_placement.ADMISSIONS.forget(name)


def _has_reason(body: Manifest, reason: str) -> bool:
    return any(
        item.get("reason") == reason for item in (body.get("status") or {}).get("conditions") or []
    )


def _typed(body: Manifest) -> Manifest:
    return {**body, "apiVersion": constants.API_VERSION, "kind": KIND}


# -- status --------------------------------------------------------------------------------


def _status_model(body: Manifest) -> subcenter.SubCenterStatus:
    try:
        return subcenter.SubCenterStatus.model_validate(body.get("status") or {})
    except pydantic.ValidationError:
        return subcenter.SubCenterStatus()


def refuse(hub: client.Cluster, body: Manifest, message: str, now: datetime) -> Result:
    status = dict(body.get("status") or {})
    status["observedGeneration"] = body["metadata"].get("generation")
    status["conditions"] = conditions.merge(
        status.get("conditions") or [],
        [
            conditions.Condition(
                federation_condition.READY, conditions.FALSE, "InvalidSpec", message
            )
        ],
        body["metadata"].get("generation"),
        now,
    )
    write_status(hub, body, status, now)
    return Result(outcome="invalid", body=body, events=[Event("Warning", "InvalidSpec", message)])


_validation_message = events.validation_message


def verdict_changed(body: Manifest, status: Mapping[str, Any]) -> bool:
    """Whether the site's Ready or Reachable status changed in this pass (or was not known):
    what its tenants' passes act on. Every other probe leaves them alone."""
    watched = (federation_condition.READY, federation_condition.REACHABLE)

    def verdicts(conditions_: Any) -> dict[str, Any]:
        return {
            item.get("type"): item.get("status")
            for item in conditions_ or []
            if item.get("type") in watched
        }

    return verdicts((body.get("status") or {}).get("conditions")) != verdicts(
        status.get("conditions")
    )


def transition_events(body: Manifest, status: Mapping[str, Any]) -> list[Event]:
    """An Event for each condition whose status changed in this pass."""
    before = {
        item.get("type"): item.get("status")
        for item in (body.get("status") or {}).get("conditions") or []
    }
    events = []
    for item in status.get("conditions") or []:
        if before.get(item["type"]) == item["status"]:
            continue
        bad = (item["type"] == federation_condition.CREDENTIAL_EXPIRING) == (
            item["status"] == "True"
        )
        events.append(
            Event(
                "Warning" if bad else "Normal",
                str(item["reason"]),
                f"{item['type']}={item['status']}: {item['message']}",
            )
        )
    return events


def write_status(hub: client.Cluster, body: Manifest, status: Manifest, now: datetime) -> None:
    """Patch the status if anything but probe time and latency changed, or once a minute."""
    current = body.get("status") or {}
    lasting_change = any(
        current.get(key) != value for key, value in status.items() if key not in VOLATILE
    )
    if not lasting_change and not _heartbeat_due(current, now):
        return
    hub.patch_status(
        constants.API_VERSION, KIND, body["metadata"]["name"], compare.merge_patch(current, status)
    )


def _heartbeat_due(current: Mapping[str, Any], now: datetime) -> bool:
    stamp = current.get("lastProbeTime")
    if not stamp:
        return True
    try:
        last = datetime.strptime(str(stamp), health.TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return True
    return now - last >= HEARTBEAT


def snapshot(
    spec: subcenter.SubCenterSpec,
    state: health.HealthState,
    result: health.ProbeResult,
    status: Mapping[str, Any],
    expires_at: str | None,
) -> metrics.SubCenterSnapshot:
    def amounts(values: Mapping[str, Any] | None) -> dict[str, float]:
        return {
            key: float(quantity.parse(str(value)))
            for key, value in (values or {}).items()
            if value is not None
        }

    expiry = (
        datetime.strptime(expires_at, health.TIME_FORMAT).replace(tzinfo=UTC).timestamp()
        if expires_at
        else None
    )
    return metrics.SubCenterSnapshot(
        mode=spec.mode.value,
        tier=spec.tier.value,
        up=bool(state.reachable),
        ready=bool(state.healthy) and result.outcome is health.Outcome.HEALTHY,
        latency_seconds=result.latency_seconds,
        allocatable=amounts(status.get("allocatable")),
        allocated=amounts(status.get("allocated")),
        tenants=int(status.get("tenantCount") or 0),
        credential_expiry=expiry,
    )
