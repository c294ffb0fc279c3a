"""Finalizers left by earlier versions: kopf's marker goes when its object is being deleted.

Until kopf's per-object timers and deletion handlers were replaced by the operator's own
scheduler, kopf put its finalizer on every CloudTenant, SubCenter, MigrationPlan, ResourcePlan
and RateCard default. Nothing serves those kinds through kopf any more, so nothing else would
ever take that finalizer off, and such an object would stay Terminating for good.
"""

from __future__ import annotations

from typing import Any

import kopf

from govcloud import constants
from govcloud.handlers import startup
from govcloud.reconcile import finalizers

KINDS = ("CloudTenant", "SubCenter", "MigrationPlan", "ResourcePlan", "RateCard")


def kopf_finalizer_left(memo: kopf.Memo, event_type: str, obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    held = metadata.get("finalizers") or []
    if event_type == "DELETED" or not metadata.get("deletionTimestamp"):
        return
    if finalizers.KOPF_FINALIZER not in held or constants.FINALIZER in held:
        return  # the operator's own finalization runs first and lets go of both
    typed = {**obj, "apiVersion": constants.API_VERSION}
    startup.in_background(memo, memo.hub.remove_finalizer, typed, finalizers.KOPF_FINALIZER)


for _kind in KINDS:
    startup.route(_kind)(kopf_finalizer_left)
