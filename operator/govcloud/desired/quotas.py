"""Elastic split of a tenant's quota into per-namespace ResourceQuotas that never over-commit it.

Why a split
    Kubernetes enforces a ResourceQuota per namespace, atomically (quota admission updates
    ``status.used`` with a compare-and-swap). If the per-namespace hards sum to at most the
    tenant's quota, the API server itself keeps the tenant within its quota, however many pods
    are created at once in however many of its namespaces; no operator-side check can race.

Notation (per resource, all in integer milli-units so cpu and counts are exact)
    T       the tenant's hard (rounded down)
    hard_i  ``spec.hard`` of namespace i's ``govcloud-quota``;  eff_i its ``status.hard``,
            the value admission actually enforces (the quota controller copies spec to status)
    used_i  ``status.used`` (rounded up)
    c_i     the commitment of namespace i: max(hard_i, eff_i, used_i). Admission only admits
            new usage while used_i stays <= eff_i, and eff_i only ever becomes hard_i, so c_i
            bounds the namespace's usage from now on until someone raises its hard. A
            namespace with no quota object, no key for the resource or no reported usage has
            an unknown commitment.

Invariant I
    Σ_i c_i <= T. While it holds, Σ_i used_i <= T at every instant.

Guarantee
    (G1) The final hards of an allocation always satisfy Σ_i hard_i <= T, and hard_i >= used_i
         whenever Σ_i used_i <= T.
    (G2) Phase-1 writes never increase any c_i. Phase-2 writes go through ``cap_increases``,
         which reads the quotas afresh: if that read shows I holding, the raises together add
         at most its slack T − Σ_i c_i to Σ_i c_i, so I keeps holding whatever happens
         meanwhile (pods created or deleted, the quota controller syncing, the writes applied
         in any order or some failing); if it shows I broken or any c_i unknown, nothing is
         raised. Hence once I holds it holds for good; while it does not (the tenant's quota
         was shrunk below usage, a quota was deleted by hand) only decreases are written, and
         I is restored as usage drains below the lowered hards.
    (G3) A namespace the pass itself created (absent when the pass gathered) gets its quota in ONE
         write, at h = its share capped by ``first_hards``: from a fresh read of the tenant's
         quotas, taken after the namespace was created, h is capped like a raise from c = 0 to the
         slack S = T − Σ_j c_j of the other namespaces, new ones sharing S in name order (no slack,
         I broken or some c_j unknown: h = 0, which is phase 1). So Σ_j c_j + Σ_k h_k <= T. That c_k
         = h must be checked, not assumed: admission enforces only ``status.hard``, which a new
         quota lacks until the quota controller's first sync, and the namespace existed before its
         quota. So the pass (1) waits, with a deadline, until the watch shows the controller's
         status write: status.hard = h with every key counted in status.used (a status the API
         server wrote; enforcement, once seen, holds); (2) requires status.used to be all zero (the
         quota controller's count: the operator may not list pods, least privilege); and (3) no pass
         writes a RoleBinding into a namespace nobody has access to yet while its quota lacks
         status.hard, so no member can create anything there before (1). Passing (2), no pod was
         admitted outside quota admission, and every later one goes through its compare-and-swap on
         status.used against h, so used_k <= h and c_k = max(h, eff_k, used_k) = h until a raise,
         which goes through ``cap_increases`` and counts c_k. Meanwhile the other c_j only fall
         (phase-1 writes, pods ending) or rise through ``cap_increases``: I holds. Failing (2)
         (someone raced pods in), the quota is lowered to 0 and not raised in that pass: phase 1
         exactly, whose raise waits for the reported usage; the log says so. If I breaks there, it
         was broken by pods admitted before any quota was enforced, which the two-phase path cannot
         prevent either (its 0 is not enforced before the same sync), and G2 restores it. If (1)
         times out, access waits (QuotaMissing) for a later pass to see the quota enforced; (2) is
         not repeated then.
    Assumptions: only this operator raises the hards of a tenant's quotas, one pass at a time
    per tenant (its work queue serialises them), and one replica at a time (the holder of the
    Lease). The raises are fenced against a replica that lost the Lease while a pass was
    running: the reconciler checks that it still leads right before it creates a new quota
    or raises any (a standby takes over at the earliest lease duration − renew deadline
    later), and each raise is a write conditional on the resourceVersion of the fresh read
    it was capped from, so a raise of a quota someone else wrote since is refused (409) and
    waits for a pass that reads again. For G3, the API server's caches
    (quota admission's, RBAC's) trail its storage by less than the pass takes from reading the
    enforced quota to writing the RoleBindings; only an identity allowed to create pods in
    every namespace (cluster admins, and controllers acting on what such identities created)
    could be admitted against a stale view in that window. Such an identity can also put a
    pod into the namespace in the instant before its quota exists, which the quota
    controller's first count may miss (it counts from its own cache): that is the same
    identity that may edit any quota, and outside what the invariant promises members. The
    chart's quota-first admission policy closes both windows for every identity: no pod is
    created in a namespace labelled ``govcloud.io/quota=required`` (every namespace of a tenant
    with a quota) until its quota exists with a ``status.hard``.
    The invariant trusts ``status.used``, which the quota controller rewrites at every sync
    from its own cache, and a sync follows every change of ``spec.hard``. A pod quota
    admission has just counted may not be in that cache yet: the sync then reports less than
    runs, and admission lets that many more in (kubernetes/kubernetes#123434, seen in
    ``test_onboarding_writes.py``: a lowering written right after a pod was counted). So the
    reconciler writes phase 1 conditionally on the versions of its fresh read, and a rebalance
    that only follows usage leaves a quota that changed in the last ``QUIET_SECONDS`` (or
    since the cache saw it) to a later pass (``reconcile.tenant.busy_quotas``); what a changed
    spec asks for, a suspension, or a return within the tenant's quota is not held back.

Algorithm (``allocate``)
    free = max(0, T − Σ used_i). Target_i = used_i + an equal share of free, rounding down to
    whole units (millicores for cpu, MiB for bytes when there is at least 1Mi per namespace);
    the remainder units go one each to the namespaces in sorted order. If Σ used_i > T the
    tenant is over-committed: targets are hard_i = min(used_i, L) with the largest level L
    keeping Σ hard_i <= T (water-filling), so no namespace can start anything new and running
    workloads are never touched; it is reported in ``Allocation.over_committed``.

    Hysteresis: a resource keeps its current hards (identical strings, so zero writes) when
    every namespace already limits it, I holds, every namespace still has headroom
    hard_i − used_i >= half of its fair share free / n, and no room asked for is missing.

    Room asked for (``wanted``): a request quota admission refused in a namespace, which a
    controller records in a ``FailedCreate`` Event ("exceeded quota: govcloud-quota,
    requested: requests.cpu=1, used: requests.cpu=3, ..."; see ``needed_by_refusal``): the
    request needed hard_i >= need_i = used + requested. Equal slivers of the free quota fit no
    request bigger than a sliver, and hysteresis keeps the slivers where they are, so a
    namespace still short of its need, w_i = need_i − used_i > 0 now, gets w_i first:
    target_i = used_i + w_i + its share of what is left, while Σ w_i fits in free (smallest
    first, then name order; a w_i that does not fit in what is free is not granted at all, so
    nothing is moved for it). Once the request is admitted, used_i reaches need_i and w_i is 0:
    the room asked for is never counted twice. While some granted w_i is missing
    (hard_i − used_i < w_i) the split is redone. Every target is still used_i plus a part of
    free, so G1 and the two phases are unchanged: room only moves, it is never added.

    Writes come in two phases. ``decreases`` (phase 1) lowers each hard to min(current,
    target) — a resource not yet limited in a namespace is limited to 0, because its usage is
    unknown until the quota controller reports it. ``increases`` (phase 2) holds the final
    hards; before applying them the reconciler re-reads the quotas and passes them through
    ``cap_increases``, which caps each raise to the slack then available. Whatever is capped
    is granted by a later reconcile, once the quota controller has caught up. A namespace
    the pass just created skips phase 1: ``first_hards`` gives it its share in the one write
    that creates its quota (G3); phase 2 only raises it if the slack was short.

Suspension
    A suspended tenant's quotas additionally get ``pods`` and ``count/pods`` = 0: admission
    then refuses every new pod, while running pods keep running (see ``suspended_hard``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from govcloud.desired import meta, quantity

SUSPENDED_HARD = {"pods": "0", "count/pods": "0"}
_MEBIBYTE = 1024 * 1024 * 1000  # in milli-units

Hards = Mapping[str, Mapping[str, str]]
# Quota admission's refusal ("exceeded quota: <quota>, requested: a=1,b=2, used: ..."), as
# the API server words it and controllers repeat it in their FailedCreate Events.
_REFUSAL = re.compile(
    r"exceeded quota: (?P<quota>[^,\s]+), requested: (?P<requested>\S+), used: (?P<used>\S+),"
)


@dataclass(frozen=True)
class ObservedQuota:
    """A namespace's ``govcloud-quota`` as read: spec.hard, status.used and status.hard."""

    hard: Mapping[str, str]
    used: Mapping[str, str] = field(default_factory=dict)
    # None: status.hard was not read; assume the quota controller has caught up with spec.
    status_hard: Mapping[str, str] | None = None
    # The version read, for a write conditional on it ("" when unknown).
    resource_version: str = ""


