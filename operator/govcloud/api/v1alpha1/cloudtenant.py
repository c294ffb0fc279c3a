"""CloudTenant: one department of the city, onboarded from one YAML object."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from govcloud.api import cel, quantity
from govcloud.api.v1alpha1 import _base
from govcloud.api.v1alpha1._base import (
    DNS_LABEL_PATTERN,
    Condition,
    LabelValue,
    Model,
    Quantity,
)

# The tenant name is the prefix of every namespace name (<tenant>-<namespace>, at most
# 63 characters), so it is kept short enough to leave room for a useful suffix.
MAX_TENANT_NAME_LENGTH = 40
MAX_NAMESPACE_NAME_LENGTH = 63
MAX_CONTACTS = 10
MAX_NAMESPACES = 20
MAX_MEMBERS = 50
MAX_QUOTA_ENTRIES = 32
MAX_LIMIT_ENTRIES = 16
MAX_PEERS = 32
MAX_SELECTOR_LABELS = 16
MAX_BILLED_REPORTS = 24  # UsageReports named in status.billing.reports (two years)

TENANT_NAME_PATTERN = rf"^[a-z0-9]([-a-z0-9]{{0,{MAX_TENANT_NAME_LENGTH - 2}}}[a-z0-9])?$"
TENANT_NAME_RE = re.compile(TENANT_NAME_PATTERN)

# CloudTenant.status.placement.cluster of a tenant that lives on the central cluster.
HUB_CLUSTER = "hub"
_DNS_LABEL_RE = re.compile(DNS_LABEL_PATTERN)

SERVICE_ACCOUNT_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
SERVICE_ACCOUNT_RE = re.compile(SERVICE_ACCOUNT_PATTERN)

# ResourceQuota resource names exactly as the API server takes them
# (ValidateResourceQuotaResourceName, Kubernetes 1.36): a name without '/' must be a standard
# quota resource; a name with '/' must be a qualified name (DNS subdomain prefix of at most
# 253 characters, a name of at most 63). Of the latter only the kinds quota counts are taken.
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
STANDARD_QUOTA_NAMES = (
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
)
QUOTA_NAME_PATTERN = (
    "^("
    + "|".join(name.replace(".", r"\.") for name in STANDARD_QUOTA_NAMES)
    + r"|(requests\.)?hugepages-[A-Za-z0-9]([-A-Za-z0-9_.]{0,40}[A-Za-z0-9])?"
    + rf"|count/{_NAME}"
    + rf"|requests\.{_SUBDOMAIN}/{_NAME}"
    + rf"|{_SUBDOMAIN}\.storageclass\.storage\.k8s\.io/(requests\.storage|persistentvolumeclaims)"
    + rf"|{_SUBDOMAIN}\.deviceclass\.resource\.k8s\.io/devices"
    + ")$"
)
QUOTA_NAME_RE = re.compile(QUOTA_NAME_PATTERN)
# The prefix before '/' is a DNS subdomain: at most 253 characters.
QUOTA_PREFIX_TOO_LONG = r"^[^/]{254,}/"
_QUOTA_PREFIX_TOO_LONG_RE = re.compile(QUOTA_PREFIX_TOO_LONG)
_QUOTA_KEY_OK = f"(k.matches(r'{QUOTA_NAME_PATTERN}') && !k.matches(r'{QUOTA_PREFIX_TOO_LONG}'))"

# LimitRange keys: the resources a container asks for (validateContainerResourceName). Only
# these three are taken: hugepages and extended resources may not be overcommitted, which
# LimitRange defaults easily get wrong.
LIMIT_NAMES = ("cpu", "memory", "ephemeral-storage")

# Labels the operator itself puts on a tenant namespace; a spec may not override them.
RESERVED_LABEL_PREFIXES = ("govcloud.io/", "pod-security.kubernetes.io/")
RESERVED_LABEL_KEYS = ("app.kubernetes.io/managed-by", "kubernetes.io/metadata.name")

CLASSIFIED_REFUSED = cel.Rule(
    rule="!self",
    message=(
        "classified (涉密) systems are not hosted on the government cloud;"
        " remove classified: true, or keep the system on its own accredited network"
    ),
)
SECURITY_LEVEL_RANGE = cel.Rule(
    rule="self >= 1 && self <= 3",
    message="securityLevel is the system's MLPS (等保) protection level and must be 1, 2 or 3",
)
CONTACTS_REQUIRED = cel.Rule(
    rule="size(self) > 0",
    message="at least one contact (the person responsible for the tenant) is required",
)
CONTACT_REACHABLE = cel.Rule(
    rule="has(self.email) || has(self.phone)",
    message="a contact needs an email address or a phone number",
)
NAMESPACES_REQUIRED = cel.Rule(
    rule="size(self) > 0",
    message="at least one namespace is required",
)
NAMESPACES_UNIQUE = cel.Rule(
    rule="self.all(a, self.exists_one(b, b.name == a.name))",
    message="namespace names must be unique within a tenant",
)
SERVICE_ACCOUNT_FORMAT = cel.Rule(
    rule=f"self.matches(r'{SERVICE_ACCOUNT_PATTERN}')",
    message="service accounts are written <namespace>/<name>, e.g. payroll-apps/deployer",
)
NOT_SYSTEM_SUBJECT = cel.Rule(
    rule="!self.startsWith('system:')",
    message=(
        "users and groups named system:* are Kubernetes' own (system:authenticated is everyone,"
        " system:serviceaccounts every service account) and are never tenant members; name"
        " people, your own groups, or service accounts as <namespace>/<name>"
    ),
)
QUOTA_NAMES = cel.Rule(
    rule=f"self.all(k, {_QUOTA_KEY_OK})",
    message=(
        "quota keys must be ResourceQuota resource names such as requests.cpu, limits.memory,"
        " requests.storage, pods, services, count/deployments.apps,"
        " requests.nvidia.com/gpu or <class>.storageclass.storage.k8s.io/requests.storage"
    ),
    message_expression=(
        f"'quota key ' + self.filter(k, !{_QUOTA_KEY_OK})[0]"
        " + ' is not a ResourceQuota resource name; use names such as requests.cpu,"
        " requests.memory, limits.cpu, limits.memory, requests.storage, pods,"
        " count/deployments.apps (limits.storage and requests.pods do not exist)'"
    ),
)
LIMIT_KEYS = cel.Rule(
    rule="self.all(k, k in " + str(list(LIMIT_NAMES)) + ")",
    message="limitRange keys must be cpu, memory or ephemeral-storage (container resources)",
    message_expression=(
        "'limitRange key ' + self.filter(k, !(k in "
        + str(list(LIMIT_NAMES))
        + "))[0] + ' is not a container resource; use cpu, memory or ephemeral-storage'"
    ),
)


def _not_above(low: str, high: str) -> str:
    """CEL: for every key in both maps, self.<low>[k] <= self.<high>[k] (as quantities)."""
    return (
        f"!has(self.{low}) || !has(self.{high}) || self.{low}.all(k, !(k in self.{high})"
        f" || !isQuantity(string(self.{low}[k])) || !isQuantity(string(self.{high}[k]))"
        f" || !quantity(string(self.{high}[k])).isLessThan(quantity(string(self.{low}[k]))))"
    )


LIMIT_REQUEST_NOT_ABOVE_DEFAULT = cel.Rule(
    rule=_not_above("defaultRequest", "default"),
    message=(
        "limitRange.defaultRequest must not exceed limitRange.default for the same resource"
        " (a container's default request above its default limit is refused)"
    ),
)
LIMIT_DEFAULT_NOT_ABOVE_MAX = cel.Rule(
    rule=_not_above("default", "max"),
    message="limitRange.default must not exceed limitRange.max for the same resource",
)
LIMIT_REQUEST_NOT_ABOVE_MAX = cel.Rule(
    rule=_not_above("defaultRequest", "max"),
    message="limitRange.defaultRequest must not exceed limitRange.max for the same resource",
)
RESERVED_LABELS = cel.Rule(
    rule=(
        "self.all(k, !k.startsWith('govcloud.io/') && !k.contains('.govcloud.io/')"
        " && !k.startsWith('pod-security.kubernetes.io/')"
        " && k != 'app.kubernetes.io/managed-by' && k != 'kubernetes.io/metadata.name')"
    ),
    message=(
        "labels under govcloud.io/ and pod-security.kubernetes.io/, app.kubernetes.io/managed-by"
        " and kubernetes.io/metadata.name are set by the operator; remove them from the spec"
    ),
)
PEER_ONE_OF = cel.Rule(
    rule="has(self.tenant) != has(self.namespaceSelector)",
    message="an allowFrom entry names exactly one of tenant or namespaceSelector",
)
EGRESS_CIDR = cel.Rule(
    rule="isCIDR(self) && cidr(self).masked() == cidr(self)",
    message=(
        "cidr is a network in CIDR form with no host bits set, e.g. 10.20.0.0/16 or 2001:db8::/32"
    ),
)
EGRESS_PROTOCOL = cel.Rule(
    rule="self in ['TCP', 'UDP', 'SCTP']", message="protocol is TCP, UDP or SCTP"
)
SELECTOR_NOT_EMPTY = cel.Rule(
    rule="size(self) > 0",
    message=(
        "namespaceSelector must name at least one label; an empty selector would admit"
        " every namespace of the cluster"
    ),
)

PLACEMENT_NOT_HUB = cel.Rule(
    rule="self != 'hub'",
    message=(
        "placement.subCenter names a SubCenter; to keep the tenant on the hub (the central"
        " cluster), remove placement"
    ),
)
PLACEMENT_SUBCENTER_FORMAT = cel.Rule(
    rule=f"self.matches(r'{DNS_LABEL_PATTERN}')",
    message=(
        "placement.subCenter must be the name of a SubCenter: a DNS label of lowercase"
        " letters, digits and '-' (kubectl get subcenters lists them)"
    ),
)

# Root-level rules: they need metadata.name, which only the root of the object can see. The
# root changes with every status or metadata write, so they ratchet by hand: a tenant stored
# before a rule existed keeps getting its status and finalizer written (and can be deleted),
# while a create, or an update that touches what the rule checks, is refused.
TENANT_NAME_FORMAT = cel.Rule(
    # A name never changes, so it is checked on create only.
    rule=f"oldSelf.hasValue() || self.metadata.name.matches(r'{TENANT_NAME_PATTERN}')",
    message=(
        f"the tenant name must be a DNS label (lowercase letters, digits and '-') of at most"
        f" {MAX_TENANT_NAME_LENGTH} characters, leaving room for the namespace names"
        " <tenant>-<namespace>"
    ),
    optional_old_self=True,
)
DERIVED_NAMESPACE_LENGTH = cel.Rule(
    rule=(
        "(oldSelf.hasValue() && oldSelf.value().spec.namespaces == self.spec.namespaces)"
        " || self.spec.namespaces.all(n, size(self.metadata.name) + 1 + size(n.name) <= 63)"
    ),
    message=(
        "every namespace name <tenant>-<namespace> must be at most 63 characters;"
        " shorten the tenant or the namespace name"
    ),
    field_path=".spec.namespaces",
    optional_old_self=True,
)
KUBERNETES_NAMESPACE_PREFIX = "kube-"
TENANT_NAME_NOT_KUBE = cel.Rule(
    # <tenant>-<namespace> of a tenant kube or kube-* is a kube-* namespace (kube-system).
    rule=(
        "oldSelf.hasValue() || !(self.metadata.name == 'kube'"
        f" || self.metadata.name.startsWith('{KUBERNETES_NAMESPACE_PREFIX}'))"
    ),
    message=(
        "tenant names kube and kube-* are reserved: their namespaces <tenant>-<namespace> would be"
        " kube-* namespaces, which belong to Kubernetes itself; choose another tenant name"
    ),
    optional_old_self=True,
)
MEMBER_ROLES = ("admins", "editors", "viewers")


def _accounts(root: str) -> str:
    """CEL: the member service account lists of every role of `root` (self or old)."""
    return (
        "["
        + ", ".join(
            f"has({root}.spec.{role}) && has({root}.spec.{role}.serviceAccounts)"
            f" ? {root}.spec.{role}.serviceAccounts : []"
            for role in MEMBER_ROLES
        )
        + "]"
    )


OWN_SERVICE_ACCOUNTS = cel.Rule(
    # Ratchets: a stored tenant whose members and namespaces are unchanged keeps them.
    rule=(
        "(oldSelf.hasValue() && oldSelf.value().spec.namespaces == self.spec.namespaces"
        f" && {_accounts('oldSelf.value()')} == {_accounts('self')})"
        f" || {_accounts('self')}.all(accounts, accounts.all(account,"
        " self.spec.namespaces.exists(n,"
        " account.startsWith(self.metadata.name + '-' + n.name + '/'))))"
    ),
    message=(
        "service accounts must come from the tenant's own namespaces: write them as"
        " <tenant>-<namespace>/<name>, with <namespace> one of spec.namespaces (a service account"
        " of another namespace could be used by whoever runs pods there)"
    ),
    field_path=".spec",
    optional_old_self=True,
)
PLACEMENT_FROZEN = cel.Rule(
    # A transition rule (updates only): status and finalizer writes leave the spec as it was.
    rule=(
        "!has(oldSelf.status) || !has(oldSelf.status.placement)"
        " || !has(oldSelf.status.placement.cluster)"
        " || (has(self.spec.placement) ? self.spec.placement.subCenter : 'hub')"
        " == (has(oldSelf.spec.placement) ? oldSelf.spec.placement.subCenter : 'hub')"
    ),
    message=(
        "spec.placement cannot change once the tenant is placed (status.placement.cluster is"
        " set): its namespaces, quota and access live in that cluster. To move, create a new"
        " CloudTenant placed where it should live, move the apps with MigrationPlans, then"
        " delete this one (see docs/subcenter.md, Moving a tenant)"
    ),
    field_path=".spec.placement",
)
ROOT_RULES = (
    TENANT_NAME_FORMAT,
    DERIVED_NAMESPACE_LENGTH,
    TENANT_NAME_NOT_KUBE,
    OWN_SERVICE_ACCOUNTS,
    PLACEMENT_FROZEN,
)


def _refuse_if(broken: bool, rule: cel.Rule) -> None:
    """Raises the rule's own message, so the operator says what the API server says."""
    if broken:
        raise ValueError(rule.message)


