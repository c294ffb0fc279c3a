"""Events of one reconcile pass: one per type and reason, messages joined, never too long."""

from __future__ import annotations

from govcloud.reconcile.events import Event, coalesce


def test_one_event_per_type_and_reason_in_first_seen_order() -> None:
    events = [
        Event("Normal", "NamespaceCreated", "created Namespace t-a"),
        Event("Normal", "Created", "created ResourceQuota t-a/govcloud-quota"),
        Event("Normal", "NamespaceCreated", "created Namespace t-b"),
        Event("Warning", "Created", "odd"),
        Event("Normal", "Created", "created LimitRange t-a/govcloud-defaults"),
    ]
    assert coalesce(events) == [
        Event("Normal", "NamespaceCreated", "created Namespace t-a; created Namespace t-b"),
        Event(
            "Normal",
            "Created",
            "created ResourceQuota t-a/govcloud-quota; created LimitRange t-a/govcloud-defaults",
        ),
        Event("Warning", "Created", "odd"),
    ]


def test_a_message_said_twice_in_a_pass_is_said_once() -> None:
    events = [Event("Warning", "ApplyFailed", "x"), Event("Warning", "ApplyFailed", "x")]
    assert coalesce(events) == [Event("Warning", "ApplyFailed", "x")]


def test_a_long_list_is_cut_between_messages_and_says_how_many_are_left_out() -> None:
    events = [
        Event("Normal", "Created", f"created RoleBinding ns-{i}/govcloud-view") for i in range(60)
    ]
    (event,) = coalesce(events, limit=200)
    assert len(event.message) <= 200
    kept = event.message.split("; and ")[0].split("; ")
    assert kept == [f"created RoleBinding ns-{i}/govcloud-view" for i in range(len(kept))]
    assert event.message.endswith(f"; and {60 - len(kept)} more")


def test_nothing_to_say_says_nothing() -> None:
    assert coalesce([]) == []
