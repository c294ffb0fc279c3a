"""SubCenter: a county or district data center's cluster, registered with the hub operator."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from govcloud.api import cel
from govcloud.api.v1alpha1 import _base, cloudtenant
from govcloud.api.v1alpha1._base import Condition, LabelValue, Model

# A SubCenter's name is written into label values (govcloud.io/subcenter) and into
# CloudTenant.spec.placement.subCenter, so it is a DNS label: at most 63 characters.
MAX_SUBCENTER_NAME_LENGTH = 63
SUBCENTER_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
SUBCENTER_NAME_RE = re.compile(SUBCENTER_NAME_PATTERN)
# CloudTenant.status.placement.cluster says "hub" for tenants on the hub; a site of that
# name would make the status ambiguous.
HUB = cloudtenant.HUB_CLUSTER

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_RE = re.compile(DNS_SUBDOMAIN_PATTERN)
MAX_DNS_SUBDOMAIN_LENGTH = 253
DNS_LABEL_RE = re.compile(_base.DNS_LABEL_PATTERN)
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
SECRET_KEY_RE = re.compile(SECRET_KEY_PATTERN)
DEFAULT_KUBECONFIG_KEY = "kubeconfig"

MIN_PROBE_INTERVAL, MAX_PROBE_INTERVAL = 2, 300
MIN_PROBE_TIMEOUT, MAX_PROBE_TIMEOUT = 1, 60
MIN_FAILURE_THRESHOLD, MAX_FAILURE_THRESHOLD = 1, 10
MIN_WARNING_DAYS, MAX_WARNING_DAYS = 1, 365
MAX_MODE_LENGTH = 16

MODE_KNOWN = cel.Rule(
    rule="self == 'federated' || self == 'hosted'",
    message=(
        "mode must be federated (a logical sub-center the city manages as part of its cloud)"
        " or hosted (its apps are migrated to the hub and the site is retired by retireBy)"
    ),
)
MAX_SECURITY_LEVEL_RANGE = cel.Rule(
    rule="self >= 1 && self <= 3",
    message=(
        "maxSecurityLevel is the highest MLPS (等保) level the site is certified to host"
        " and must be 1, 2 or 3"
    ),
)
HOSTED_NEEDS_RETIRE_BY = cel.Rule(
    rule="self.mode != 'hosted' || has(self.retireBy)",
    message=(
        "a hosted sub-center is being retired: set retireBy to the date (YYYY-MM-DD) by which"
        " its apps are moved to the hub"
    ),
    field_path=".retireBy",
)
RETIRE_BY_ONLY_WHEN_HOSTED = cel.Rule(
    rule="self.mode == 'hosted' || !has(self.retireBy)",
    message=(
        "retireBy applies only to hosted sub-centers; remove retireBy, or set mode: hosted"
        " if the site is to be retired"
    ),
    field_path=".retireBy",
)
SECRET_NAME_FORMAT = cel.Rule(
    rule=f"self.matches(r'{DNS_SUBDOMAIN_PATTERN}')",
    message=(
        "kubeconfigSecretRef.name must be a Secret name: lowercase letters, digits, '-' and"
        " '.', starting and ending with a letter or digit, at most 253 characters"
    ),
)
SECRET_NAMESPACE_FORMAT = cel.Rule(
    rule=f"self.matches(r'{_base.DNS_LABEL_PATTERN}')",
    message=(
        "kubeconfigSecretRef.namespace must be a namespace name: lowercase letters, digits"
        " and '-', starting and ending with a letter or digit, at most 63 characters"
    ),
)
SECRET_KEY_FORMAT = cel.Rule(
    rule=f"self.matches(r'{SECRET_KEY_PATTERN}')",
    message=(
        "kubeconfigSecretRef.key must be a Secret data key: letters, digits, '-', '_' and '.'"
        " (e.g. kubeconfig or value)"
    ),
)
PROBE_INTERVAL_RANGE = cel.Rule(
    rule=f"self >= {MIN_PROBE_INTERVAL} && self <= {MAX_PROBE_INTERVAL}",
    message=(
        f"probe.intervalSeconds must be between {MIN_PROBE_INTERVAL} and {MAX_PROBE_INTERVAL}"
        " seconds"
    ),
)
PROBE_TIMEOUT_RANGE = cel.Rule(
    rule=f"self >= {MIN_PROBE_TIMEOUT} && self <= {MAX_PROBE_TIMEOUT}",
    message=(
        f"probe.timeoutSeconds must be between {MIN_PROBE_TIMEOUT} and {MAX_PROBE_TIMEOUT} seconds"
    ),
)
FAILURE_THRESHOLD_RANGE = cel.Rule(
    rule=f"self >= {MIN_FAILURE_THRESHOLD} && self <= {MAX_FAILURE_THRESHOLD}",
    message=(
        f"probe.failureThreshold (failed probes in a row before Reachable turns False) must be"
        f" between {MIN_FAILURE_THRESHOLD} and {MAX_FAILURE_THRESHOLD}"
    ),
)
TIMEOUT_WITHIN_INTERVAL = cel.Rule(
    rule="self.timeoutSeconds <= self.intervalSeconds",
    message=(
        "probe.timeoutSeconds must not exceed probe.intervalSeconds (the timeout defaults to"
        " 5 seconds); raise intervalSeconds or lower timeoutSeconds"
    ),
)
WARNING_DAYS_RANGE = cel.Rule(
    rule=f"self >= {MIN_WARNING_DAYS} && self <= {MAX_WARNING_DAYS}",
    message=(
        f"credentialExpiryWarningDays must be between {MIN_WARNING_DAYS} and {MAX_WARNING_DAYS}"
    ),
)

# Root-level rule: it needs metadata.name, which only the root of the object can see. It runs
# on create only: root rules re-run on every write (status, finalizers), and a stored object
# that predates the rule must still be writable and deletable.
SUBCENTER_NAME_FORMAT = cel.Rule(
    rule=(
        f"oldSelf.hasValue() || (self.metadata.name.matches(r'{SUBCENTER_NAME_PATTERN}')"
        f" && self.metadata.name != '{HUB}')"
    ),
    optional_old_self=True,
    message=(
        "the sub-center name must be a DNS label (lowercase letters, digits and '-') of at most"
        f" {MAX_SUBCENTER_NAME_LENGTH} characters, and not '{HUB}', which names the central"
        " cluster"
    ),
)
ROOT_RULES = (SUBCENTER_NAME_FORMAT,)


def _refuse_if(broken: bool, rule: cel.Rule) -> None:
    """Raises the rule's own message, so the operator says what the API server says."""
    if broken:
        raise ValueError(rule.message)


