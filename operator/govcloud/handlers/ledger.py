"""Ledger handlers: the ledger's Schedule and Backups changing, the replica starting to lead and
the scheduler each queue one look at the platform ledger's backups (reconcile.ledger)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from govcloud import settings
from govcloud.desired import ledger as desired_ledger
from govcloud.handlers import startup
from govcloud.reconcile import ledger

log = logging.getLogger(__name__)

KIND = "Ledger"  # the scheduler's entry for the looks
NAME = desired_ledger.SCHEDULE_NAME
SAID = "ledger_problems"


def _queue(memo: kopf.Memo) -> Any:
    async def work(_name: str) -> None:
        await look(memo)

    return startup.queue_for(memo, KIND, work)


def request(memo: kopf.Memo, name: str = NAME) -> None:
    _queue(memo).request(name)


async def look(memo: kopf.Memo) -> None:
    """One look, then the next at the RPO's deadline or the resync, whichever comes first."""
    try:
        outcome: ledger.Outcome = await startup.run_in_executor(
            memo, ledger.converge, memo.hub, memo.config, datetime.now(UTC)
        )
    except Exception:
        startup.next_look(memo, KIND, NAME)  # looked at again at the resync
        raise
    memo.recorder.ledger.record(outcome.snapshot)
    if outcome.wrote:
        log.info("ledger: Schedule %s written", NAME)
    problems = tuple(outcome.problems)
    if problems != memo.get(SAID, ()):  # said once per change, not once per look
        memo[SAID] = problems
        for problem in problems:
            log.warning("ledger: %s", problem)
    startup.next_look(memo, KIND, NAME, outcome.due_in)


def velero_changed(memo: kopf.Memo, _event_type: str, obj: dict[str, Any]) -> None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(desired_ledger.LABEL_LEDGER) == desired_ledger.LEDGER:
        request(memo)


def _register() -> None:
    config = settings.load()
    if not ledger.enabled(config):
        return
    startup.route("Schedule")(velero_changed)
    startup.route("Backup")(velero_changed)
    startup.requester(KIND)(request)
    startup.on_activate(request)


_register()
