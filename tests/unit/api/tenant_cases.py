"""CloudTenant objects for the API tests: one good tenant, and every bad input with its rule."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

Object = dict[str, Any]

GOOD_NAME = "finance"

GOOD_SPEC: dict[str, Any] = {
    "displayName": "合肥市财政局",
    "unit": {"code": "finance-bureau", "tier": "city", "region": "蜀山区"},
    "contacts": [
        {"name": "张伟", "email": "zhang.wei@czj.hefei.gov.cn", "phone": "+86 551 6353 0000"},
        {"name": "李娜", "phone": "0551-63530001"},
    ],
    "admins": {
        "users": ["zhang.wei"],
        "groups": ["finance-admins"],
        "serviceAccounts": ["finance-payroll/deployer"],
    },
    "viewers": {"groups": ["city-auditors"]},
    "securityLevel": 3,
    "namespaces": [
        {"name": "payroll", "labels": {"team": "payroll", "example.org/cost-center": "cc-12"}},
        {"name": "data"},
    ],
    "quota": {
        "requests.cpu": 64,
        "limits.cpu": "128",
        "requests.memory": "128Gi",
        "limits.memory": "256Gi",
        "requests.storage": "2Ti",
        "persistentvolumeclaims": 40,
        "pods": 200,
        "services.loadbalancers": 0,
        "count/deployments.apps": 50,
        "gold.storageclass.storage.k8s.io/requests.storage": "500Gi",
        "requests.nvidia.com/gpu": 2,
        "hugepages-2Mi": "1Gi",
        "cpu": "1.5",
        "memory": "1e9",
    },
    "limitRange": {
        "default": {"cpu": "500m", "memory": "512Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
        "max": {"cpu": 8},
    },
    "network": {
        "allowFrom": [
            {"tenant": "data-bureau"},
            {"namespaceSelector": {"govcloud.io/platform": "monitoring"}},
        ]
    },
    "deletionPolicy": "Retain",
}


def good_object() -> Object:
    """A fresh, valid CloudTenant object (apiVersion, kind, metadata, spec)."""
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "CloudTenant",
        "metadata": {"name": GOOD_NAME},
        "spec": copy.deepcopy(GOOD_SPEC),
    }


@dataclasses.dataclass(frozen=True)
class BadCase:
    """Bad input, the fragment of the message that refuses it, and where the rule sits."""

    id: str
    change: Callable[[Object], None]
    message: str
    rule_at: str  # dotted path of the schema node carrying the CEL rule; "" is the root

    def object(self) -> Object:
        obj = good_object()
        self.change(obj)
        return obj


def _spec(obj: Object) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]
    return spec


def _set_name(name: str) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        obj["metadata"]["name"] = name

    return change


def _long_namespace(obj: Object) -> None:
    obj["metadata"]["name"] = "a" * 40
    _spec(obj)["namespaces"] = [{"name": "b" * 23}]


def _kube_system(obj: Object) -> None:
    obj["metadata"]["name"] = "kube"
    _spec(obj)["namespaces"] = [{"name": "system", "adopt": True}]
    _spec(obj)["admins"] = {"users": ["mallory"]}


# Every bad input refused by a CEL rule; the operator's models give the same message.
CEL_CASES = (
    BadCase(
        "level-0",
        lambda o: _spec(o).update(securityLevel=0),
        "MLPS (等保) protection level and must be 1, 2 or 3",
        "spec.securityLevel",
    ),
    BadCase(
        "level-4",
        lambda o: _spec(o).update(securityLevel=4),
        "MLPS (等保) protection level and must be 1, 2 or 3",
        "spec.securityLevel",
    ),
    BadCase(
        "classified",
        lambda o: _spec(o).update(classified=True),
        "classified (涉密) systems are not hosted on the government cloud",
        "spec.classified",
    ),
    BadCase(
        "malformed-quantity",
        lambda o: _spec(o)["quota"].update({"requests.cpu": "two cores"}),
        "must be a Kubernetes quantity such as 4, 500m, 1.5 or 8Gi",
        "spec.quota.*",
    ),
    BadCase(
        "malformed-limit",
        lambda o: _spec(o)["limitRange"]["default"].update(cpu="0.5 cpu"),
        "must be a Kubernetes quantity such as 4, 500m, 1.5 or 8Gi",
        "spec.limitRange.default.*",
    ),
    BadCase(
        "negative-quota-string",
        lambda o: _spec(o)["quota"].update({"requests.memory": "-1Gi"}),
        "quantities must not be negative",
        "spec.quota.*",
    ),
    BadCase(
        "negative-quota-int",
        lambda o: _spec(o)["quota"].update(pods=-5),
        "quantities must not be negative",
        "spec.quota.*",
    ),
    BadCase(
        "unknown-quota-key",
        lambda o: _spec(o)["quota"].update(cpus=4),
        "quota keys must be ResourceQuota resource names",
        "spec.quota",
    ),
    BadCase(
        "bare-extended-resource-quota-key",
        lambda o: _spec(o)["quota"].update({"nvidia.com/gpu": 1}),
        "quota keys must be ResourceQuota resource names",
        "spec.quota",
    ),
    BadCase(
        "misspelt-quota-key",
        lambda o: _spec(o)["quota"].update({"requests.memroy": "8Gi"}),
        "quota keys must be ResourceQuota resource names",
        "spec.quota",
    ),
    BadCase(
        "limits-storage-quota-key",
        lambda o: _spec(o)["quota"].update({"limits.storage": "1Ti"}),
        "quota keys must be ResourceQuota resource names",
        "spec.quota",
    ),
    BadCase(
        "quantity-exponent-over-3-digits",
        lambda o: _spec(o)["quota"].update({"requests.cpu": "1e1000"}),
        "must be a Kubernetes quantity such as 4, 500m, 1.5 or 8Gi",
        "spec.quota.*",
    ),
    BadCase(
        "limit-range-key-not-a-container-resource",
        lambda o: _spec(o)["limitRange"]["default"].update(foo="2"),
        "limitRange keys must be cpu, memory or ephemeral-storage",
        "spec.limitRange.default",
    ),
    BadCase(
        "limit-range-default-above-max",
        lambda o: _spec(o)["limitRange"]["default"].update(cpu="16"),
        "limitRange.default must not exceed limitRange.max",
        "spec.limitRange",
    ),
    BadCase(
        "limit-range-request-above-default",
        lambda o: _spec(o)["limitRange"]["defaultRequest"].update(memory="1Gi"),
        "limitRange.defaultRequest must not exceed limitRange.default",
        "spec.limitRange",
    ),
    BadCase(
        "duplicate-namespaces",
        lambda o: _spec(o)["namespaces"].append({"name": "payroll"}),
        "namespace names must be unique within a tenant",
        "spec.namespaces",
    ),
    BadCase(
        "no-contacts",
        lambda o: _spec(o).update(contacts=[]),
        "at least one contact (the person responsible for the tenant) is required",
        "spec.contacts",
    ),
    BadCase(
        "no-namespaces",
        lambda o: _spec(o).update(namespaces=[]),
        "at least one namespace is required",
        "spec.namespaces",
    ),
    BadCase(
        "unreachable-contact",
        lambda o: _spec(o)["contacts"].append({"name": "王芳"}),
        "a contact needs an email address or a phone number",
        "spec.contacts[]",
    ),
    BadCase(
        "service-account-without-namespace",
        lambda o: _spec(o)["admins"]["serviceAccounts"].append("deployer"),
        "service accounts are written <namespace>/<name>",
        "spec.admins.serviceAccounts[]",
    ),
    BadCase(
        "peer-with-neither",
        lambda o: _spec(o)["network"]["allowFrom"].append({}),
        "an allowFrom entry names exactly one of tenant or namespaceSelector",
        "spec.network.allowFrom[]",
    ),
    BadCase(
        "peer-with-both",
        lambda o: _spec(o)["network"]["allowFrom"].append(
            {"tenant": "data-bureau", "namespaceSelector": {"team": "x"}}
        ),
        "an allowFrom entry names exactly one of tenant or namespaceSelector",
        "spec.network.allowFrom[]",
    ),
    BadCase(
        "empty-namespace-selector",
        lambda o: _spec(o)["network"]["allowFrom"].append({"namespaceSelector": {}}),
        "namespaceSelector must name at least one label",
        "spec.network.allowFrom[].namespaceSelector",
    ),
    BadCase(
        "reserved-namespace-label",
        lambda o: _spec(o)["namespaces"][0]["labels"].update(
            {"pod-security.kubernetes.io/enforce": "privileged"}
        ),
        "are set by the operator",
        "spec.namespaces[].labels",
    ),
    BadCase(
        "malformed-label-key",
        lambda o: _spec(o)["namespaces"][0]["labels"].update({"-team": "x"}),
        "label keys must be [prefix/]name",
        "spec.namespaces[].labels",
    ),
    BadCase(
        "tenant-name-not-a-dns-label",
        _set_name("finance.bureau"),
        "the tenant name must be a DNS label",
        "",
    ),
    BadCase(
        "tenant-name-over-40",
        _set_name("f" * 41),
        "the tenant name must be a DNS label",
        "",
    ),
    BadCase(
        "derived-namespace-over-63",
        _long_namespace,
        "every namespace name <tenant>-<namespace> must be at most 63 characters",
        "",
    ),
    BadCase(
        "tenant-kube-would-make-kube-system",
        _kube_system,
        "tenant names kube and kube-* are reserved",
        "",
    ),
    BadCase(
        "tenant-kube-prefix",
        _set_name("kube-finance"),
        "tenant names kube and kube-* are reserved",
        "",
    ),
    BadCase(
        "service-account-of-another-namespace",
        lambda o: _spec(o)["admins"]["serviceAccounts"].append("other-tenant-apps/deployer"),
        "service accounts must come from the tenant's own namespaces",
        "",
    ),
    BadCase(
        "service-account-of-a-namespace-the-tenant-does-not-have",
        lambda o: _spec(o)["viewers"].update(serviceAccounts=["finance-legacy/reader"]),
        "service accounts must come from the tenant's own namespaces",
        "",
    ),
    BadCase(
        "system-group-member",
        lambda o: _spec(o).update(editors={"groups": ["system:authenticated"]}),
        "users and groups named system:* are Kubernetes' own",
        "spec.editors.groups[]",
    ),
    BadCase(
        "system-user-member",
        lambda o: _spec(o)["admins"]["users"].append("system:serviceaccount:kube-system:default"),
        "users and groups named system:* are Kubernetes' own",
        "spec.admins.users[]",
    ),
)


def _unknown_tier(obj: Object) -> None:
    _spec(obj)["unit"]["tier"] = "village"


# Bad input refused by the plain schema (an enum, a required field) before any CEL runs.
SCHEMA_CASES = (
    BadCase("unknown-tier", _unknown_tier, "Input should be 'city', 'county' or 'devzone'", ""),
    BadCase(
        "contacts-missing", lambda o: _spec(o).pop("contacts"), "Field required", "spec.contacts"
    ),
    BadCase("unknown-field", lambda o: _spec(o).update(owner="x"), "Extra inputs", ""),
    BadCase("bad-email", lambda o: _spec(o)["contacts"][0].update(email="nobody"), "pattern", ""),
)
