"""A decision on record holds on the very content it was made on: a plan or request restored
from a backup (generation 1 again) is not re-decided; an edit of the content still unbinds it."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any, cast

import test_reconcile_plan as plans_test
import test_reconcile_request as requests_test

from govcloud.api.v1alpha1 import resourceplan
from govcloud.billing import plans
from govcloud.k8s import client
from govcloud.reconcile import plan, request

Manifest = dict[str, Any]
LATER = plans_test.NOW + timedelta(days=40)
RESTORED_AT = (plans_test.NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
REQUEST_LATER = requests_test.NOW + timedelta(days=40)
REQUEST_RESTORED_AT = (requests_test.NOW + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


class CountingHub(plans_test.Hub):
    """The plan hub, counting status writes."""

    def __init__(self, body: Manifest) -> None:
        super().__init__(body)
        self.writes = 0

    def patch_status(self, api_version: str, kind: str, name: str, status: Manifest) -> Manifest:
        self.writes += 1
        return super().patch_status(api_version, kind, name, status)


def approved_plan() -> CountingHub:
    """A plan decided on generation 1 (so at generation 2), honoured by a pass."""
    hub = CountingHub(plans_test.body(2, plans_test.decision(generation=1)))
    plans_test.run(hub)
    assert hub.plan["status"]["review"]["state"] == "Approved"
    return hub


def restored(original: Manifest) -> Manifest:
    """What a restore makes of it: the same spec and status, the generation back to 1."""
    body = copy.deepcopy(original)
    body["metadata"] = {
        "name": original["metadata"]["name"],
        "generation": 1,
        "creationTimestamp": RESTORED_AT,
    }
    return body


def later_pass(hub: CountingHub) -> plan.Result:
    return plan.reconcile(
        cast(client.Cluster, hub), hub.plan["metadata"]["name"], object(), now=LATER
    )


def test_the_digest_is_of_the_content_not_of_the_decision_nor_the_key_order() -> None:
    spec = plans_test.body(2, plans_test.decision())["spec"]
    reordered = dict(reversed(list(spec.items())))
    undecided = {key: value for key, value in spec.items() if key != "decision"}
    edited = copy.deepcopy(spec)
    edited["lines"][0]["count"] = 2
    assert plans.spec_digest(spec) == plans.spec_digest(reordered) == plans.spec_digest(undecided)
    assert plans.spec_digest(edited) != plans.spec_digest(spec)
    assert plans.spec_digest(spec).startswith("sha256:")


def test_an_honoured_decision_records_the_digest_of_the_content_it_holds_on() -> None:
    hub = approved_plan()
    review = hub.plan["status"]["review"]
    assert review["specDigest"] == plans.spec_digest(hub.plan["spec"])
    writes = hub.writes
    plans_test.run(hub)
    assert hub.writes == writes  # at rest: nothing to write


def test_a_restored_approved_plan_keeps_its_decision_and_is_not_decided_again() -> None:
    original = approved_plan()
    before = copy.deepcopy(original.plan["status"])
    hub = CountingHub(restored(original.plan))
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is not None
    result = later_pass(hub)
    status = hub.plan["status"]
    assert status["review"] == before["review"]  # decidedAt, decider, digest: as recorded
    assert status["history"] == before["history"]
    assert plans_test.approved(hub)["status"] == "True"
    assert plans_test.reasons(result) == []  # no PlanApproved again, no DecisionStale
    assert hub.reviews == []  # not asked about again: it was checked when first seen
    assert not result.tenant_affected
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is not None
    # Only the generation it observed moved (1 now); then it rests.
    assert status["observedGeneration"] == 1
    writes = hub.writes
    later_pass(hub)
    assert hub.writes == writes


def test_without_a_digest_on_record_a_restored_plan_would_be_stale_as_before() -> None:
    original = approved_plan()
    body = restored(original.plan)
    del body["status"]["review"]["specDigest"]  # recorded before digests existed
    hub = CountingHub(body)
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is None
    later_pass(hub)
    assert hub.plan["status"]["review"]["state"] == "Pending"
    assert plans_test.approved(hub)["reason"] == plan.DECISION_STALE


def test_a_restored_plan_edited_afterwards_is_unbound_by_its_new_content() -> None:
    original = approved_plan()
    hub = CountingHub(restored(original.plan))
    later_pass(hub)
    hub.plan["spec"]["lines"][0]["count"] = 5  # the filer edits it: generation 2
    hub.plan["metadata"]["generation"] = 2
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is None
    result = later_pass(hub)
    assert hub.plan["status"]["review"]["state"] == "Pending"
    assert (plans_test.approved(hub)["status"], plans_test.approved(hub)["reason"]) == (
        "False",
        plan.DECISION_STALE,
    )
    assert plans_test.reasons(result) == [plan.DECISION_STALE]


def test_a_restored_plan_edited_up_to_its_old_generation_stays_unbound() -> None:
    """Generations start again at 1 on a restore: edits bring the plan back to the generation
    its old decision names (approvedGeneration 1, so 2). The decision was on record before the
    plan was created again, so it holds by its digest only, never by that coincidence, on every
    later pass too (its history remembers it after the review turned Pending)."""
    original = approved_plan()
    hub = CountingHub(restored(original.plan))
    later_pass(hub)
    hub.plan["spec"]["lines"][0]["count"] = 5
    hub.plan["metadata"]["generation"] = 2  # == approvedGeneration + 1 again
    for _ in range(3):
        later_pass(hub)
        assert hub.plan["status"]["review"]["state"] == "Pending"
        assert plans_test.approved(hub)["reason"] == plan.DECISION_STALE
        assert "restored" in plans_test.approved(hub)["message"]
        assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is None
    assert hub.reviews == []  # never taken for a new decision


def test_an_approver_decides_a_restored_and_edited_plan_again() -> None:
    original = approved_plan()
    hub = CountingHub(restored(original.plan))
    later_pass(hub)
    hub.plan["spec"]["lines"][0]["count"] = 5
    hub.plan["spec"]["decision"]["approvedGeneration"] = 2
    hub.plan["metadata"]["generation"] = 3
    later_pass(hub)
    assert hub.plan["status"]["review"]["state"] == "Approved"
    assert hub.plan["status"]["review"]["observedGeneration"] == 3
    assert hub.plan["status"]["review"]["decidedAt"] == LATER.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(hub.reviews) == 1  # a new decision: the approver asked about
    assert len(hub.plan["status"]["history"]) == 2
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is not None


def test_an_edit_after_approval_unbinds_even_when_the_generation_looks_right() -> None:
    """The digest never makes a decision hold on other content: a review on record whose
    digest differs from the spec's is not carried over, whatever the generations say."""
    hub = approved_plan()
    hub.plan["status"]["review"]["specDigest"] = "sha256:" + "0" * 64
    hub.plan["metadata"]["generation"] = 7
    assert plan.approved_ceiling(cast(client.Cluster, hub), "jtj", plans_test.YEAR) is None
    later_pass(hub)
    assert plans_test.approved(hub)["reason"] == plan.DECISION_STALE


