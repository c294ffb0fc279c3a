"""Handlers: kopf decorators only; the body becomes a model and a reconciler does the work."""

from __future__ import annotations

import importlib

MODULES = (
    "govcloud.handlers.startup",
    "govcloud.handlers.cloudtenant",
    "govcloud.handlers.subcenter",
    "govcloud.handlers.migrationplan",
    "govcloud.handlers.resourceplan",
    "govcloud.handlers.resourcerequest",
    "govcloud.handlers.networkgrant",
    "govcloud.handlers.recoverydrill",
    "govcloud.handlers.backuprestore",
    "govcloud.handlers.metering",
    "govcloud.handlers.ledger",
    "govcloud.handlers.legacy",
)


def register() -> None:
    """Import every handler module so that its kopf decorators register."""
    for module in MODULES:
        importlib.import_module(module)
