"""Operator settings from the environment (GOVCLOUD_*), with sane defaults."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from govcloud.desired import backups, ledger, quantity
from govcloud.k8s import lease


class BackupLevel(BaseModel):
    """The platform's backups of one security level (durations like 24h, 720h, 26h)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: str = Field(min_length=1, description="Velero cron schedule (UTC).")
    interval: str = Field(description="The longest gap between two backups it makes.")
    ttl: str = Field(description="How long each backup is kept.")
    rpo: str = Field(description="The newest completed backup may be at most this old.")

    @field_validator("interval", "ttl", "rpo")
    @classmethod
    def _duration(cls, value: str) -> str:
        backups.parse_duration(value)
        return value

    def policy(self) -> backups.LevelPolicy:
        return backups.LevelPolicy(
            schedule=self.schedule,
            interval=backups.parse_duration(self.interval),
            ttl=backups.parse_duration(self.ttl),
            rpo=backups.parse_duration(self.rpo),
        )


# Level 3 (等保三级): daily at 02:00 UTC+8, kept 30 days; levels 1 and 2: weekly (Sunday 03:00
# UTC+8), kept 30 days. The RPO leaves two hours (level 3) or a day for a backup to finish.
DEFAULT_BACKUP_LEVELS = {
    1: BackupLevel(schedule="0 19 * * 6", interval="168h", ttl="720h", rpo="192h"),
    2: BackupLevel(schedule="0 19 * * 6", interval="168h", ttl="720h", rpo="192h"),
    3: BackupLevel(schedule="0 18 * * *", interval="24h", ttl="720h", rpo="26h"),
}


