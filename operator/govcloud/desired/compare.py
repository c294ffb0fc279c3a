"""Drift detection (pure): does an observed object differ in a field its desired manifest sets?

The reconciler writes only when ``needs_update`` says so, which is what makes a resync of an
unchanged tenant cost zero writes. Rules:

* labels and annotations: the desired ones must be present with equal values; labels that
  other controllers add are tolerated;
* the object itself: only the fields the manifest sets are compared (``apiVersion``,
  ``kind``, ``status`` and server-set metadata are not);
* nested maps: the same keys and values, so a hand-narrowed ``podSelector: {}`` is drift;
  keys whose value is empty or null count as absent. The exception is a LimitRange item,
  where the API server copies ``max`` into ``default`` and ``default`` into
  ``defaultRequest``: there extra keys are tolerated;
* lists: same length and element by element (an extra RoleBinding subject is drift);
* quantities (ResourceQuota ``spec.hard``, LimitRange limits): compared by value, so
  ``1000m`` equals ``1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from govcloud.desired import quantity

_IGNORED_TOP_LEVEL = frozenset({"apiVersion", "kind", "metadata", "status"})
_LIMIT_FIELDS = ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio")
# (kind, path with "*" for list items) -> whether the quantity map must have exactly our keys.
_QUANTITY_MAPS: dict[tuple[str, tuple[str, ...]], bool] = {
    ("ResourceQuota", ("spec", "hard")): True,
    **{("LimitRange", ("spec", "limits", "*", name)): False for name in _LIMIT_FIELDS},
}
_ROLE_BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
# (kind, path) of maps where keys the manifest does not set are tolerated; () is the object.
_OPEN_MAPS = frozenset({("LimitRange", ("spec", "limits", "*"))})
_EMPTY: tuple[Any, ...] = (None, "", {}, [])

Path = tuple[str, ...]


def needs_update(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """Whether ``observed`` (None: absent) must be written to match ``desired``."""
    if observed is None:
        return True
    kind = str(desired.get("kind", ""))
    if not _metadata_matches(desired.get("metadata") or {}, observed.get("metadata") or {}):
        return True
    return not all(
        _matches(kind, (key,), value, observed.get(key))
        for key, value in desired.items()
        if key not in _IGNORED_TOP_LEVEL
    )


def needs_replace(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """Whether an update cannot work and the object must be deleted and created again.

    A binding's ``roleRef`` is immutable. The builders never change it for a given name; this
    catches objects left by another version or edited by hand.
    """
    if observed is None or desired.get("kind") not in _ROLE_BINDING_KINDS:
        return False
    return not _matches("", ("roleRef",), desired.get("roleRef"), observed.get("roleRef"))


def _metadata_matches(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    for key in ("name", "namespace"):
        if key in desired and desired[key] != observed.get(key):
            return False
    return all(
        _is_subset(desired.get(key) or {}, observed.get(key) or {})
        for key in ("labels", "annotations")
    )


def _is_subset(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> bool:
    return all(key in observed and observed[key] == value for key, value in desired.items())


def _matches(kind: str, path: Path, desired: Any, observed: Any) -> bool:
    exact_keys = _QUANTITY_MAPS.get((kind, path))
    if exact_keys is not None:
        return _quantities_match(desired, observed, exact_keys=exact_keys)
    if observed is None and desired in _EMPTY:
        return True  # an empty field may be omitted on the wire
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and _maps_match(kind, path, desired, observed)
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(desired) == len(observed)
            and all(
                _matches(kind, (*path, "*"), want, have)
                for want, have in zip(desired, observed, strict=True)
            )
        )
    return bool(desired == observed)


def _maps_match(
    kind: str, path: Path, desired: Mapping[str, Any], observed: Mapping[str, Any]
) -> bool:
    if not all(
        _matches(kind, (*path, key), value, observed.get(key)) for key, value in desired.items()
    ):
        return False
    if (kind, path) in _OPEN_MAPS:
        return True
    return all(observed[key] in _EMPTY for key in observed.keys() - desired.keys())


def _quantities_match(desired: Any, observed: Any, *, exact_keys: bool) -> bool:
    if not isinstance(desired, Mapping) or not isinstance(observed, Mapping):
        return bool(desired == observed)
    if exact_keys and desired.keys() != observed.keys():
        return False
    return all(
        key in observed and _same_quantity(str(value), str(observed[key]))
        for key, value in desired.items()
    )


def _same_quantity(left: str, right: str) -> bool:
    try:
        return quantity.equal(left, right)
    except quantity.QuantityError:
        return left == right


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns `current` into `wanted`, at every depth.

    A key gone from a nested map (a quota resource the spec dropped, memory no longer allocated
    once the last tenant holding it left) must be sent as null, or the merge keeps the stale
    value.
    """
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            patch[key] = merge_patch(old, value)
        else:
            patch[key] = value
    patch.update({key: None for key in current if key not in wanted})
    return patch