def is_quota_name(key: str) -> bool:
    """Whether the API server takes `key` as a ResourceQuota resource name (see the pattern)."""
    return bool(QUOTA_NAME_RE.match(key)) and not _QUOTA_PREFIX_TOO_LONG_RE.match(key)


def namespace_name(tenant: str, name: str) -> str:
    """The real name of a tenant namespace: <tenant>-<name>."""
    return f"{tenant}-{name}"


def check_tenant_name(tenant: str, spec: CloudTenantSpec) -> None:
    """Applies the root-level rules (which need metadata.name) to a tenant already parsed."""
    _refuse_if(not TENANT_NAME_RE.match(tenant), TENANT_NAME_FORMAT)
    too_long = [
        namespace_name(tenant, namespace.name)
        for namespace in spec.namespaces
        if len(namespace_name(tenant, namespace.name)) > MAX_NAMESPACE_NAME_LENGTH
    ]
    if too_long:
        raise ValueError(f"{DERIVED_NAMESPACE_LENGTH.message}: {', '.join(too_long)}")
    _refuse_if(
        tenant == "kube" or tenant.startswith(KUBERNETES_NAMESPACE_PREFIX), TENANT_NAME_NOT_KUBE
    )
    _refuse_if(bool(foreign_service_accounts(tenant, spec)), OWN_SERVICE_ACCOUNTS)


