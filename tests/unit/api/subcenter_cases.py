"""SubCenter objects for the API tests: good sites, and every bad input with its rule."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

Object = dict[str, Any]

GOOD_NAME = "feixi"

GOOD_SPEC: dict[str, Any] = {
    "displayName": "肥西县政务云分中心",
    "region": "肥西县",
    "tier": "county",
    "mode": "federated",
    "kubeconfigSecretRef": {"name": "feixi-kubeconfig", "namespace": "govcloud-system"},
    "maxSecurityLevel": 2,
    "placementLabels": {"zone": "west", "network.govcloud.io/segment": "e-gov-extranet"},
}

HOSTED_SPEC: dict[str, Any] = {
    "displayName": "长丰县数据中心",
    "region": "长丰县",
    "tier": "county",
    "mode": "hosted",
    "kubeconfigSecretRef": {
        "name": "changfeng.kubeconfig",
        "namespace": "govcloud-system",
        "key": "value",
    },
    "maxSecurityLevel": 3,
    "retireBy": "2027-06-30",
    "probe": {"intervalSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 5},
    "credentialExpiryWarningDays": 14,
}


def good_object() -> Object:
    """A fresh, valid federated SubCenter object (apiVersion, kind, metadata, spec)."""
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "SubCenter",
        "metadata": {"name": GOOD_NAME},
        "spec": copy.deepcopy(GOOD_SPEC),
    }


def hosted_object() -> Object:
    """A fresh, valid hosted SubCenter object with every optional field set."""
    return {
        "apiVersion": "govcloud.io/v1alpha1",
        "kind": "SubCenter",
        "metadata": {"name": "changfeng"},
        "spec": copy.deepcopy(HOSTED_SPEC),
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


def _set(**fields: Any) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        _spec(obj).update(fields)

    return change


def _secret(**fields: Any) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        _spec(obj)["kubeconfigSecretRef"].update(fields)

    return change


def _probe(**fields: Any) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        _spec(obj).setdefault("probe", {}).update(fields)

    return change


def _set_name(name: str) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        obj["metadata"]["name"] = name

    return change


def _labels(**labels: str) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        _spec(obj)["placementLabels"].update(labels)

    return change


MODE = "mode must be federated (a logical sub-center the city manages as part of its cloud)"
LEVEL = "maxSecurityLevel is the highest MLPS (等保) level the site is certified to host"
SECRET_NAME = "kubeconfigSecretRef.name must be a Secret name"
SECRET_NAMESPACE = "kubeconfigSecretRef.namespace must be a namespace name"

# Every bad input refused by a CEL rule; the operator's models give the same message.
CEL_CASES = (
    BadCase("unknown-mode", _set(mode="migrated"), MODE, "spec.mode"),
    BadCase("mode-in-capitals", _set(mode="Federated"), MODE, "spec.mode"),
    BadCase("max-level-0", _set(maxSecurityLevel=0), LEVEL, "spec.maxSecurityLevel"),
    BadCase("max-level-4", _set(maxSecurityLevel=4), LEVEL, "spec.maxSecurityLevel"),
    BadCase(
        "hosted-without-retire-by",
        _set(mode="hosted"),
        "a hosted sub-center is being retired: set retireBy",
        "spec",
    ),
    BadCase(
        "federated-with-retire-by",
        _set(retireBy="2027-01-01"),
        "retireBy applies only to hosted sub-centers",
        "spec",
    ),
    BadCase(
        "secret-name-with-capitals",
        _secret(name="Feixi-Kubeconfig"),
        SECRET_NAME,
        "spec.kubeconfigSecretRef.name",
    ),
    BadCase(
        "secret-name-with-slash",
        _secret(name="govcloud-system/feixi"),
        SECRET_NAME,
        "spec.kubeconfigSecretRef.name",
    ),
    BadCase(
        "secret-name-ending-in-dash",
        _secret(name="feixi-"),
        SECRET_NAME,
        "spec.kubeconfigSecretRef.name",
    ),
    BadCase(
        "secret-namespace-with-dot",
        _secret(namespace="govcloud.system"),
        SECRET_NAMESPACE,
        "spec.kubeconfigSecretRef.namespace",
    ),
    BadCase(
        "secret-key-with-slash",
        _secret(key="configs/kubeconfig"),
        "kubeconfigSecretRef.key must be a Secret data key",
        "spec.kubeconfigSecretRef.key",
    ),
    BadCase(
        "probe-interval-1",
        _probe(intervalSeconds=1, timeoutSeconds=1),
        "probe.intervalSeconds must be between 2 and 300 seconds",
        "spec.probe.intervalSeconds",
    ),
    BadCase(
        "probe-interval-301",
        _probe(intervalSeconds=301),
        "probe.intervalSeconds must be between 2 and 300 seconds",
        "spec.probe.intervalSeconds",
    ),
    BadCase(
        "probe-timeout-0",
        _probe(timeoutSeconds=0),
        "probe.timeoutSeconds must be between 1 and 60 seconds",
        "spec.probe.timeoutSeconds",
    ),
    BadCase(
        "probe-threshold-0",
        _probe(failureThreshold=0),
        "probe.failureThreshold (failed probes in a row before Reachable turns False)",
        "spec.probe.failureThreshold",
    ),
    BadCase(
        "probe-threshold-11",
        _probe(failureThreshold=11),
        "must be between 1 and 10",
        "spec.probe.failureThreshold",
    ),
    BadCase(
        "probe-timeout-over-interval",
        _probe(intervalSeconds=3),
        "probe.timeoutSeconds must not exceed probe.intervalSeconds",
        "spec.probe",
    ),
    BadCase(
        "warning-days-0",
        _set(credentialExpiryWarningDays=0),
        "credentialExpiryWarningDays must be between 1 and 365",
        "spec.credentialExpiryWarningDays",
    ),
    BadCase(
        "malformed-placement-label-key",
        _labels(**{"-zone": "west"}),
        "label keys must be [prefix/]name",
        "spec.placementLabels",
    ),
    BadCase(
        "name-hub",
        _set_name("hub"),
        "and not 'hub', which names the central cluster",
        "",
    ),
    BadCase(
        "name-not-a-dns-label",
        _set_name("feixi.county"),
        "the sub-center name must be a DNS label",
        "",
    ),
    BadCase(
        "name-over-63",
        _set_name("f" * 64),
        "the sub-center name must be a DNS label",
        "",
    ),
)


def _drop(field: str) -> Callable[[Object], None]:
    def change(obj: Object) -> None:
        _spec(obj).pop(field)

    return change


def _drop_secret_namespace(obj: Object) -> None:
    _spec(obj)["kubeconfigSecretRef"].pop("namespace")


# Bad input refused by the plain schema (an enum, a format, a required field) before any CEL.
SCHEMA_CASES = (
    BadCase(
        "unknown-tier", _set(tier="village"), "Input should be 'city', 'county' or 'devzone'", ""
    ),
    BadCase("no-secret-ref", _drop("kubeconfigSecretRef"), "Field required", ""),
    BadCase("secret-ref-without-namespace", _drop_secret_namespace, "Field required", ""),
    BadCase("no-max-level", _drop("maxSecurityLevel"), "Field required", ""),
    BadCase("no-region", _drop("region"), "Field required", ""),
    BadCase(
        "retire-by-not-a-date",
        _set(mode="hosted", retireBy="next spring"),
        "Input should be a valid date",
        "",
    ),
    BadCase("unknown-field", _set(kubeconfig="apiVersion: v1"), "Extra inputs", ""),
    BadCase(
        "label-value-with-space",
        _labels(zone="west zone"),
        "String should match pattern",
        "",
    ),
)
