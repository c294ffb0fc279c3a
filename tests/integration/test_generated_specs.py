"""Generated specs sent to the real API server (#13 item 8): each is refused there with a message,
or accepted and driven by the running operator to Ready or a clear error condition; never an
operator exception, and every object the operator writes is accepted.

GOVCLOUD_GEN_EXAMPLES sets the examples per kind (make test: 15; make soak: more), and
GOVCLOUD_GEN_SEED draws another fixed set (default: derandomized, the same every run).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import _generated_helpers as gen
import _subcenter_helpers as sc
import _tenant_helpers as helpers
import pytest
from hypothesis import strategies as st

from govcloud.api.v1alpha1 import cloudtenant, migrationplan, resourceplan, subcenter
from govcloud.desired import quantity
from govcloud.dev import cluster, testing

pytestmark = pytest.mark.integration

strategies = gen.strategies()
RUN = uuid.uuid4().hex[:4]
# Specs are drawn for this tenant name and then given their own (same length, so the
# derived namespace names keep their length).
PLACEHOLDER = "gqqqqqq-qq"
SETTLE_SECONDS = 120.0
Manifest = dict[str, Any]


def named(document: Manifest, name: str) -> Manifest:
    assert len(name) == len(PLACEHOLDER)
    renamed: Manifest = json.loads(json.dumps(document).replace(PLACEHOLDER, name))
    return renamed


@pytest.fixture
def tenants(kubectl: testing.Kubectl, operator: testing.OperatorProcess) -> Iterator[Any]:
    made = helpers.Tenants(kubectl)
    yield made
    made.cleanup()


@pytest.fixture
def watch(hub: cluster.ControlPlane, operator: testing.OperatorProcess) -> gen.OperatorWatch:
    return gen.OperatorWatch(operator, hub.audit_events)


@pytest.fixture
def sender(hub: cluster.ControlPlane) -> gen.Sender:
    return gen.Sender(hub.kubeconfig)


def python_takes(parse: Callable[..., Any], *args: Any) -> bool:
    try:
        parse(*args)
    except ValueError:
        return False
    return True


def name_of(answer: gen.Answer) -> str:
    return str(answer.manifest["metadata"]["name"])


def judge(answers: list[gen.Answer], python_verdicts: list[bool]) -> list[str]:
    """Refusals without a proper message, and specs the API server and the models judge
    differently (the operator would call an accepted spec InvalidSpec, or the reverse)."""
    problems = []
    for answer, python_ok in zip(answers, python_verdicts, strict=True):
        name = answer.manifest["metadata"]["name"]
        if not answer.accepted and (why := gen.refused_with_a_message(answer)):
            problems.append(f"{name}: refused improperly: {why}")
        if answer.accepted != python_ok:
            said = "accepted" if answer.accepted else f"refused ({answer.message[:400]})"
            takes = "take" if python_ok else "refuse"
            problems.append(
                f"{name}: the API server {said} but the models {takes} it:"
                f" {json.dumps(answer.manifest['spec'], ensure_ascii=False)}"
            )
    return problems


def outcomes(bodies: dict[str, Manifest], main: str | None) -> list[str]:
    return [
        f"{name}: {why}: {json.dumps(body.get('status'), ensure_ascii=False)[:1500]}"
        for name, body in bodies.items()
        if (why := gen.unclear(body, main))
    ]


def settle(kubectl: testing.Kubectl, kind: str, answers: list[gen.Answer]) -> dict[str, Manifest]:
    accepted = [
        (answer.manifest["metadata"].get("namespace"), answer.manifest["metadata"]["name"])
        for answer in answers
        if answer.accepted
    ]
    return gen.wait_settled(kubectl, kind, accepted, SETTLE_SECONDS)


def report(kind: str, answers: list[gen.Answer], problems: list[str]) -> None:
    accepted = sum(answer.accepted for answer in answers)
    refused = len(answers) - accepted
    print(f"{kind}: {len(answers)} generated, {accepted} accepted, {refused} refused")
    assert not problems, f"{gen.seed_note()}:\n" + "\n".join(problems)


def test_every_quantity_the_api_server_takes_parses_in_python(
    crds: None, sender: gen.Sender
) -> None:
    """Quantities from the CRD's own grammar, near its bounds and beyond, as a tenant's quota
    (a server-side dry run each): the API server and Python take exactly the same ones, and
    every one taken parses and formats back."""
    texts = gen.draw(
        st.one_of(
            strategies.grammar_quantities,
            st.sampled_from([*strategies.EDGE_QUANTITIES, *strategies.BAD_QUANTITIES]),
        ),
        4 * gen.EXAMPLES,
    )
    problems = []
    taken = 0
    for index, text in enumerate(texts):
        name = f"q{RUN}-{index}"
        spec = {
            "displayName": "配额",
            "unit": {"code": "q", "tier": "city"},
            "contacts": [{"name": "n", "email": "n@example.gov.cn"}],
            "securityLevel": 2,
            "namespaces": [{"name": "app"}],
            "quota": {"requests.cpu": text, "limits.memory": text},
        }
        manifest = {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "CloudTenant",
            "metadata": {"name": name},
            "spec": spec,
        }
        answer = sender.create("cloudtenants", manifest, dry_run=True)
        if not answer.accepted and (why := gen.refused_with_a_message(answer)):
            problems.append(f"{text!r}: refused improperly: {why}")
        if answer.accepted != python_takes(cloudtenant.parse, name, spec):
            problems.append(f"{text!r}: the API server said {answer.status or 'yes'}")
        if answer.accepted:
            taken += 1
            value = quantity.parse(text)
            assert quantity.parse(quantity.to_string(value)) == value
    print(f"quantities: {len(texts)} sent, {taken} taken by the API server")
    assert not problems, f"{gen.seed_note()}:\n" + "\n".join(problems)


def test_generated_tenants_are_refused_with_a_message_or_settle(
    kubectl: testing.Kubectl,
    sender: gen.Sender,
    tenants: helpers.Tenants,
    watch: gen.OperatorWatch,
) -> None:
    answers = []
    drawn = gen.draw_half_flawed(
        lambda flaw: strategies.tenant_specs(PLACEHOLDER, flaw),
        strategies.TENANT_FLAWS,
        gen.EXAMPLES,
    )
    for index, spec in enumerate(drawn):
        name = f"g{RUN}-{index:04d}"
        manifest = {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "CloudTenant",
            "metadata": {"name": name, "annotations": {helpers.CONFIRM_DELETE: name}},
            "spec": named(spec, name),
        }
        tenants.names.append(name)
        answers.append(sender.create("cloudtenants", manifest))
    verdicts = [
        python_takes(cloudtenant.parse, name_of(item), item.manifest["spec"]) for item in answers
    ]
    problems = judge(answers, verdicts)
    problems += outcomes(settle(kubectl, "cloudtenant", answers), "Ready")
    problems += watch.problems()
    report("CloudTenant", answers, problems)


def test_generated_resource_plans_are_refused_with_a_message_or_settle(
    kubectl: testing.Kubectl,
    sender: gen.Sender,
    tenants: helpers.Tenants,
    watch: gen.OperatorWatch,
) -> None:
    owner = f"p{RUN}-o0"
    tenants.create(owner)
    answers = []
    created: list[str] = []
    plans = gen.draw_half_flawed(
        lambda flaw: strategies.resource_plan_specs(owner, 2027, flaw),
        strategies.PLAN_FLAWS,
        gen.EXAMPLES,
    )
    for index, drawn in enumerate(plans):
        # One plan per tenant and year: each example plans another year (spec.year follows),
        # and past 2100 another tenant (one that does not exist: its plan must say so).
        tenant, year = f"p{RUN}-o{index // 70}", 2027 + index % 70
        spec = {**drawn, "tenant": tenant, "year": drawn["year"] - 2027 + year}
        manifest = {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "ResourcePlan",
            "metadata": {"name": f"{tenant}-{year}"},
            "spec": spec,
        }
        answer = sender.create("resourceplans", manifest)
        answers.append(answer)
        if answer.accepted:
            created.append(manifest["metadata"]["name"])
    try:
        verdicts = [
            python_takes(resourceplan.parse, name_of(item), item.manifest["spec"])
            for item in answers
        ]
        problems = judge(answers, verdicts)
        problems += outcomes(settle(kubectl, "resourceplan", answers), "Ready")
        problems += watch.problems()
    finally:
        for name in created:
            kubectl.run("delete", "resourceplan", name, "--wait=false")
    report("ResourcePlan", answers, problems)


def test_generated_subcenters_are_refused_with_a_message_or_settle(
    kubectl: testing.Kubectl,
    sender: gen.Sender,
    sites: sc.Sites,
    watch: gen.OperatorWatch,
) -> None:
    secret = f"gen-{RUN}-kubeconfig"
    # Not a cluster anyone can reach: the sites are accepted and say why they are not Ready.
    sites.put_secret(secret, {sc.KUBECONFIG_KEY: "apiVersion: v1\nkind: Config\nclusters: []\n"})
    answers = []
    drawn = gen.draw_half_flawed(
        lambda flaw: strategies.subcenter_specs(secret, sc.SYSTEM_NAMESPACE, flaw),
        strategies.SUBCENTER_FLAWS,
        gen.EXAMPLES,
    )
    for index, spec in enumerate(drawn):
        manifest = {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "SubCenter",
            "metadata": {"name": f"gsc{RUN}-{index}"},
            "spec": spec,
        }
        sites.names.append(manifest["metadata"]["name"])
        answers.append(sender.create("subcenters", manifest))
    verdicts = [
        python_takes(subcenter.parse, name_of(item), item.manifest["spec"]) for item in answers
    ]
    problems = judge(answers, verdicts)
    problems += outcomes(settle(kubectl, "subcenter", answers), "Ready")
    problems += watch.problems()
    report("SubCenter", answers, problems)


def test_generated_migration_plans_are_refused_with_a_message_or_settle(
    kubectl: testing.Kubectl,
    sender: gen.Sender,
    tenants: helpers.Tenants,
    watch: gen.OperatorWatch,
) -> None:
    owner = f"m{RUN}-own"
    tenants.create(owner, namespaces=["app"])
    helpers.wait_phase(kubectl, owner, "Active")
    target = f"{owner}-app"
    legacy = f"m{RUN}-legacy"
    kubectl("create", "namespace", legacy)
    tenants.track_namespace(legacy)
    kubectl("annotate", "namespace", legacy, f"govcloud.io/migration-grant={owner}")
    kubectl("create", "configmap", "settings", "-n", legacy, "--from-literal=mode=prod")
    answers = []
    drawn = gen.draw_half_flawed(
        lambda flaw: strategies.migration_plan_specs(legacy, target, flaw),
        strategies.MIGRATION_FLAWS,
        gen.EXAMPLES,
    )
    for index, spec in enumerate(drawn):
        manifest = {
            "apiVersion": "govcloud.io/v1alpha1",
            "kind": "MigrationPlan",
            "metadata": {"name": f"move-{index}", "namespace": target},
            "spec": spec,
        }
        answers.append(sender.create("migrationplans", manifest))
    verdicts = [python_takes(migrationplan.parse, item.manifest["spec"]) for item in answers]
    problems = judge(answers, verdicts)
    problems += outcomes(settle(kubectl, "migrationplan", answers), None)
    problems += watch.problems()
    for answer in answers:
        if answer.accepted:
            name = answer.manifest["metadata"]["name"]
            kubectl.run("delete", "migrationplan", name, "-n", target, "--wait=false")
    report("MigrationPlan", answers, problems)
