"""`kubectl govcloud backup`: the command line, and a restore request refused before it is
sent when the API server would refuse it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import pytest

from govcloud.cli import commands, main, restores


def test_backup_commands_take_the_backup_the_namespaces_and_the_policy() -> None:
    parsed = main.parser().parse_args(
        ["backup", "restore", "govcloud-fin-1", "--only", "fin-web", "--only", "fin-db",
         "--update", "-n", "fin-web", "--as", "alice"]
    )  # fmt: skip
    assert (parsed.backup, parsed.only, parsed.update, parsed.namespace, parsed.run) == (
        "govcloud-fin-1",
        ["fin-web", "fin-db"],
        True,
        "fin-web",
        restores.backup_restore,
    )
    assert main.parser().parse_args(["backup", "list"]).run is restores.backup_list
    assert main.parser().parse_args(["backup", "restores"]).run is restores.backup_restores


class Refusing:
    """A client that must not be called."""

    def create(self, *_: Any) -> Any:
        raise AssertionError("sent")


def test_a_restore_the_api_server_would_refuse_is_not_sent() -> None:
    ctx = commands.Context(Refusing(), UTC, datetime.now(UTC))  # type: ignore[arg-type]
    args = argparse.Namespace(
        backup="Not_A_Name", only=[], update=False, namespace="fin-web", name=None, tenant=None
    )
    with pytest.raises(commands.CommandError, match="the restore is not valid"):
        restores.backup_restore(ctx, args)