def test_a_review_recorded_before_digests_gets_one_once_and_keeps_its_time() -> None:
    hub = approved_plan()
    decided_at = hub.plan["status"]["review"]["decidedAt"]
    del hub.plan["status"]["review"]["specDigest"]
    writes = hub.writes
    later_pass(hub)
    assert hub.plan["status"]["review"]["specDigest"] == plans.spec_digest(hub.plan["spec"])
    assert hub.plan["status"]["review"]["decidedAt"] == decided_at
    assert hub.writes == writes + 1
    later_pass(hub)
    assert hub.writes == writes + 1


def test_a_restored_approved_request_is_not_decided_again() -> None:
    decided = {"state": "Approved", "by": "wang.lujiang", "reason": "同意", "approvedGeneration": 1}
    original = requests_test.Hub(requests_test.a_request(2, decided))
    requests_test.run(original)
    before = copy.deepcopy(original.body["status"])
    body = copy.deepcopy(original.body)
    body["metadata"]["generation"] = 1
    body["metadata"]["creationTimestamp"] = REQUEST_RESTORED_AT
    hub = requests_test.Hub(body)
    result = request.reconcile(
        cast(client.Cluster, hub), "jtj-app", "flood", object(), now=REQUEST_LATER
    )
    assert hub.body["status"]["review"] == before["review"]
    assert hub.body["status"]["history"] == before["history"]
    assert requests_test.condition(hub, "Approved")["status"] == "True"
    assert [event.reason for event in result.events] == []
    assert hub.reviews == []
    assert plan._decided(hub.body)


def test_a_restored_request_edited_afterwards_no_longer_counts() -> None:
    decided = {"state": "Approved", "by": "wang.lujiang", "reason": "同意", "approvedGeneration": 1}
    original = requests_test.Hub(requests_test.a_request(2, decided))
    requests_test.run(original)
    body = copy.deepcopy(original.body)
    body["metadata"]["generation"] = 2  # restored at 1, edited once: its old generation
    body["metadata"]["creationTimestamp"] = REQUEST_RESTORED_AT
    body["spec"]["lines"][0]["count"] = 9
    assert not plan._decided(body)
    hub = requests_test.Hub(body)
    request.reconcile(cast(client.Cluster, hub), "jtj-app", "flood", object(), now=REQUEST_LATER)
    assert hub.body["status"]["review"]["state"] == "Pending"
    assert requests_test.condition(hub, "Approved")["reason"] == plan.DECISION_STALE


def test_the_carried_over_rule_needs_the_same_decider_and_reason() -> None:
    hub = approved_plan()
    previous = hub.plan["status"]["review"]
    digest = plans.spec_digest(hub.plan["spec"])
    other = plans_test.decision(by="wang.approver", generation=1)
    decision = resourceplan.Decision.model_validate(other)
    assert not plans.carried_over(decision, previous, digest)
    same = resourceplan.Decision.model_validate(plans_test.decision(generation=1))
    assert plans.carried_over(same, previous, digest)
    assert not plans.carried_over(same, previous, None)
    assert not plans.carried_over(same, {**previous, "specDigest": None}, digest)


def test_a_plan_filed_then_decided_rests_once_its_review_is_written() -> None:
    """The review of a filed plan has pendingSince; once decided it has none. A merge patch
    keeps a key it does not name, so the pass must send it as null, or the stored review never
    equals the pass's and every resync writes the plan again (seen on a clean-clone run)."""
    hub = CountingHub(plans_test.body(1))
    plans_test.run(hub)
    assert "pendingSince" in hub.plan["status"]["review"]
    hub.plan["spec"]["decision"] = plans_test.decision(generation=1)
    hub.plan["metadata"]["generation"] = 2
    plans_test.run(hub)
    assert hub.plan["status"]["review"]["state"] == "Approved"
    assert "pendingSince" not in hub.plan["status"]["review"]
    writes = hub.writes
    for _ in range(3):
        later_pass(hub)
    assert hub.writes == writes