def check_name(name: str) -> None:
    """Applies the root-level rule (it needs metadata.name) to a sub-center's name."""
    _refuse_if(not SUBCENTER_NAME_RE.match(name) or name == HUB, SUBCENTER_NAME_FORMAT)


def parse(name: str, spec: Mapping[str, Any]) -> SubCenterSpec:
    """The spec of sub-center `name` checked as the API server checks it; ValueError if not."""
    parsed = SubCenterSpec.model_validate(spec)
    check_name(name)
    return parsed


class Mode(StrEnum):
    """How the city keeps a site: managed as part of its cloud, or emptied and retired."""

    FEDERATED = "federated"
    HOSTED = "hosted"


class SecretKeyRef(Model):
    """One key of a Secret on the hub; here, the sub-center's kubeconfig."""

    name: str = Field(
        min_length=1,
        max_length=MAX_DNS_SUBDOMAIN_LENGTH,
        description="Name of the Secret.",
        json_schema_extra=cel.validations(SECRET_NAME_FORMAT),
    )
    namespace: str = Field(
        min_length=1,
        max_length=63,
        description="Namespace of the Secret, e.g. govcloud-system.",
        json_schema_extra=cel.validations(SECRET_NAMESPACE_FORMAT),
    )
    key: str = Field(
        default=DEFAULT_KUBECONFIG_KEY,
        min_length=1,
        max_length=MAX_DNS_SUBDOMAIN_LENGTH,
        description="Key of the Secret's data that holds the kubeconfig.",
        json_schema_extra=cel.validations(SECRET_KEY_FORMAT),
    )

    @field_validator("name")
    @classmethod
    def _secret_name(cls, value: str) -> str:
        _refuse_if(not DNS_SUBDOMAIN_RE.match(value), SECRET_NAME_FORMAT)
        return value

    @field_validator("namespace")
    @classmethod
    def _secret_namespace(cls, value: str) -> str:
        _refuse_if(not DNS_LABEL_RE.match(value), SECRET_NAMESPACE_FORMAT)
        return value

    @field_validator("key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        _refuse_if(not SECRET_KEY_RE.match(value), SECRET_KEY_FORMAT)
        return value


class Probe(Model):
    """How often the hub probes the sub-center's /readyz, and when it gives up on it."""

    model_config = ConfigDict(json_schema_extra=cel.validations(TIMEOUT_WITHIN_INTERVAL))

    interval_seconds: int = Field(
        default=10,
        alias="intervalSeconds",
        description="Seconds between two probes.",
        json_schema_extra={
            "minimum": MIN_PROBE_INTERVAL,
            "maximum": MAX_PROBE_INTERVAL,
            **cel.validations(PROBE_INTERVAL_RANGE),
        },
    )
    timeout_seconds: int = Field(
        default=5,
        alias="timeoutSeconds",
        description="Seconds a probe may take before it counts as failed.",
        json_schema_extra={
            "minimum": MIN_PROBE_TIMEOUT,
            "maximum": MAX_PROBE_TIMEOUT,
            **cel.validations(PROBE_TIMEOUT_RANGE),
        },
    )
    failure_threshold: int = Field(
        default=3,
        alias="failureThreshold",
        description=(
            "Failed probes in a row before Reachable (and Ready) turn False; one success"
            " turns them back."
        ),
        json_schema_extra={
            "minimum": MIN_FAILURE_THRESHOLD,
            "maximum": MAX_FAILURE_THRESHOLD,
            **cel.validations(FAILURE_THRESHOLD_RANGE),
        },
    )

    @field_validator("interval_seconds")
    @classmethod
    def _interval(cls, value: int) -> int:
        _refuse_if(not MIN_PROBE_INTERVAL <= value <= MAX_PROBE_INTERVAL, PROBE_INTERVAL_RANGE)
        return value

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: int) -> int:
        _refuse_if(not MIN_PROBE_TIMEOUT <= value <= MAX_PROBE_TIMEOUT, PROBE_TIMEOUT_RANGE)
        return value

    @field_validator("failure_threshold")
    @classmethod
    def _threshold(cls, value: int) -> int:
        _refuse_if(
            not MIN_FAILURE_THRESHOLD <= value <= MAX_FAILURE_THRESHOLD, FAILURE_THRESHOLD_RANGE
        )
        return value

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Self:
        _refuse_if(self.timeout_seconds > self.interval_seconds, TIMEOUT_WITHIN_INTERVAL)
        return self


