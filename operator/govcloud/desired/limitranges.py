"""Container defaults of a tenant namespace: the ``govcloud-defaults`` LimitRange."""

from __future__ import annotations

from govcloud.api.v1alpha1 import cloudtenant
from govcloud.desired import meta


def limits(spec: cloudtenant.LimitRangeSpec) -> dict[str, dict[str, str]]:
    """The non-empty ``default``/``defaultRequest``/``max`` maps of the Container item."""
    fields = {"default": spec.default, "defaultRequest": spec.default_request, "max": spec.max}
    return {field: dict(values) for field, values in fields.items() if values}


def build(
    tenant: str, namespace: str, spec: cloudtenant.LimitRangeSpec | None
) -> meta.Manifest | None:
    """The LimitRange of one namespace; None when the spec sets no container limits."""
    item = limits(spec) if spec is not None else {}
    if not item:
        return None
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta.object_meta(meta.LIMIT_RANGE_NAME, namespace, tenant),
        "spec": {"limits": [{"type": "Container", **item}]},
    }
