"""A condition that turns bad is said once in a Warning Event, not on every pass."""

from __future__ import annotations

from typing import Any

from govcloud.reconcile import conditions, events


def stored(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


CONFLICT = stored("NamespacesReady", "False", "NamespaceConflict", "t1-a: Conflict (taken)")
ACTIVE = stored("NamespacesReady", "True", "AllNamespacesActive", "1 namespaces active")


def test_a_condition_that_goes_false_is_news() -> None:
    assert conditions.went_bad([ACTIVE], [CONFLICT]) == [CONFLICT]


def test_a_condition_false_from_the_start_is_news() -> None:
    assert conditions.went_bad([], [CONFLICT]) == [CONFLICT]


def test_a_condition_still_false_for_the_same_reason_is_not_news_again() -> None:
    again = {**CONFLICT, "message": "t1-a: Conflict (taken); t1-b: Conflict (taken)"}
    assert conditions.went_bad([CONFLICT], [again]) == []


def test_the_same_bad_condition_for_another_reason_is_news() -> None:
    pending = stored("NamespacesReady", "False", "NamespacesPending", "t1-a: Pending")
    assert conditions.went_bad([pending], [CONFLICT]) == [CONFLICT]


def test_good_news_is_no_warning() -> None:
    assert conditions.went_bad([CONFLICT], [ACTIVE]) == []
    assert conditions.went_bad([], [ACTIVE]) == []


def test_for_a_bad_news_type_true_is_the_bad_news() -> None:
    expiring = stored("CredentialExpiring", "True", "Expired", "the token expired")
    fine = stored("CredentialExpiring", "False", "Valid", "")
    assert conditions.went_bad([fine], [expiring]) == [expiring]
    assert conditions.went_bad([], [fine]) == []


def test_bad_news_becomes_a_warning_with_the_condition_reason_and_message() -> None:
    assert events.bad_news([ACTIVE], [CONFLICT]) == [
        events.Event("Warning", "NamespaceConflict", "t1-a: Conflict (taken)")
    ]