class SubCenterSpec(Model):
    """The desired state of a sub-center: where it is, how it is kept, how to reach it."""

    model_config = ConfigDict(
        json_schema_extra=cel.validations(HOSTED_NEEDS_RETIRE_BY, RETIRE_BY_ONLY_WHEN_HOSTED)
    )

    display_name: str = Field(
        alias="displayName",
        min_length=1,
        max_length=256,
        description="Human-readable name, e.g. 肥西县政务云分中心.",
    )
    region: str = Field(
        min_length=1,
        max_length=128,
        description="County, district or zone the site serves, e.g. 肥西县.",
    )
    tier: cloudtenant.Tier = Field(
        description="Funding tier of the site's owner: city, county or devzone."
    )
    # No `enum` in the CRD: an enum failure stops the API server before any CEL rule runs,
    # and the rule's message says what each mode means, which the enum's cannot.
    mode: Annotated[
        Mode,
        WithJsonSchema(
            {
                "type": "string",
                "maxLength": MAX_MODE_LENGTH,
                **cel.validations(MODE_KNOWN),
            }
        ),
    ] = Field(
        description=(
            "federated: a logical sub-center, managed as part of the city's cloud."
            " hosted: its apps are migrated to the hub and the site is retired by retireBy;"
            " no new tenants are placed on it."
        ),
    )
    kubeconfig_secret_ref: SecretKeyRef = Field(
        alias="kubeconfigSecretRef",
        description=(
            "The Secret (on the hub) holding the sub-center's kubeconfig; rotating it takes"
            " effect without restarting the operator."
        ),
    )
    max_security_level: int = Field(
        alias="maxSecurityLevel",
        description="The highest MLPS (等保) level the site is certified to host: 1, 2 or 3.",
        json_schema_extra={"minimum": 1, "maximum": 3, **cel.validations(MAX_SECURITY_LEVEL_RANGE)},
    )
    placement_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        alias="placementLabels",
        max_length=_base.MAX_LABELS,
        description="Labels describing the site (e.g. network zone), for placement selectors.",
        json_schema_extra=cel.validations(_base.LABEL_KEYS),
    )
    retire_by: date | None = Field(
        default=None,
        alias="retireBy",
        description=(
            "hosted only, and required there: the date by which the site's apps are moved to"
            " the hub. A date already past is reported by the Retirable condition."
        ),
    )
    probe: Probe = Field(
        default_factory=Probe,
        description="Health probing of the site.",
        # The API server fills in (and shows) the probe settings when probe is left out; the
        # default is written out in full because it is validated without nested defaults.
        json_schema_extra={"default": Probe().model_dump(mode="json", by_alias=True)},
    )
    credential_expiry_warning_days: int = Field(
        default=30,
        alias="credentialExpiryWarningDays",
        description=(
            "CredentialExpiring turns True this many days before the kubeconfig's client"
            " certificate or token expires."
        ),
        json_schema_extra={
            "minimum": MIN_WARNING_DAYS,
            "maximum": MAX_WARNING_DAYS,
            **cel.validations(WARNING_DAYS_RANGE),
        },
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: object) -> object:
        _refuse_if(value not in tuple(Mode), MODE_KNOWN)
        return value

    @field_validator("max_security_level")
    @classmethod
    def _mlps_level(cls, value: int) -> int:
        _refuse_if(not 1 <= value <= 3, MAX_SECURITY_LEVEL_RANGE)
        return value

    @field_validator("placement_labels")
    @classmethod
    def _label_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return _base.check_label_keys(value)

    @field_validator("credential_expiry_warning_days")
    @classmethod
    def _warning_days(cls, value: int) -> int:
        _refuse_if(not MIN_WARNING_DAYS <= value <= MAX_WARNING_DAYS, WARNING_DAYS_RANGE)
        return value

    @model_validator(mode="after")
    def _retire_by_iff_hosted(self) -> Self:
        hosted = self.mode is Mode.HOSTED
        _refuse_if(hosted and self.retire_by is None, HOSTED_NEEDS_RETIRE_BY)
        _refuse_if(not hosted and self.retire_by is not None, RETIRE_BY_ONLY_WHEN_HOSTED)
        return self


