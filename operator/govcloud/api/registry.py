"""Every kind the operator serves, one entry each; crdgen turns each entry into a CRD."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel

from govcloud import constants
from govcloud.api import cel
from govcloud.api.v1alpha1 import cloudtenant

CATEGORY = "govcloud"


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One additionalPrinterColumns entry of `kubectl get`."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A custom resource kind: its names, scope, models and how `kubectl get` shows it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Cluster", "Namespaced"]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    printer_columns: tuple[PrinterColumn, ...] = (AGE,)
    root_rules: tuple[cel.Rule, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    group: str = constants.GROUP
    version: str = constants.VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


CLOUDTENANT = Kind(
    kind="CloudTenant",
    plural="cloudtenants",
    singular="cloudtenant",
    short_names=("ct", "govtenant"),
    scope="Cluster",
    spec=cloudtenant.CloudTenantSpec,
    status=cloudtenant.CloudTenantStatus,
    description=(
        "A department (unit) of the city on the government cloud: its namespaces, quota,"
        " access and network isolation, from one object."
    ),
    printer_columns=(
        PrinterColumn("Display", "string", ".spec.displayName", "Human-readable name."),
        PrinterColumn("Tier", "string", ".spec.unit.tier", "Funding tier."),
        PrinterColumn("Level", "integer", ".spec.securityLevel", "MLPS (等保) level."),
        PrinterColumn("Namespaces", "integer", ".status.namespaceCount", "Namespaces that exist."),
        PrinterColumn("CPU", "string", ".status.usage.cpu", "CPU used/hard of the tenant quota."),
        PrinterColumn(
            "Memory", "string", ".status.usage.memory", "Memory used/hard of the tenant quota."
        ),
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle phase."),
        AGE,
        PrinterColumn("Unit", "string", ".spec.unit.code", "Unit code.", priority=1),
        PrinterColumn("Suspended", "boolean", ".spec.suspended", "Suspended.", priority=1),
    ),
    root_rules=cloudtenant.ROOT_RULES,
    selectable_fields=(".spec.unit.tier", ".spec.securityLevel"),
)

KINDS: tuple[Kind, ...] = (CLOUDTENANT,)
