"""Bad input gets a clear answer from the real API server and changes nothing (behaviour 9).

The refusals come from the generated CRD schema and its CEL rules; the cases (and their
messages) are the ones the model unit tests use, so the operator and the API server agree.
Objects that slip past validation anyway (stored before a schema change) must not crash the
operator: they get phase Error and a condition saying what to fix.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import _tenant_helpers as helpers
import pytest
import yaml

from govcloud.dev import testing

pytestmark = pytest.mark.integration

cases = helpers.load_tenant_cases()

CRD_FILE = testing.CRD_DIR / "cloudtenants.govcloud.io.yaml"


def rename(obj: dict[str, Any]) -> dict[str, Any]:
    """Give the case's tenant a unique name, unless the case is about the name itself."""
    if obj["metadata"]["name"] == cases.GOOD_NAME:
        new = helpers.unique(cases.GOOD_NAME)
        obj["metadata"]["name"] = new
        # Member service accounts live in the tenant's own namespaces: they follow the name.
        for role in ("admins", "editors", "viewers"):
            members = obj["spec"].get(role) or {}
            if "serviceAccounts" in members:
                members["serviceAccounts"] = [
                    new + account[len(cases.GOOD_NAME) :]
                    if account.startswith(f"{cases.GOOD_NAME}-")
                    else account
                    for account in members["serviceAccounts"]
                ]
    return obj


def create(kubectl: testing.Kubectl, obj: dict[str, Any]) -> Any:
    return kubectl.run("create", "-f", "-", stdin=json.dumps(obj, ensure_ascii=False))