def foreign_service_accounts(tenant: str, spec: CloudTenantSpec) -> list[str]:
    """Member service accounts that do not live in one of the tenant's own namespaces."""
    own = {namespace_name(tenant, namespace.name) for namespace in spec.namespaces}
    return [
        account
        for members in (spec.admins, spec.editors, spec.viewers)
        for account in members.service_accounts
        if account.partition("/")[0] not in own
    ]


def parse(tenant: str, spec: Mapping[str, Any]) -> CloudTenantSpec:
    """The spec of tenant `tenant` checked as the API server checks it; ValueError if not."""
    parsed = CloudTenantSpec.model_validate(spec)
    check_tenant_name(tenant, parsed)
    return parsed


def _is_reserved_label(key: str) -> bool:
    return (
        key.startswith(RESERVED_LABEL_PREFIXES)
        or ".govcloud.io/" in key
        or key in RESERVED_LABEL_KEYS
    )


class Tier(StrEnum):
    """The funding tier of a unit: city, county/district, or development zone."""

    CITY = "city"
    COUNTY = "county"
    DEVZONE = "devzone"


class DeletionPolicy(StrEnum):
    """What happens to the namespaces when the tenant is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class Phase(StrEnum):
    """The lifecycle phase of a tenant."""

    PENDING = "Pending"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    TERMINATING = "Terminating"
    ERROR = "Error"


class Unit(Model):
    """The organisational unit behind the tenant."""

    code: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="The unit's short code, a DNS label, e.g. finance-bureau.",
    )
    tier: Tier = Field(description="Funding tier: city, county or devzone.")
    region: str | None = Field(
        default=None, max_length=128, description="County, district or zone, if any."
    )


class Contact(Model):
    """The person responsible for the tenant (R1); reachable by email or phone."""

    model_config = ConfigDict(json_schema_extra=cel.validations(CONTACT_REACHABLE))

    name: str = Field(min_length=1, max_length=128)
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        _refuse_if(self.email is None and self.phone is None, CONTACT_REACHABLE)
        return self


Subject = Annotated[
    str,
    Field(min_length=1, max_length=256, json_schema_extra=cel.validations(NOT_SYSTEM_SUBJECT)),
]
ServiceAccountRef = Annotated[
    str,
    Field(
        min_length=3,
        max_length=317,
        json_schema_extra=cel.validations(SERVICE_ACCOUNT_FORMAT),
    ),
]


class Members(Model):
    """Who holds a role in every namespace of the tenant."""

    users: list[Subject] = Field(default_factory=list, max_length=MAX_MEMBERS)
    groups: list[Subject] = Field(default_factory=list, max_length=MAX_MEMBERS)
    service_accounts: list[ServiceAccountRef] = Field(
        default_factory=list,
        alias="serviceAccounts",
        max_length=MAX_MEMBERS,
        description="Service accounts as <namespace>/<name>.",
    )

    @field_validator("users", "groups")
    @classmethod
    def _not_system(cls, value: list[str]) -> list[str]:
        _refuse_if(any(subject.startswith("system:") for subject in value), NOT_SYSTEM_SUBJECT)
        return value

    @field_validator("service_accounts")
    @classmethod
    def _namespaced_service_accounts(cls, value: list[str]) -> list[str]:
        for entry in value:
            _refuse_if(not SERVICE_ACCOUNT_RE.match(entry), SERVICE_ACCOUNT_FORMAT)
        return value


class TenantNamespace(Model):
    """A namespace of the tenant; the real name is <tenant>-<name>."""

    name: str = Field(
        min_length=1,
        max_length=MAX_NAMESPACE_NAME_LENGTH,
        pattern=DNS_LABEL_PATTERN,
        description="Short name; the namespace is called <tenant>-<name>.",
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=_base.MAX_LABELS,
        description="Extra labels for the namespace; the operator's own labels are reserved.",
        json_schema_extra=cel.validations(_base.LABEL_KEYS, RESERVED_LABELS),
    )
    adopt: bool = Field(
        default=False,
        description="Take over an existing namespace of this name that no tenant owns.",
    )

    @field_validator("labels")
    @classmethod
    def _own_labels_only(cls, value: dict[str, str]) -> dict[str, str]:
        _base.check_label_keys(value)
        _refuse_if(any(_is_reserved_label(key) for key in value), RESERVED_LABELS)
        return value


class LimitRangeSpec(Model):
    """Container defaults applied in every namespace of the tenant."""

    model_config = ConfigDict(
        json_schema_extra=cel.validations(
            LIMIT_REQUEST_NOT_ABOVE_DEFAULT,
            LIMIT_DEFAULT_NOT_ABOVE_MAX,
            LIMIT_REQUEST_NOT_ABOVE_MAX,
        )
    )

    default: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_LIMIT_ENTRIES,
        description="Default limits of a container that sets none.",
        json_schema_extra=cel.validations(LIMIT_KEYS),
    )
    default_request: dict[str, Quantity] = Field(
        default_factory=dict,
        alias="defaultRequest",
        max_length=MAX_LIMIT_ENTRIES,
        description="Default requests of a container that sets none.",
        json_schema_extra=cel.validations(LIMIT_KEYS),
    )
    max: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_LIMIT_ENTRIES,
        description="The most a single container may ask for.",
        json_schema_extra=cel.validations(LIMIT_KEYS),
    )

    @field_validator("default", "default_request", "max")
    @classmethod
    def _container_resources(cls, value: dict[str, str]) -> dict[str, str]:
        _refuse_if(any(key not in LIMIT_NAMES for key in value), LIMIT_KEYS)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        for low, high, rule in (
            (self.default_request, self.default, LIMIT_REQUEST_NOT_ABOVE_DEFAULT),
            (self.default, self.max, LIMIT_DEFAULT_NOT_ABOVE_MAX),
            (self.default_request, self.max, LIMIT_REQUEST_NOT_ABOVE_MAX),
        ):
            _refuse_if(
                any(
                    quantity.parse(high[key]) < quantity.parse(amount)
                    for key, amount in low.items()
                    if key in high
                ),
                rule,
            )
        return self


class NetworkPeer(Model):
    """A door into the tenant's namespaces: another tenant, or namespaces by label (R12)."""

    model_config = ConfigDict(json_schema_extra=cel.validations(PEER_ONE_OF))

    tenant: str | None = Field(
        default=None,
        max_length=MAX_TENANT_NAME_LENGTH,
        pattern=DNS_LABEL_PATTERN,
        description="Every namespace of this tenant may connect.",
    )
    namespace_selector: dict[str, LabelValue] | None = Field(
        default=None,
        alias="namespaceSelector",
        max_length=MAX_SELECTOR_LABELS,
        description="Namespaces carrying all of these labels may connect.",
        json_schema_extra=cel.validations(_base.LABEL_KEYS, SELECTOR_NOT_EMPTY),
    )

    @field_validator("namespace_selector")
    @classmethod
    def _narrow_selector(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            _base.check_label_keys(value)
            _refuse_if(not value, SELECTOR_NOT_EMPTY)
        return value

    @model_validator(mode="after")
    def _one_kind_of_peer(self) -> Self:
        _refuse_if((self.tenant is None) == (self.namespace_selector is None), PEER_ONE_OF)
        return self


class EgressPort(Model):
    """A port of an egress destination."""

    port: int = Field(ge=1, le=65535, description="The destination port.")
    protocol: str = Field(
        default="TCP",
        max_length=4,
        description="TCP, UDP or SCTP.",
        json_schema_extra=cel.validations(EGRESS_PROTOCOL),
    )

    @field_validator("protocol")
    @classmethod
    def _known(cls, value: str) -> str:
        _refuse_if(value not in ("TCP", "UDP", "SCTP"), EGRESS_PROTOCOL)
        return value


class EgressRule(Model):
    """A destination beyond the default the tenant asks to reach: a network, maybe some ports."""

    cidr: str = Field(
        max_length=43,
        description=(
            "The network, e.g. 59.203.0.0/16. Granted only inside a network the platform allows"
            " (GOVCLOUD_EGRESS_ALLOWED_CIDRS) and never for security level 3."
        ),
        json_schema_extra=cel.validations(EGRESS_CIDR),
    )
    ports: list[EgressPort] = Field(
        default_factory=list, max_length=16, description="Ports; none means every port."
    )
    reason: str = Field(min_length=1, max_length=256, description="What it is for.")

    @field_validator("cidr")
    @classmethod
    def _a_network(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise ValueError(EGRESS_CIDR.message) from None
        return value


class NetworkSpec(Model):
    """Network isolation of the tenant's namespaces."""

    isolated: bool = Field(
        default=True,
        description=(
            "Deny ingress from other tenants (the tenant's own namespaces may connect) and"
            " egress beyond the default."
        ),
    )
    allow_from: list[NetworkPeer] = Field(
        default_factory=list,
        alias="allowFrom",
        max_length=MAX_PEERS,
        description="Other tenants or namespaces that may connect although isolated.",
    )
    egress_to: list[EgressRule] = Field(
        default_factory=list,
        alias="egressTo",
        max_length=MAX_PEERS,
        description=(
            "Networks to reach beyond the default (DNS, the tenant's own and the platform"
            " namespaces, tenants that let it in, the e-government extranet)."
        ),
    )


class Placement(Model):
    """Where the tenant lives: a sub-center's cluster instead of the hub."""

    sub_center: str = Field(
        alias="subCenter",
        min_length=1,
        max_length=63,
        description="Name of the SubCenter whose cluster hosts the tenant's namespaces.",
        json_schema_extra=cel.validations(PLACEMENT_SUBCENTER_FORMAT, PLACEMENT_NOT_HUB),
    )

    @field_validator("sub_center")
    @classmethod
    def _a_subcenter(cls, value: str) -> str:
        _refuse_if(not _DNS_LABEL_RE.match(value), PLACEMENT_SUBCENTER_FORMAT)
        _refuse_if(value == HUB_CLUSTER, PLACEMENT_NOT_HUB)
        return value


BACKUP_DURATION_PATTERN = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?$"
BACKUP_DURATION = cel.Rule(
    rule="self != '' && self.matches(r'" + BACKUP_DURATION_PATTERN + "')",
    message="a duration in hours and minutes, e.g. 6h, 90m or 720h",
)
BACKUP_REQUIRED_AT_LEVEL_3 = cel.Rule(
    rule="!has(self.backup) || !has(self.backup.enabled) || self.backup.enabled"
    " || self.securityLevel < 3",
    message=(
        "backups of a security level 3 (等保三级) system cannot be turned off: remove"
        " backup.enabled: false"
    ),
    field_path=".backup.enabled",
)


class BackupSpec(Model):
    """Overrides of the platform's backup policy for the tenant's level, within its limits."""

    enabled: bool = Field(
        default=True,
        description="false: no backups (security levels 1 and 2 only).",
    )
    every: str | None = Field(
        default=None,
        max_length=12,
        description=(
            "Back up at this interval instead of the level's schedule, e.g. 6h: only more often"
            " than the level's policy, and not more often than the platform allows."
        ),
        json_schema_extra=cel.validations(BACKUP_DURATION),
    )
    ttl: str | None = Field(
        default=None,
        max_length=12,
        description=(
            "Keep each backup this long instead of the level's retention, e.g. 2160h: only"
            " longer, and not longer than the platform allows."
        ),
        json_schema_extra=cel.validations(BACKUP_DURATION),
    )

    @field_validator("every", "ttl")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            _refuse_if(not value or not re.match(BACKUP_DURATION_PATTERN, value), BACKUP_DURATION)
        return value


class CloudTenantSpec(Model):
    """The desired state of a department on the government cloud."""

    model_config = ConfigDict(json_schema_extra=cel.validations(BACKUP_REQUIRED_AT_LEVEL_3))

    display_name: str = Field(
        alias="displayName",
        min_length=1,
        max_length=256,
        description="Human-readable name, e.g. 市财政局.",
    )
    unit: Unit
    contacts: list[Contact] = Field(
        max_length=MAX_CONTACTS,
        description="The people responsible for the tenant; at least one.",
        json_schema_extra=cel.validations(CONTACTS_REQUIRED),
    )
    admins: Members = Field(default_factory=Members, description="Full control of the namespaces.")
    editors: Members = Field(default_factory=Members, description="Edit workloads.")
    viewers: Members = Field(default_factory=Members, description="Read-only access.")
    security_level: int = Field(
        alias="securityLevel",
        description="The system's MLPS (等保) protection level: 1, 2 or 3.",
        json_schema_extra={"minimum": 1, "maximum": 3, **cel.validations(SECURITY_LEVEL_RANGE)},
    )
    classified: bool = Field(
        default=False,
        description="Classified (涉密) systems are refused: they are not hosted on this cloud.",
        json_schema_extra=cel.validations(CLASSIFIED_REFUSED),
    )
    namespaces: list[TenantNamespace] = Field(
        max_length=MAX_NAMESPACES,
        description="The tenant's namespaces; each becomes <tenant>-<name>.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            **cel.validations(NAMESPACES_REQUIRED, NAMESPACES_UNIQUE),
        },
    )
    quota: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_QUOTA_ENTRIES,
        description="Tenant-wide hard limits by ResourceQuota resource name, e.g. requests.cpu.",
        json_schema_extra=cel.validations(QUOTA_NAMES),
    )
    limit_range: LimitRangeSpec | None = Field(default=None, alias="limitRange")
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    suspended: bool = Field(
        default=False, description="No new pods; members keep read access only."
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.RETAIN,
        alias="deletionPolicy",
        description="Retain keeps the namespaces and their data when the tenant is deleted.",
    )
    placement: Placement | None = Field(
        default=None,
        description="The SubCenter that hosts the tenant; without it, the tenant lives on the hub.",
    )
    backup: BackupSpec | None = Field(
        default=None,
        description=(
            "Overrides of the platform's backup policy for the tenant's security level"
            " (docs/backup.md); without it, the level's policy."
        ),
    )

    @model_validator(mode="after")
    def _backed_up_at_level_3(self) -> Self:
        _refuse_if(
            self.backup is not None and not self.backup.enabled and self.security_level >= 3,
            BACKUP_REQUIRED_AT_LEVEL_3,
        )
        return self

    @field_validator("contacts")
    @classmethod
    def _someone_responsible(cls, value: list[Contact]) -> list[Contact]:
        _refuse_if(not value, CONTACTS_REQUIRED)
        return value

    @field_validator("security_level")
    @classmethod
    def _mlps_level(cls, value: int) -> int:
        _refuse_if(not 1 <= value <= 3, SECURITY_LEVEL_RANGE)
        return value

    @field_validator("classified")
    @classmethod
    def _not_classified(cls, value: bool) -> bool:
        _refuse_if(value, CLASSIFIED_REFUSED)
        return value

    @field_validator("namespaces")
    @classmethod
    def _distinct_namespaces(cls, value: list[TenantNamespace]) -> list[TenantNamespace]:
        _refuse_if(not value, NAMESPACES_REQUIRED)
        names = [namespace.name for namespace in value]
        _refuse_if(len(set(names)) != len(names), NAMESPACES_UNIQUE)
        return value

    @field_validator("quota")
    @classmethod
    def _resource_quota_names(cls, value: dict[str, str]) -> dict[str, str]:
        _refuse_if(not all(is_quota_name(key) for key in value), QUOTA_NAMES)
        return value