class Resources(Model):
    """CPU, memory and pods, as Kubernetes quantities (node allocatable or tenant quota)."""

    cpu: str | None = Field(default=None, description="CPU, e.g. 64 or 1500m.")
    memory: str | None = Field(default=None, description="Memory, e.g. 256Gi.")
    pods: str | None = Field(default=None, description="Pods, e.g. 110.")


class CapacitySummary(Model):
    """allocated/allocatable, preformatted for the printer columns."""

    cpu: str | None = Field(default=None, description="CPU allocated/allocatable, e.g. 12/64.")
    memory: str | None = Field(
        default=None, description="Memory allocated/allocatable, e.g. 24Gi/256Gi."
    )
    pods: str | None = Field(default=None, description="Pods allocated/allocatable.")


class PlacedNamespace(Model):
    """One namespace of a placed tenant, as it is in the sub-center."""

    name: str
    phase: str


class PlacedTenant(Model):
    """A tenant placed on the sub-center, with the state of each of its namespaces there."""

    name: str
    namespaces: list[PlacedNamespace] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class SiteIdentity(Model):
    """Which cluster the site is, pinned by the first probe that reached it."""

    kube_system_uid: str = Field(
        alias="kubeSystemUID", description="UID of the site's kube-system namespace."
    )
    ca_fingerprint: str = Field(
        alias="caFingerprint",
        description="sha256 of the CA certificate in the kubeconfig (system-roots without one).",
    )


class SubCenterStatus(Model):
    """The observed state of the sub-center, written by the operator."""

    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Ready, Reachable, CredentialsValid, CredentialExpiring, IdentityVerified (and"
            " Retirable)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    kubernetes_version: str | None = Field(
        default=None, alias="kubernetesVersion", description="The site's version, e.g. v1.36.3."
    )
    node_count: int | None = Field(default=None, alias="nodeCount", ge=0)
    allocatable: Resources = Field(
        default_factory=Resources, description="Sum of the nodes' allocatable resources."
    )
    allocated: Resources = Field(
        default_factory=Resources, description="Sum of the quota of the tenants placed here."
    )
    summary: CapacitySummary = Field(default_factory=CapacitySummary)
    probe_latency_seconds: str | None = Field(
        default=None,
        alias="probeLatencySeconds",
        description="How long the last answered probe took, in seconds, e.g. 0.012.",
    )
    last_probe_time: datetime | None = Field(default=None, alias="lastProbeTime")
    last_successful_probe_time: datetime | None = Field(
        default=None, alias="lastSuccessfulProbeTime"
    )
    consecutive_failures: int = Field(default=0, alias="consecutiveFailures", ge=0)
    credential_expires_at: datetime | None = Field(
        default=None,
        alias="credentialExpiresAt",
        description="When the kubeconfig's client certificate or token expires, if known.",
    )
    tenant_count: int = Field(default=0, alias="tenantCount", ge=0)
    tenants: list[PlacedTenant] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    apps_remaining: int | None = Field(
        default=None,
        alias="appsRemaining",
        ge=0,
        description="hosted only: apps of the site that still have to move to the hub.",
    )
    retirable: bool | None = Field(
        default=None, description="hosted only: whether the site can be retired now."
    )
    identity: SiteIdentity | None = Field(
        default=None,
        description=(
            "The cluster the site was pinned to. A probe that reaches another cluster stops"
            " every write to the site (IdentityVerified=False) until a person writes the new"
            " kube-system UID to the annotation govcloud.io/confirm-identity."
        ),
    )
