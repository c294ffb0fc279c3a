"""Every kind the operator serves, one entry each; crdgen turns each entry into a CRD."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel

from govcloud import constants
from govcloud.api import cel
from govcloud.api.v1alpha1 import (
    backuprestore,
    cloudtenant,
    migrationplan,
    networkgrant,
    ratecard,
    recoverydrill,
    resourceplan,
    resourcerequest,
    subcenter,
    usagereport,
)

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
        PrinterColumn(
            "Charge", "string", ".status.billing.charge", "Charge to date this month (whole units)."
        ),
        AGE,
        PrinterColumn(
            "Last-Backup",
            "date",
            ".status.backup.lastBackupTime",
            "When the newest backup completed (with the operator's backup.enabled).",
        ),
        PrinterColumn("Unit", "string", ".spec.unit.code", "Unit code.", priority=1),
        PrinterColumn("Suspended", "boolean", ".spec.suspended", "Suspended.", priority=1),
        PrinterColumn(
            "Cluster", "string", ".status.placement.cluster", "hub or sub-center.", priority=1
        ),
        PrinterColumn(
            "RPO-Met",
            "boolean",
            ".status.backup.rpoMet",
            "Whether the newest backup is within the recovery-point objective.",
            priority=1,
        ),
    ),
    root_rules=cloudtenant.ROOT_RULES,
    selectable_fields=(".spec.unit.tier", ".spec.securityLevel"),
)

SUBCENTER = Kind(
    kind="SubCenter",
    plural="subcenters",
    singular="subcenter",
    short_names=("subc",),  # not "sc": that is StorageClass
    scope="Cluster",
    spec=subcenter.SubCenterSpec,
    status=subcenter.SubCenterStatus,
    description=(
        "A county or district data center's Kubernetes cluster under the city's unified"
        " management: a federated sub-center, or a hosted site being emptied and retired."
    ),
    printer_columns=(
        PrinterColumn("Region", "string", ".spec.region", "County, district or zone."),
        PrinterColumn("Mode", "string", ".spec.mode", "federated or hosted."),
        PrinterColumn(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].status',
            "Whether the site is reachable, healthy and its credentials valid.",
        ),
        PrinterColumn("Version", "string", ".status.kubernetesVersion", "Kubernetes version."),
        PrinterColumn("Nodes", "integer", ".status.nodeCount", "Nodes of the site."),
        PrinterColumn("CPU", "string", ".status.summary.cpu", "CPU allocated/allocatable."),
        PrinterColumn("Tenants", "integer", ".status.tenantCount", "Tenants placed here."),
        AGE,
        PrinterColumn("Display", "string", ".spec.displayName", "Human-readable name.", 1),
        PrinterColumn("Tier", "string", ".spec.tier", "Funding tier.", 1),
        PrinterColumn(
            "MaxLevel", "integer", ".spec.maxSecurityLevel", "Highest MLPS level hosted.", 1
        ),
        PrinterColumn(
            "Memory", "string", ".status.summary.memory", "Memory allocated/allocatable.", 1
        ),
        PrinterColumn(
            "Latency", "string", ".status.probeLatencySeconds", "Last probe, seconds.", 1
        ),
        PrinterColumn("RetireBy", "string", ".spec.retireBy", "hosted: retirement date.", 1),
    ),
    root_rules=subcenter.ROOT_RULES,
    selectable_fields=(".spec.mode", ".spec.region", ".spec.tier"),
)

MIGRATIONPLAN = Kind(
    kind="MigrationPlan",
    plural="migrationplans",
    singular="migrationplan",
    short_names=("mig", "migplan"),
    scope="Namespaced",
    spec=migrationplan.MigrationPlanSpec,
    status=migrationplan.MigrationPlanStatus,
    description=(
        "Moves one legacy app of a department onto the cloud, into a namespace of its tenant:"
        " assess, copy, verify, cut over (after approval), roll back, on schedule."
    ),
    printer_columns=(
        PrinterColumn("App", "string", ".spec.app.name", "The app being moved."),
        PrinterColumn("Phase", "string", ".status.phase", "Where the plan is."),
        PrinterColumn("Progress", "integer", ".status.progress", "Percent done."),
        PrinterColumn(
            "Deadline", "string", ".spec.deadline", "When the app must run on the cloud."
        ),
        AGE,
        PrinterColumn("Tenant", "string", ".status.tenant", "The plan's tenant.", priority=1),
        PrinterColumn("Source", "string", ".spec.source.namespace", "Source namespace.", 1),
        PrinterColumn("SubCenter", "string", ".spec.source.subCenter", "Source site.", 1),
        PrinterColumn("Target", "string", ".spec.targetNamespace", "Target namespace.", 1),
    ),
    root_rules=migrationplan.ROOT_RULES,
    selectable_fields=(".spec.targetNamespace",),
)

RATECARD = Kind(
    kind="RateCard",
    plural="ratecards",
    singular="ratecard",
    short_names=("ratec",),  # not "rc": that is ReplicationController
    scope="Cluster",
    spec=ratecard.RateCardSpec,
    status=ratecard.RateCardStatus,
    description=(
        "The city's price list, one object named default: unit-hour prices with the dates they"
        " take effect, tier multipliers and the self-service catalog of offerings."
    ),
    printer_columns=(
        PrinterColumn("Currency", "string", ".spec.currency", "Always CNY."),
        PrinterColumn(
            "Priced",
            "string",
            '.status.conditions[?(@.type=="Priced")].status',
            "Whether every resource tenants request has a rate.",
        ),
        AGE,
    ),
    root_rules=ratecard.ROOT_RULES,
)

RESOURCEPLAN = Kind(
    kind="ResourcePlan",
    plural="resourceplans",
    singular="resourceplan",
    short_names=("rplan",),
    scope="Cluster",
    spec=resourceplan.ResourcePlanSpec,
    status=resourceplan.ResourcePlanStatus,
    description=(
        "A unit's annual cloud resource plan (上云资源计划表), named <tenant>-<year>: what it"
        " needs and why, the apps it will migrate, and the bureau's recorded decision."
    ),
    printer_columns=(
        PrinterColumn("Tenant", "string", ".spec.tenant", "The CloudTenant."),
        PrinterColumn("Year", "integer", ".spec.year", "The plan year."),
        PrinterColumn("Payer", "string", ".status.payer", "The level that pays and decides."),
        PrinterColumn("Review", "string", ".status.review.state", "Pending, Approved, ..."),
        PrinterColumn(
            "Cost", "string", ".status.estimatedAnnualCost", "Estimated annual cost, CNY."
        ),
        PrinterColumn("DecidedBy", "string", ".status.review.decidedBy", "Who decided."),
        AGE,
        PrinterColumn(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].reason',
            "Whether the plan resolves and is priced, or what to fix.",
            priority=1,
        ),
    ),
    root_rules=resourceplan.ROOT_RULES,
    selectable_fields=(".spec.tenant", ".spec.year"),
)

RESOURCEREQUEST = Kind(
    kind="ResourceRequest",
    plural="resourcerequests",
    singular="resourcerequest",
    short_names=("rreq",),
    scope="Namespaced",
    spec=resourcerequest.ResourceRequestSpec,
    status=resourcerequest.ResourceRequestStatus,
    description=(
        "A department's in-year request (年中申请) for more, or less, than its approved"
        " ResourcePlan, filed in one of its namespaces and decided by its level's approvers."
    ),
    printer_columns=(
        PrinterColumn("Year", "integer", ".spec.year", "The plan year it amends."),
        PrinterColumn("Direction", "string", ".spec.direction", "Raise or Lower."),
        PrinterColumn("Tenant", "string", ".status.tenant", "The CloudTenant."),
        PrinterColumn("Payer", "string", ".status.payer", "The level that decides."),
        PrinterColumn("Review", "string", ".status.review.state", "Pending, Approved, ..."),
        PrinterColumn("DecidedBy", "string", ".status.review.decidedBy", "Who decided."),
        AGE,
        PrinterColumn(
            "Ready",
            "string",
            '.status.conditions[?(@.type=="Ready")].reason',
            "Whether the request resolves against an approved plan, or what to fix.",
            priority=1,
        ),
    ),
    selectable_fields=(".spec.year",),
)

USAGEREPORT = Kind(
    kind="UsageReport",
    plural="usagereports",
    singular="usagereport",
    short_names=("ureport",),
    scope="Cluster",
    spec=usagereport.UsageReportSpec,
    status=usagereport.UsageReportStatus,
    description=(
        "What one tenant used in one billing month (<tenant>-<YYYY-MM>): allocated and"
        " requested unit-hours and charges, accrued by metering; final once closed."
    ),
    printer_columns=(
        PrinterColumn("Tenant", "string", ".spec.tenant", "The CloudTenant."),
        PrinterColumn("Period", "string", ".spec.period", "The billing month."),
        PrinterColumn("Charge", "string", ".status.total", "Charges so far, CNY."),
        PrinterColumn("Closed", "boolean", ".status.closed", "Final statement."),
        AGE,
        PrinterColumn("Tier", "string", ".status.tier", "Funding tier.", priority=1),
        PrinterColumn("Samples", "integer", ".status.samples", "Metering ticks.", priority=1),
        PrinterColumn(
            "LastSample", "string", ".status.lastSampleTime", "Accrued up to.", priority=1
        ),
    ),
    root_rules=usagereport.ROOT_RULES,
    selectable_fields=(".spec.tenant", ".spec.period"),
)

NETWORKGRANT = Kind(
    kind="NetworkGrant",
    plural="networkgrants",
    singular="networkgrant",
    short_names=("ngrant",),
    scope="Namespaced",
    spec=networkgrant.NetworkGrantSpec,
    status=networkgrant.NetworkGrantStatus,
    description=(
        "Sharing by grant: the consumer tenant's namespaces may reach the provider tenant's"
        " named Service ports, for a stated purpose, until a date; filed by the consumer's"
        " admins, in effect once the provider's admins (or the platform) consent."
    ),
    printer_columns=(
        PrinterColumn("Provider", "string", ".status.providerTenant", "The data owner's tenant."),
        PrinterColumn("Consumer", "string", ".status.consumerTenant", "The requesting tenant."),
        PrinterColumn("Service", "string", ".spec.provider.service", "The Service reached."),
        PrinterColumn("Ports", "string", ".status.ports", "The ports granted."),
        PrinterColumn("Purpose", "string", ".spec.purpose", "What the data is used for."),
        PrinterColumn("Expires", "string", ".status.expiresAt", "When the grant ends by itself."),
        PrinterColumn("State", "string", ".status.state", "Pending, Active, Expired, ..."),
        AGE,
        PrinterColumn("Namespace", "string", ".spec.provider.namespace", "Provider ns.", 1),
        PrinterColumn("ConsentedBy", "string", ".status.consentedBy", "Who consented.", 1),
        PrinterColumn("RequestedBy", "string", ".spec.requestedBy", "Who requested.", 1),
    ),
    selectable_fields=(".spec.provider.namespace",),
)

# -- restore drills (issue #17 item 3) ---------------------------------------------------------

RECOVERYDRILL = Kind(
    kind="RecoveryDrill",
    plural="recoverydrills",
    singular="recoverydrill",
    short_names=("drill", "drills"),
    scope="Cluster",
    spec=recoverydrill.RecoveryDrillSpec,
    status=recoverydrill.RecoveryDrillStatus,
    description=(
        "A disaster-recovery drill: one department's Velero backup restored onto another"
        " cluster (a sub-center), compared with the backup, timed, and cleaned up."
    ),
    printer_columns=(
        PrinterColumn("Tenant", "string", ".spec.tenant", "The CloudTenant restored."),
        PrinterColumn("Site", "string", ".spec.target.site", "The cluster restored onto."),
        PrinterColumn("Backup", "string", ".status.backup", "The backup restored."),
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Restoring, Succeeded, ..."),
        PrinterColumn("Matched", "boolean", ".status.matched", "Restored objects = backup's."),
        PrinterColumn("RTO", "integer", ".status.recoveryTimeSeconds", "Recovery time, s."),
        PrinterColumn("Cleanup", "string", ".status.cleanup", "Deleted, Kept or Failed."),
        PrinterColumn("By", "string", ".status.requestedBy", "Who ran it."),
        AGE,
        PrinterColumn(
            "Reason",
            "string",
            '.status.conditions[?(@.type=="Succeeded")].reason',
            "Why it failed, or Matched.",
            priority=1,
        ),
        PrinterColumn("Restore", "string", ".status.restore", "The Velero Restore.", priority=1),
    ),
    root_rules=recoverydrill.ROOT_RULES,
    selectable_fields=(".spec.tenant",),
)


# -- self-service restores (issue #17, item 5) ----------------------------------------------

BACKUPRESTORE = Kind(
    kind="BackupRestore",
    plural="backuprestores",
    singular="backuprestore",
    short_names=("brs",),
    scope="Namespaced",
    spec=backuprestore.BackupRestoreSpec,
    status=backuprestore.BackupRestoreStatus,
    description=(
        "A department's restore of one of its own Velero backups into its own namespaces,"
        " requested by its admins in one of them; never into another tenant's namespaces."
    ),
    printer_columns=(
        PrinterColumn("Backup", "string", ".spec.backup", "The Velero Backup restored from."),
        PrinterColumn("Phase", "string", ".status.phase", "Refused, InProgress, Completed, ..."),
        PrinterColumn("Items", "integer", ".status.itemsRestored", "Objects restored so far."),
        PrinterColumn("Warnings", "integer", ".status.warnings", "Velero's warnings."),
        PrinterColumn("Errors", "integer", ".status.errors", "Velero's errors."),
        PrinterColumn("Completed", "date", ".status.completedAt", "When the restore ended."),
        AGE,
        PrinterColumn(
            "Reason",
            "string",
            '.status.conditions[?(@.type=="Accepted")].reason',
            "Why it was refused, if it was.",
            priority=1,
        ),
        PrinterColumn("Tenant", "string", ".status.tenant", "The requesting tenant.", 1),
        PrinterColumn("Restore", "string", ".status.restore", "The Velero Restore.", 1),
        PrinterColumn("Started", "date", ".status.startedAt", "When Velero started.", 1),
    ),
    selectable_fields=(".spec.backup",),
)

KINDS: tuple[Kind, ...] = (
    CLOUDTENANT,
    SUBCENTER,
    MIGRATIONPLAN,
    NETWORKGRANT,
    RATECARD,
    RESOURCEPLAN,
    RESOURCEREQUEST,
    USAGEREPORT,
    RECOVERYDRILL,
    BACKUPRESTORE,
)