class ResourceAmounts(Model):
    """Quota hard limits and usage by resource name, as in ResourceQuota status."""

    hard: dict[str, str] = Field(default_factory=dict)
    used: dict[str, str] = Field(default_factory=dict)


class NamespaceStatus(Model):
    """The observed state of one tenant namespace."""

    name: str
    phase: str
    message: str = ""
    quota: ResourceAmounts = Field(default_factory=ResourceAmounts)


class UsageSummary(Model):
    """used/hard of the tenant quota, preformatted for the printer columns."""

    cpu: str | None = Field(default=None, description="CPU used/hard, e.g. 2/64.")
    memory: str | None = Field(default=None, description="Memory used/hard, e.g. 1Gi/128Gi.")


class PlacementStatus(Model):
    """Where the tenant's namespaces are, and why not elsewhere if placement was refused."""

    cluster: str | None = Field(
        default=None,
        description="hub, or the name of the SubCenter whose cluster holds the namespaces.",
    )
    message: str | None = Field(default=None, description="Why placement is pending or refused.")


class MigrationRollup(Model):
    """The tenant's MigrationPlans at a glance: the figures of the annual assessment."""

    planned: int = Field(default=0, ge=0, description="MigrationPlans of the tenant.")
    completed: int = Field(default=0, ge=0, description="Plans Completed.")
    overdue: int = Field(default=0, ge=0, description="Plans past their deadline, not Completed.")
    at_risk: int = Field(default=0, ge=0, alias="atRisk", description="Plans DeadlineAtRisk.")
    on_time_percent: int | None = Field(
        default=None,
        alias="onTimePercent",
        ge=0,
        le=100,
        description=(
            "Completed by their deadline, in percent of the plans that are due or done"
            " (completed + overdue); absent while none is."
        ),
    )