@dataclass(frozen=True)
class Allocation:
    """Per-namespace hards to converge to, and the two ordered phases of writes to get there."""

    hard: Hards
    decreases: Hards
    increases: Hards
    over_committed: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether any quota write is planned (``cap_increases`` may still hold some back)."""
        return bool(self.decreases or self.increases)


@dataclass(frozen=True)
class _Ledger:
    """One resource across the tenant's namespaces, in milli-units."""

    resource: str
    tenant: int
    used: Mapping[str, int]
    hard: Mapping[str, int | None]
    commitment: Mapping[str, int | None]
    wanted: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_used(self) -> int:
        return sum(self.used.values())

    @property
    def free(self) -> int:
        return max(0, self.tenant - self.total_used)


def observed_from_manifest(quota: Mapping[str, Any]) -> ObservedQuota:
    """Read an ObservedQuota from a ResourceQuota object as returned by the API server."""
    spec = quota.get("spec") or {}
    status = quota.get("status") or {}
    return ObservedQuota(
        hard=dict(spec.get("hard") or {}),
        used=dict(status.get("used") or {}),
        status_hard=dict(status.get("hard") or {}),
        resource_version=str((quota.get("metadata") or {}).get("resourceVersion") or ""),
    )


def needed_by_refusal(message: str, quota_name: str = meta.QUOTA_NAME) -> dict[str, str]:
    """The hards a request refused by quota ``quota_name`` needed (used + requested, per
    resource it exceeded), from the refusal's message; {} for any other message."""
    found = _REFUSAL.search(message)
    if found is None or found["quota"] != quota_name:
        return {}
    try:
        requested = _amounts(found["requested"])
        used = _amounts(found["used"])
    except quantity.QuantityError:
        return {}
    return {
        resource: quantity.to_string(
            amount + used.get(resource, 0), binary=quantity.is_binary(resource)
        )
        for resource, amount in requested.items()
        if amount > 0
    }