# What the plain OpenAPI schema (not CEL) answers; the API server words these itself.
def _set(path: str, value: Any) -> Any:
    def change(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node[key]
        node[last] = value

    return change


SCHEMA_CASES = (
    cases.BadCase(
        "unknown-tier",
        _set("spec.unit.tier", "village"),
        'Unsupported value: "village": supported values: "city", "county", "devzone"',
        "spec.unit.tier",
    ),
    cases.BadCase(
        "unknown-deletion-policy",
        _set("spec.deletionPolicy", "Destroy"),
        'Unsupported value: "Destroy": supported values: "Retain", "Delete"',
        "spec.deletionPolicy",
    ),
    cases.BadCase(
        "contacts-missing",
        lambda o: o["spec"].pop("contacts"),
        "spec.contacts: Required value",
        "spec.contacts",
    ),
    cases.BadCase(
        "bad-email",
        lambda o: o["spec"]["contacts"][0].update(email="nobody"),
        'spec.contacts[0].email: Invalid value: "nobody"',
        "spec.contacts[].email",
    ),
    cases.BadCase(
        "unknown-field",
        lambda o: o["spec"].update(owner="x"),
        'unknown field "spec.owner"',
        "spec",
    ),
)


# Rules with a messageExpression: the API server names the offending key, so its words differ
# from the model's fixed message.
API_SERVER_WORDS = {
    "unknown-quota-key": "quota key cpus is not a ResourceQuota resource name",
    "bare-extended-resource-quota-key": "quota key nvidia.com/gpu is not a ResourceQuota resource",
    "misspelt-quota-key": "quota key requests.memroy is not a ResourceQuota resource name",
    "limits-storage-quota-key": "quota key limits.storage is not a ResourceQuota resource name",
    "limit-range-key-not-a-container-resource": "limitRange key foo is not a container resource",
}


def expected(case: Any) -> str:
    return API_SERVER_WORDS.get(case.id, case.message)


@pytest.mark.parametrize("case", [*cases.CEL_CASES, *SCHEMA_CASES], ids=lambda case: case.id)
def test_the_api_server_refuses_bad_input_with_a_readable_message(
    kubectl: testing.Kubectl, crds: None, case: Any
) -> None:
    obj = rename(case.object())
    name = obj["metadata"]["name"]

    result = create(kubectl, obj)

    assert result.returncode != 0, f"{case.id} was accepted"
    assert expected(case) in result.stderr, result.stderr
    assert kubectl.get("cloudtenant", name) is None


def test_the_good_tenant_of_the_cases_is_accepted(kubectl: testing.Kubectl, crds: None) -> None:
    """The control for every case above: only the change each case makes is refused."""
    obj = rename(cases.good_object())
    obj["spec"]["deletionPolicy"] = "Delete"
    name = obj["metadata"]["name"]
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.names.append(name)
        result = create(kubectl, obj)
        assert result.returncode == 0, result.stderr
        assert kubectl.get("cloudtenant", name) is not None
    finally:
        tenants.cleanup()


UPDATE_CASES = ("level-4", "classified", "duplicate-namespaces", "no-contacts", "peer-with-both")


@pytest.mark.parametrize("case_id", UPDATE_CASES)
def test_a_bad_update_is_refused_and_the_stored_tenant_is_unchanged(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess, case_id: str
) -> None:
    case = next(item for item in cases.CEL_CASES if item.id == case_id)
    name = helpers.unique("upd")
    tenants = helpers.Tenants(kubectl)
    try:
        tenants.create(name, namespaces=("payroll", "data"))
        before = helpers.wait_phase(kubectl, name, "Active")  # the operator's writes are done
        bad = case.object()
        bad["metadata"]["name"] = name

        result = kubectl.run("replace", "-f", "-", stdin=json.dumps(bad, ensure_ascii=False))

        assert result.returncode != 0, f"{case_id} was accepted as an update"
        assert expected(case) in result.stderr, result.stderr
        after = kubectl.get("cloudtenant", name)
        assert after is not None
        assert after["spec"] == before["spec"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
    finally:
        tenants.cleanup()


def permissive_crd() -> dict[str, Any]:
    """The CloudTenant CRD as it might have been before its rules: spec takes anything."""
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    loose = copy.deepcopy(crd)
    for version in loose["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        schema.pop("x-kubernetes-validations", None)
        schema["properties"]["spec"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        version.pop("selectableFields", None)  # they name spec fields the loose schema lacks
    return loose


def stale_level(name: str) -> dict[str, Any]:
    obj = helpers.tenant_manifest(name)
    obj["spec"]["securityLevel"] = 7
    return obj


def stale_duplicates(name: str) -> dict[str, Any]:
    return helpers.tenant_manifest(name, namespaces=("app", "app"))


def stale_long_namespace(name: str) -> dict[str, Any]:
    return helpers.tenant_manifest(name, namespaces=("b" * (63 - len(name)),))


STALE = (
    # (name prefix, builder, what the Ready condition must say)
    ("stale-level", stale_level, "securityLevel is the system's MLPS (等保) protection level"),
    ("stale-dup", stale_duplicates, "namespace names must be unique within a tenant"),
    ("stale-long", stale_long_namespace, "shorten the tenant or namespace name"),
)


def refused(kubectl: testing.Kubectl, tenants: helpers.Tenants, obj: dict[str, Any]) -> bool:
    """Whether creating `obj` is refused for its security level (tracked for cleanup if not)."""
    tenants.names.append(obj["metadata"]["name"])
    result = create(kubectl, obj)
    return result.returncode != 0 and "must be 1, 2 or 3" in result.stderr


def test_a_stored_bad_tenant_gets_phase_error_and_the_operator_keeps_working(
    kubectl: testing.Kubectl, operator: testing.OperatorProcess
) -> None:
    tenants = helpers.Tenants(kubectl)
    bad = {helpers.unique(prefix): (build, message) for prefix, build, message in STALE}
    probe = stale_level(helpers.unique("probe"))
    try:
        try:
            kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                "-",
                stdin=json.dumps(permissive_crd()),
            )
            # A CRD update takes effect a moment later: wait until a bad spec is stored.
            tenants.names.append(probe["metadata"]["name"])
            testing.eventually(
                lambda: create(kubectl, probe).returncode == 0,
                timeout=30,
                what="the permissive schema to take effect",
            )
            for name, (build, _) in bad.items():
                tenants.names.append(name)
                result = create(kubectl, build(name))
                assert result.returncode == 0, result.stderr
        finally:
            kubectl.apply_crds()
        # The real schema is back: the same bad input is refused again.
        testing.eventually(
            lambda: refused(kubectl, tenants, stale_level(helpers.unique("again"))),
            timeout=30,
            what="the real schema to take effect again",
        )

        for name, (_, message) in bad.items():
            body = helpers.wait_tenant(
                kubectl,
                name,
                lambda body: helpers.phase(body) == "Error",
                what="phase Error",
            )
            ready = helpers.condition(body, "Ready")
            assert ready["status"] == "False"
            assert ready["reason"] == "InvalidSpec"
            assert message in ready["message"]
            warnings = testing.eventually(
                lambda name=name: [
                    event
                    for event in helpers.events_for(kubectl, name)
                    if event["type"] == "Warning" and event["reason"] == "InvalidSpec"
                ],
                timeout=30,
                what=f"a Warning event on {name}",
            )
            assert message in warnings[0]["message"]
            namespaces = kubectl.json("get", "namespaces", "-l", f"govcloud.io/tenant={name}")
            assert namespaces["items"] == []

        # Status written under the loose schema is no evidence: clear it and let the operator
        # write it again, now that the stored specs fail the real schema (the root-level rule
        # on derived namespace names included).
        for name in bad:
            kubectl(
                "patch",
                "cloudtenant",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                '{"status": {"phase": null, "conditions": null}}',
            )
        for name, (_, message) in bad.items():
            helpers.wait_tenant(
                kubectl,
                name,
                lambda body, message=message: (
                    helpers.phase(body) == "Error"
                    and message in helpers.condition(body, "Ready").get("message", "")
                ),
                what="phase Error written again under the real schema",
            )

        assert operator.process is not None
        assert operator.process.poll() is None, operator.log_tail()
        good = helpers.unique("after-stale")
        tenants.create(good)
        helpers.wait_phase(kubectl, good, "Active")
        assert operator.metric_value("govcloud_reconcile_total", result="invalid") > 0
        # And a stored bad tenant can still be deleted: the finalizer comes off.
        for name in bad:
            kubectl("delete", "cloudtenant", name, "--wait=false")
        for name in bad:
            testing.eventually(
                lambda name=name: kubectl.get("cloudtenant", name) is None,
                timeout=60,
                what=f"the stored bad tenant {name} to be deleted",
            )
    finally:
        tenants.cleanup()