class BillingStatus(Model):
    """This month's bill at a glance, written by metering; the exact figures are in the
    UsageReports, which the tenant's members may read by the names listed here."""

    period: str | None = Field(default=None, description="The month billed, e.g. 2026-12.")
    charge: str | None = Field(
        default=None,
        description=(
            "Charge to date for the month in whole units of the currency, e.g. 123 CNY (rounded"
            " down; rewritten when it passes the next whole unit)."
        ),
    )
    report: str | None = Field(default=None, description="The month's UsageReport.")
    reports: list[str] = Field(
        default_factory=list,
        max_length=MAX_BILLED_REPORTS,
        description=(
            "The tenant's UsageReports its members may read (kubectl get usagereport <name>),"
            " the latest 24 months."
        ),
    )


class RecentBackup(Model):
    """One of the tenant's newest Velero Backups, as its members may read it here."""

    name: str = Field(
        max_length=253, description="The Backup's name (a BackupRestore's spec.backup)."
    )
    phase: str = Field(
        max_length=64, description="Velero's phase: Completed, InProgress, Failed, ..."
    )
    completed_at: str | None = Field(
        default=None, alias="completedAt", json_schema_extra={"format": "date-time"}
    )
    expires_at: str | None = Field(
        default=None,
        alias="expiresAt",
        description="When Velero deletes it (its ttl).",
        json_schema_extra={"format": "date-time"},
    )