class Settings(BaseSettings):
    """Everything the operator reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="GOVCLOUD_", frozen=True)

    platform_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["govcloud-system", "monitoring", "kube-system"],
        description="Namespaces that may always reach every tenant (monitoring, ingress).",
    )
    extranet_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "The e-government extranet (电子政务外网): networks every isolated tenant may reach"
            " (comma-separated CIDRs)."
        ),
    )
    egress_allowed_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Networks a tenant below security level 3 may ask to reach in spec.network.egressTo"
            " (comma-separated CIDRs); empty: none beyond the default."
        ),
    )
    dns_namespace: str = Field(
        default="kube-system",
        min_length=1,
        description="Where the cluster DNS runs: isolated tenants reach it on port 53.",
    )
    operator_namespace: str = Field(
        default="govcloud-system",
        min_length=1,
        description=(
            "The operator's own namespace (the chart sets the release namespace); like the"
            " platform namespaces, kube-* and default, no tenant may ever manage it."
        ),
    )
    subcenter_secret_namespace: str = Field(
        default="",
        description=(
            "The only namespace SubCenter kubeconfig Secrets are read from (the chart sets"
            " features.subCenters.secretNamespace); empty: the operator's namespace."
        ),
    )
    resync_seconds: float = Field(default=60.0, gt=0, description="Level-based resync period.")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 turns /metrics off.")
    metrics_host: str = "0.0.0.0"
    liveness_port: int = Field(default=8081, ge=0, le=65535, description="0 turns /healthz off.")
    standalone: bool = Field(
        default=False,
        description="No leader election: act at once, alone (one replica only, never two).",
    )
    lease_name: str = Field(
        default="govcloud-operator",
        min_length=1,
        description="The coordination.k8s.io Lease whose holder is the one replica that acts.",
    )
    lease_namespace: str | None = Field(
        default=None, min_length=1, description="The Lease's namespace; unset: operator_namespace."
    )
    lease_duration_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description=(
            "How long a standby must see the Lease unchanged (on its own clock) before it takes"
            " it over from a holder that stopped renewing."
        ),
    )
    lease_renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="The leader stops acting when it could not renew the Lease for this long.",
    )
    lease_retry_period_seconds: float = Field(
        default=2.0, gt=0, description="Seconds between two tries to acquire or renew the Lease."
    )
    identity: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "This replica's name in the Lease, different for every replica (the chart: the"
            " pod name); unset: lease.default_identity(), unique per process."
        ),
    )
    workers: int = Field(default=8, ge=1, le=64, description="Reconciles that run at once.")
    probe_concurrency: int = Field(
        default=8, ge=1, le=64, description="Sub-center probes that run at once."
    )
    site_calls: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Calls to one sub-center in flight at once: all a dead site can hold.",
    )
    site_list_cap: int = Field(
        default=10_000,
        ge=1,
        description="Objects of a kind one LIST of a sub-center may return; more: not read.",
    )
    migration_at_risk_hours: float = Field(
        default=168.0,
        gt=0,
        description="A MigrationPlan not Completed this close to its deadline is DeadlineAtRisk.",
    )
    migration_poll_seconds: float = Field(
        default=2.0, gt=0, le=60, description="How often a busy MigrationPlan is re-checked."
    )
    migration_write_pause_seconds: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description=(
            "Testing only (0, off, in production): pause after each object a MigrationPlan's"
            " copy or cutover writes, so a test can stop the operator half-way through a stage."
        ),
    )

    billing_enabled: bool = Field(
        default=True,
        description=(
            "Serve ResourcePlans and meter usage into UsageReports (metering runs only while"
            " RateCard default exists)."
        ),
    )
    metering_interval_seconds: float = Field(
        default=60.0, ge=0.5, le=3600, description="Seconds between two metering ticks."
    )
    metering_checkpoint_seconds: float = Field(
        default=900.0,
        ge=0,
        le=86400,
        description=(
            "The longest a UsageReport goes unwritten while nothing billable changes (a fen of"
            " charge, a usage change, a price change); 0 writes every report every tick."
        ),
    )
    metering_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="How many tenants' UsageReports one metering tick writes at the same time.",
    )
    require_approved_plan: bool = Field(
        default=False,
        description=(
            "Cap each tenant's quota at its approved ResourcePlan of the current year; without"
            " one, at the starter allowance."
        ),
    )
    grant_default_days: float = Field(
        default=90.0,
        gt=0,
        le=3660,
        description="How long a NetworkGrant that names no spec.expires lasts from its filing.",
    )
    grant_max_days: float = Field(
        default=365.0,
        gt=0,
        le=3660,
        description=(
            "The longest a NetworkGrant may last from its filing; one asking for longer is"
            " invalid and opens nothing."
        ),
    )
    plan_grace_days: float = Field(
        default=31.0,
        ge=0,
        le=366,
        description=(
            "With requireApprovedPlan: days into a year during which a tenant without an approved"
            " plan for it keeps last year's approved cap (WithinPlan=False, LastYearsPlan)"
            " instead of dropping to the starter allowance; 0 turns the grace off."
        ),
    )
    starter_allowance: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {
            "requests.cpu": "2",
            "requests.memory": "4Gi",
            "requests.storage": "50Gi",
        },
        description="Quota of a tenant without an approved plan: resource=quantity,...",
    )
    billing_utc_offset_hours: float = Field(
        default=8.0, ge=-12, le=14, description="Billing months and rate dates: UTC+8 (China)."
    )

    backup_enabled: bool = Field(
        default=False,
        description=(
            "Keep a Velero Schedule of each tenant's namespaces by the policy of its security"
            " level (docs/backup.md); Velero must be installed where tenants live."
        ),
    )
    backup_namespace: str = Field(
        default="velero", min_length=1, description="Velero's namespace (its Schedules)."
    )
    backup_levels: dict[int, BackupLevel] = Field(
        default_factory=lambda: dict(DEFAULT_BACKUP_LEVELS),
        description=(
            "Per security level: schedule, interval, ttl and rpo (JSON); levels not given keep"
            " the defaults."
        ),
    )
    backup_min_interval: str = Field(
        default="1h", description="The most often a tenant may ask to be backed up."
    )
    backup_max_ttl: str = Field(
        default="8760h", description="The longest a tenant may ask its backups to be kept."
    )

    # -- restore drills (RecoveryDrill, docs/backup.md "Drills"); only with backups on -------
    drill_period_days: float = Field(
        default=180.0,
        gt=0,
        description=(
            "A security level 3 tenant with no successful RecoveryDrill within this many days"
            " is overdue (metric govcloud_recovery_drill_overdue, alert)."
        ),
    )
    drill_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a running drill looks at its Restore on the target.",
    )
    drill_max_contents_mib: int = Field(
        default=256,
        gt=0,
        description="The largest backup a drill downloads to compare its objects (MiB).",
    )

    # -- the platform ledger (docs/backup.md, "The platform ledger") --
    ledger_backup_enabled: bool = Field(
        default=True,
        description=(
            "With backup_enabled: keep a Velero Schedule of the operator's own records (tenants,"
            " sub-centers, the rate card, plans, requests and usage reports, with their status)."
        ),
    )
    ledger_schedule: str = Field(
        default="0 17 * * *",
        min_length=1,
        description="When the ledger is backed up (Velero cron, UTC): daily at 01:00 UTC+8.",
    )
    ledger_ttl: str = Field(default="2160h", description="How long each ledger backup is kept.")
    ledger_rpo: str = Field(
        default="26h", description="The newest completed ledger backup may be at most this old."
    )

    @field_validator("ledger_ttl", "ledger_rpo")
    @classmethod
    def _ledger_duration(cls, value: str) -> str:
        backups.parse_duration(value)
        return value

    @property
    def ledger_policy(self) -> ledger.Policy:
        return ledger.Policy(
            namespace=self.backup_namespace,
            schedule=self.ledger_schedule,
            ttl=backups.parse_duration(self.ledger_ttl),
            rpo=backups.parse_duration(self.ledger_rpo),
        )

    @field_validator("backup_levels", mode="before")
    @classmethod
    def _over_defaults(cls, value: object) -> object:
        if isinstance(value, dict):
            return {**DEFAULT_BACKUP_LEVELS, **{int(key): item for key, item in value.items()}}
        return value

    @field_validator("backup_min_interval", "backup_max_ttl")
    @classmethod
    def _backup_duration(cls, value: str) -> str:
        backups.parse_duration(value)
        return value

    @model_validator(mode="after")
    def _backup_policy_works(self) -> Settings:
        try:
            self.backup_policy.check()
        except backups.PolicyError as error:
            raise ValueError(f"GOVCLOUD_BACKUP_LEVELS: {error}") from error
        return self

    @property
    def backup_policy(self) -> backups.Policy:
        return backups.Policy(
            namespace=self.backup_namespace,
            levels={level: item.policy() for level, item in self.backup_levels.items()},
            min_interval=backups.parse_duration(self.backup_min_interval),
            max_ttl=backups.parse_duration(self.backup_max_ttl),
        )

    @field_validator("starter_allowance", mode="before")
    @classmethod
    def _split_allowance(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [item.strip() for item in value.split(",") if item.strip()]
            parsed = {}
            for pair in pairs:
                key, sep, amount = pair.partition("=")
                if not sep:
                    raise ValueError(f"starter allowance entry {pair!r} is not resource=quantity")
                parsed[key.strip()] = amount.strip()
            return parsed
        return value

    @field_validator("starter_allowance")
    @classmethod
    def _allowance_quantities(cls, value: dict[str, str]) -> dict[str, str]:
        for key, amount in value.items():
            try:
                quantity.parse(amount)
            except quantity.QuantityError as error:
                raise ValueError(f"starter allowance {key}: {error}") from error
        return value

    @model_validator(mode="after")
    def _lease_timing(self) -> Settings:
        lease.check_timing(
            self.lease_duration_seconds,
            self.lease_renew_deadline_seconds,
            self.lease_retry_period_seconds,
            names=(
                "GOVCLOUD_LEASE_DURATION_SECONDS",
                "GOVCLOUD_LEASE_RENEW_DEADLINE_SECONDS",
                "GOVCLOUD_LEASE_RETRY_PERIOD_SECONDS",
            ),
        )
        return self

    @property
    def effective_lease_namespace(self) -> str:
        return self.lease_namespace or self.operator_namespace

    @field_validator("platform_namespaces", "extranet_cidrs", "egress_allowed_cidrs", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("extranet_cidrs", "egress_allowed_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError as error:
                raise ValueError(f"{item} is not a network in CIDR form: {error}") from None
        return value


def load() -> Settings:
    return Settings()