def _amounts(text: str) -> dict[str, Decimal]:
    """``a=1,b=2Gi`` as exact amounts."""
    amounts: dict[str, Decimal] = {}
    for item in text.split(","):
        resource, _, amount = item.partition("=")
        amounts[resource] = quantity.parse(amount)
    return amounts


def manifest(tenant: str, namespace: str, hard: Mapping[str, str]) -> meta.Manifest:
    """The ``govcloud-quota`` ResourceQuota of one namespace."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta.object_meta(meta.QUOTA_NAME, namespace, tenant),
        "spec": {"hard": dict(hard)},
    }


def released(tenant: str, namespace: str, previous: Mapping[str, str]) -> meta.Manifest:
    """The frozen quota of a namespace the tenant released: its last hards, and no new pods.

    It carries the orphaned label instead of the tenant's, so the tenant's quota no longer
    counts it; running pods keep running, nothing new starts.
    """
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta.released_meta(meta.RELEASED_NAME, namespace, tenant),
        "spec": {"hard": {**previous, "pods": "0"}},
    }


def suspended_hard(hard: Mapping[str, str]) -> dict[str, str]:
    """``hard`` with ``pods`` and ``count/pods`` forced to 0 so no new pod can start.

    Quota admission never evicts, so running pods are untouched; resuming lifts the zero as an
    ordinary (capped) increase.
    """
    return {**hard, **SUSPENDED_HARD}


def allocate(
    tenant_hard: Mapping[str, str],
    namespaces: Sequence[str],
    observed: Mapping[str, ObservedQuota],
    *,
    suspended: bool = False,
    wanted: Hards | None = None,
) -> Allocation:
    """Split ``tenant_hard`` over ``namespaces`` given their observed quotas (see module doc).

    ``observed`` entries for namespaces not in ``namespaces`` are ignored here; pass them to
    ``cap_increases`` so quotas of namespaces still being removed count until they are gone.
    ``wanted``: per namespace and resource, the hard a recently refused request needed.
    Raises ``quantity.QuantityError`` for a malformed tenant quantity.
    """
    names = sorted(set(namespaces))
    if not names:
        return Allocation(hard={}, decreases={}, increases={})
    targets: dict[str, dict[str, str]] = {name: {} for name in names}
    over_committed: dict[str, tuple[str, str]] = {}
    for resource in sorted(tenant_hard):
        ledger = _ledger(resource, tenant_hard[resource], names, observed, wanted or {})
        for name, value in _resource_targets(ledger, observed).items():
            targets[name][resource] = value
        if ledger.total_used > ledger.tenant:
            over_committed[resource] = (
                _format(resource, ledger.total_used),
                _format(resource, ledger.tenant),
            )
    if suspended:
        targets = {name: suspended_hard(hard) for name, hard in targets.items()}
    decreases, increases = _phases(targets, observed)
    return Allocation(targets, decreases, increases, over_committed)


def cap_increases(
    tenant_hard: Mapping[str, str],
    observed: Mapping[str, ObservedQuota],
    planned: Hards,
    *,
    namespaces: Iterable[str] = (),
) -> dict[str, dict[str, str]]:
    """Cap the phase-2 hards so that applying them keeps Σ commitment <= tenant hard.

    ``observed`` must be re-read after the decreases were applied and hold every quota the
    tenant still has (including namespaces being removed); ``namespaces`` lists the tenant's
    namespaces so that one without a quota object counts as unknown. Each raise spends
    max(0, new − c_i) of the slack T − Σ c_i of its resource (so raising a hard up to the
    namespace's usage is free). Without slack — I broken, or a commitment unknown — nothing
    is raised. Returns only the quotas that still change; apply them in any order.
    """
    everyone = sorted(set(observed) | set(namespaces) | set(planned))
    slack = {
        resource: _slack(resource, text, everyone, observed)
        for resource, text in tenant_hard.items()
    }
    capped: dict[str, dict[str, str]] = {}
    for name in sorted(planned):
        quota = observed.get(name)
        hard = dict(planned[name])
        for resource in sorted(set(hard) & set(slack)):
            hard[resource], spent = _cap(resource, hard[resource], quota, slack[resource])
            slack[resource] = _spend(slack[resource], spent)
        if quota is None or not _same(hard, quota.hard):
            capped[name] = hard
    return capped


def first_hards(
    tenant_hard: Mapping[str, str],
    observed: Mapping[str, ObservedQuota],
    planned: Hards,
    *,
    namespaces: Iterable[str] = (),
) -> dict[str, dict[str, str]]:
    """The hards to create the quotas of brand-new namespaces with: their final share, at once.

    ``planned`` holds the allocation's hards of the namespaces this pass just created;
    ``observed`` is a fresh read of the tenant's quotas, taken after the namespaces were
    created and before their quotas are (a namespace found with a quota is not new and is left
    out). Each new namespace counts as committing nothing (empty: c = 0) and its planned hard
    is capped, as a raise from 0, to the slack T − Σ c_i of the others, in name order.
    Without slack (I broken, a commitment unknown) it gets 0 for every resource: phase 1.
    The caller must then check that the namespace is empty (module docstring, G3).
    """
    new = {name: planned[name] for name in sorted(planned) if name not in observed}
    empty = {name: _empty(hard) for name, hard in new.items()}
    capped = cap_increases(tenant_hard, {**observed, **empty}, new, namespaces=namespaces)
    return {name: capped.get(name, dict(empty[name].hard)) for name in new}


def grants_any(hard: Mapping[str, str]) -> bool:
    """Whether a quota admits anything at all (some hard above 0)."""
    return any(quantity.parse(value) > 0 for value in hard.values())


def _empty(hard: Mapping[str, str]) -> ObservedQuota:
    """The quota of a namespace that holds nothing and is limited to 0: its commitment is 0."""
    zero = dict.fromkeys(hard, "0")
    return ObservedQuota(hard=zero, used=zero, status_hard=zero)


def _ledger(
    resource: str,
    tenant_text: str,
    names: Sequence[str],
    observed: Mapping[str, ObservedQuota],
    wanted: Hards,
) -> _Ledger:
    quotas = {name: observed.get(name) for name in names}
    return _Ledger(
        resource=resource,
        tenant=max(0, quantity.to_milli(tenant_text)),
        used={name: _used(resource, quota) or 0 for name, quota in quotas.items()},
        hard={name: _hard(resource, quota) for name, quota in quotas.items()},
        commitment={name: _commitment(resource, quota) for name, quota in quotas.items()},
        wanted=_wanted(resource, names, wanted, quotas),
    )


def _wanted(
    resource: str, names: Sequence[str], wanted: Hards, quotas: Mapping[str, ObservedQuota | None]
) -> dict[str, int]:
    """Room still asked for per namespace, need − used, in milli-units (rounded up: a
    request must fit whole); 0 once the refused request got in."""
    found: dict[str, int] = {}
    for name in names:
        text = (wanted.get(name) or {}).get(resource)
        if text is None:
            continue
        short = quantity.to_milli(text, round_up=True) - (_used(resource, quotas[name]) or 0)
        if short > 0:
            found[name] = short
    return found


def _hard(resource: str, quota: ObservedQuota | None) -> int | None:
    if quota is None or resource not in quota.hard:
        return None
    return quantity.to_milli(quota.hard[resource], round_up=True)


def _used(resource: str, quota: ObservedQuota | None) -> int | None:
    if quota is None or resource not in quota.used:
        return None
    return max(0, quantity.to_milli(quota.used[resource], round_up=True))


def _commitment(resource: str, quota: ObservedQuota | None) -> int | None:
    """max(spec hard, status hard, used); None when any part that matters is unknown."""
    hard, used = _hard(resource, quota), _used(resource, quota)
    if quota is None or hard is None or used is None:
        return None
    enforced = (quota.status_hard or {}).get(resource)
    enforced_milli = quantity.to_milli(enforced, round_up=True) if enforced is not None else 0
    return max(hard, enforced_milli, used)


def _resource_targets(ledger: _Ledger, observed: Mapping[str, ObservedQuota]) -> dict[str, str]:
    if _is_stable(ledger):
        return {name: observed[name].hard[ledger.resource] for name in ledger.hard}
    return {name: _format(ledger.resource, milli) for name, milli in _split(ledger).items()}


def _is_stable(ledger: _Ledger) -> bool:
    """Hysteresis: current hards are safe and still leave everyone half their fair share."""
    commitments = list(ledger.commitment.values())
    if not commitments or any(value is None for value in commitments):
        return False
    if sum(value or 0 for value in commitments) > ledger.tenant:
        return False
    count, free = len(commitments), ledger.free
    return not _missing_room(ledger) and all(
        2 * count * ((ledger.hard[name] or 0) - used) >= free for name, used in ledger.used.items()
    )


def _missing_room(ledger: _Ledger) -> bool:
    """Whether a namespace lacks room it asked for that the free quota could give it."""
    return any(
        (ledger.hard[name] or 0) - ledger.used[name] < amount
        for name, amount in _grants(ledger).items()
    )


def _grants(ledger: _Ledger) -> dict[str, int]:
    """The room asked for that fits in the free quota: smallest requests first, name order."""
    left = ledger.free
    granted: dict[str, int] = {}
    for name, amount in sorted(ledger.wanted.items(), key=lambda item: (item[1], item[0])):
        if amount <= left:
            granted[name] = amount
            left -= amount
    return granted


def _split(ledger: _Ledger) -> dict[str, int]:
    if ledger.total_used > ledger.tenant:
        return _water_fill(ledger)
    names = sorted(ledger.used)
    granted = _grants(ledger)
    pool = ledger.free - sum(granted.values())
    unit = _unit(ledger.resource, pool, len(names))
    base, extra = divmod(pool // unit, len(names))
    return {
        name: ledger.used[name] + granted.get(name, 0) + (base + (1 if index < extra else 0)) * unit
        for index, name in enumerate(names)
    }


def _water_fill(ledger: _Ledger) -> dict[str, int]:
    """hard_i = min(used_i, L) for the largest L (in whole units) keeping Σ hard_i <= T."""
    remaining = ledger.tenant
    unit = _unit(ledger.resource, remaining, len(ledger.used))
    by_usage = sorted(ledger.used.items(), key=lambda item: (item[1], item[0]))
    hards: dict[str, int] = {}
    for index, (name, used) in enumerate(by_usage):
        level = remaining // (len(by_usage) - index) // unit * unit
        hards[name] = min(used, level)
        remaining -= hards[name]
    return hards


def _unit(resource: str, pool: int, count: int) -> int:
    """Split granularity in milli-units: millicores for cpu, whole units for counts and bytes.

    Byte counts are split in whole MiB while the pool holds at least 1Mi per namespace, so
    hards read ``3413Mi`` rather than ``3579139413``.
    """
    if resource.endswith("cpu"):
        return 1
    if quantity.is_binary(resource) and pool >= count * _MEBIBYTE:
        return _MEBIBYTE
    return 1000


def _phases(
    targets: Mapping[str, Mapping[str, str]], observed: Mapping[str, ObservedQuota]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    decreases: dict[str, dict[str, str]] = {}
    increases: dict[str, dict[str, str]] = {}
    for name in sorted(targets):
        target = targets[name]
        quota = observed.get(name)
        if not target:
            continue  # no tenant quota: the quota object is not wanted and gets pruned
        current = dict(quota.hard) if quota is not None else None
        lowered = _lowered(current, target)
        if current is None or not _same(lowered, current):
            decreases[name] = lowered
        if not _same(target, lowered):
            increases[name] = dict(target)
    return decreases, increases


def _lowered(current: Mapping[str, str] | None, target: Mapping[str, str]) -> dict[str, str]:
    """Phase-1 hards: min(current, target); not yet limited -> 0; other keys untouched."""
    lowered = dict(current or {})
    for resource, value in target.items():
        now = lowered.get(resource)
        if now is None:
            lowered[resource] = "0"
        elif quantity.parse(value) < quantity.parse(now):
            lowered[resource] = value
    return lowered


def _slack(
    resource: str, tenant_text: str, names: Sequence[str], observed: Mapping[str, ObservedQuota]
) -> int | None:
    """T − Σ c_i, or None when I does not hold or cannot be checked: then nothing may rise.

    While I is broken even a raise up to a namespace's usage is refused: that usage may drain
    before the write lands, and the raise would hand the room straight back.
    """
    commitments = [_commitment(resource, observed.get(name)) for name in names]
    if any(value is None for value in commitments):
        return None
    slack = quantity.to_milli(tenant_text) - sum(value or 0 for value in commitments)
    return slack if slack >= 0 else None


def _spend(slack: int | None, spent: int) -> int | None:
    return None if slack is None else slack - spent


def _cap(
    resource: str, planned: str, quota: ObservedQuota | None, slack: int | None
) -> tuple[str, int]:
    """The hard to write instead of ``planned`` and the slack it spends."""
    current = quota.hard.get(resource) if quota is not None else None
    if current is None:
        return "0", 0  # not limited yet (phase 1 did not land): limit it first, as phase 1 does
    if quantity.parse(planned) <= quantity.parse(current):
        return planned, 0  # not an increase: never raises the commitment
    commitment = _commitment(resource, quota)
    if commitment is None or slack is None:
        return current, 0
    allowed = commitment + slack
    if quantity.parse(planned) * 1000 <= allowed:
        return planned, max(0, quantity.to_milli(planned, round_up=True) - commitment)
    unit = _unit(resource, allowed, 1)
    allowed = allowed // unit * unit
    if allowed <= quantity.to_milli(current):
        return current, 0
    return _format(resource, allowed), max(0, allowed - commitment)


def _same(left: Mapping[str, str], right: Mapping[str, str]) -> bool:
    """Same keys and equal quantities (``1000m`` == ``1``)."""
    return left.keys() == right.keys() and all(
        quantity.equal(value, right[key]) for key, value in left.items()
    )


def _format(resource: str, milli: int) -> str:
    return quantity.from_milli(milli, binary=quantity.is_binary(resource))