class BackupStatus(Model):
    """The tenant's backups: its Velero Schedule and the newest backup that completed."""

    enabled: bool | None = Field(
        default=None, description="Whether the tenant's namespaces are backed up."
    )
    schedule: str | None = Field(default=None, description="The Velero Schedule (namespace/name).")
    cron: str | None = Field(default=None, description="When it backs up (Velero's schedule).")
    ttl: str | None = Field(default=None, description="How long each backup is kept.")
    rpo: str | None = Field(default=None, description="The recovery-point objective.")
    last_backup: str | None = Field(
        default=None, alias="lastBackup", description="The newest Completed Velero Backup."
    )
    last_backup_time: str | None = Field(
        default=None,
        alias="lastBackupTime",
        description="When it completed.",
        json_schema_extra={"format": "date-time"},
    )
    rpo_met: bool | None = Field(
        default=None,
        alias="rpoMet",
        description="Whether the newest completed backup is younger than the RPO.",
    )
    recent: list[RecentBackup] = Field(
        default_factory=list,
        max_length=10,
        description=(
            "The tenant's newest backups (up to 10, newest first): what its admins may restore"
            " with a BackupRestore."
        ),
    )


class CloudTenantStatus(Model):
    """The observed state of the tenant, written by the operator."""

    phase: Phase = Phase.PENDING
    observed_generation: int | None = Field(default=None, alias="observedGeneration")
    namespace_count: int = Field(
        default=0, alias="namespaceCount", ge=0, description="Namespaces that exist."
    )
    usage: UsageSummary = Field(default_factory=UsageSummary)
    namespaces: list[NamespaceStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    quota: ResourceAmounts = Field(default_factory=ResourceAmounts)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    placement: PlacementStatus | None = None
    migrations: MigrationRollup | None = Field(
        default=None, description="Written by the MigrationPlan reconciler."
    )
    billing: BillingStatus | None = Field(default=None, description="Written by metering.")
    backup: BackupStatus | None = Field(
        default=None, description="Backups by policy (with the operator's backup.enabled)."
    )
    ledger_uid: str | None = Field(
        default=None,
        alias="ledgerUID",
        max_length=36,
        description=(
            "The UID the tenant's records (UsageReports) are kept under: its own when first"
            " seen, kept when the tenant is restored from a backup under a new UID."
        ),
    )
