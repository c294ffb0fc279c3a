"""Which namespaces no tenant may ever manage, and which existing ones a tenant may adopt."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from govcloud import constants

# Kubernetes' own namespaces: kube-system, kube-public, kube-node-lease and any future kube-*.
KUBE_PREFIX = "kube-"
ALWAYS_PROTECTED = frozenset({"default"})


@dataclass(frozen=True)
class Protected:
    """Namespaces protected by name: default, kube-*, the operator's and the platform's."""

    names: frozenset[str] = ALWAYS_PROTECTED

    def by_name(self, name: str) -> bool:
        return name in self.names or name.startswith(KUBE_PREFIX)


def protected(operator_namespace: str, platform_namespaces: Iterable[str]) -> Protected:
    """The protected names of one installation (its own and its platform namespaces)."""
    return Protected(ALWAYS_PROTECTED | {operator_namespace, *platform_namespaces})


def of_settings(settings: Any) -> Protected:
    """The protected names from the operator's settings (defaults for a bare object)."""
    return protected(
        getattr(settings, "operator_namespace", "govcloud-system"),
        getattr(settings, "platform_namespaces", ()),
    )


def _metadata_map(namespace: Mapping[str, Any], key: str) -> Mapping[str, str]:
    return (namespace.get("metadata") or {}).get(key) or {}


def why_protected(namespace: Mapping[str, Any], names: Protected) -> str | None:
    """Why the namespace is protected, or None when a tenant may manage it."""
    name = str((namespace.get("metadata") or {}).get("name") or "")
    if name.startswith(KUBE_PREFIX) or name == "default":
        return f"namespace {name} belongs to Kubernetes itself"
    if name in names.names:
        return f"namespace {name} is the operator's or a platform namespace"
    if constants.LABEL_PROTECTED in _metadata_map(namespace, "labels"):
        return f"namespace {name} is labelled {constants.LABEL_PROTECTED}"
    return None


def granted_to(namespace: Mapping[str, Any]) -> str | None:
    """The tenant an existing namespace was granted to (label or annotation adoptable-by)."""
    for key in ("labels", "annotations"):
        value = _metadata_map(namespace, key).get(constants.ADOPTABLE_BY)
        if value:
            return str(value)
    return None
