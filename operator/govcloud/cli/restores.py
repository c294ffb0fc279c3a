"""`kubectl govcloud backup`: a department's backups (from its CloudTenant's status, as it
cannot read Velero's namespace) and restores of them into its own namespaces (BackupRestore),
with the user's own rights."""

from __future__ import annotations

import argparse
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import backuprestore
from govcloud.cli import commands, views
from govcloud.k8s import user

Manifest = dict[str, Any]
PLURAL = "backuprestores"
KIND = "BackupRestore"
CommandError = commands.CommandError
NONE = "-"


def backup_list(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    """The newest backups of each of the user's tenants (status.backup.recent)."""
    rows, data = [], []
    for body in commands.my_tenants(ctx, args.tenant):
        tenant = commands.name_of(body)
        for entry in ((body.get("status") or {}).get("backup") or {}).get("recent") or []:
            rows.append(
                (
                    tenant,
                    str(entry.get("name") or NONE),
                    str(entry.get("phase") or NONE),
                    str(entry.get("completedAt") or NONE),
                    str(entry.get("expiresAt") or NONE),
                )
            )
            data.append({"tenant": tenant, **dict(entry)})
    return views.View(
        headers=("TENANT", "BACKUP", "PHASE", "COMPLETED", "EXPIRES"),
        rows=rows,
        data={"backups": data},
        empty="no backups yet (the platform's backups may be off: docs/backup.md)",
    )


def backup_restore(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    """Ask for a restore of one of the tenant's backups into its own namespaces."""
    namespace = commands.namespace_of(ctx, args)
    spec: Manifest = {"backup": args.backup}
    if args.only:
        spec["namespaces"] = list(args.only)
    if args.update:
        spec["existingResources"] = backuprestore.ExistingResources.UPDATE.value
    try:
        backuprestore.parse(spec)
    except (pydantic.ValidationError, ValueError) as error:
        raise CommandError(f"the restore is not valid: {user.one_line(str(error))}", 2) from error
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": args.name or f"restore-{args.backup}"[:63].rstrip("-."),
            "namespace": namespace,
        },
        "spec": spec,
    }
    try:
        written = ctx.client.create(commands.govcloud_path(PLURAL, namespace=namespace), body)
    except user.RefusedError as error:
        raise commands.failure(
            error,
            f"request a restore in namespace {namespace}",
            f"{commands.lacks('create', PLURAL, namespace=namespace)} (a tenant's admins"
            " restore into its own namespaces)",
        ) from error
    metadata = dict(written.get("metadata") or {})
    line = (
        f"backuprestore.govcloud.io/{metadata.get('name')} in {metadata.get('namespace')}"
        " requested; follow it with `kubectl govcloud backup restores`"
    )
    return views.View(headers=(), rows=[], data=dict(written), preamble=[line], empty="")


def backup_restores(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    """The BackupRestores in the user's tenants' namespaces, and how each went."""
    found = commands.in_my_namespaces(ctx, args.tenant, PLURAL, KIND)
    rows = []
    for item in sorted(found, key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"])):
        status = dict(item.get("status") or {})
        reason = next(
            (
                str(c.get("reason"))
                for c in status.get("conditions") or []
                if c.get("type") == "Accepted" and c.get("status") == "False"
            ),
            NONE,
        )
        rows.append(
            (
                str(item["metadata"]["namespace"]),
                str(item["metadata"]["name"]),
                str((item.get("spec") or {}).get("backup") or NONE),
                str(status.get("phase") or "Pending"),
                str(status.get("itemsRestored", NONE)),
                reason,
            )
        )
    return views.View(
        headers=("NAMESPACE", "NAME", "BACKUP", "PHASE", "ITEMS", "REFUSED"),
        rows=rows,
        data={"restores": [dict(item) for item in found]},
        empty="no BackupRestores",
    )


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], subcommand: Any
) -> None:
    """`backup list|restore|restores`; `subcommand` adds one with the connection flags."""
    top = subparsers.add_parser(
        "backup", help="your tenants' backups; restore one into your own namespaces"
    )
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = subcommand(actions, "list", backup_list, "your tenants' newest backups")
    asking = subcommand(
        actions, "restore", backup_restore, "restore a backup of yours into your namespaces"
    )
    asking.add_argument("backup", help="the backup's name (from `kubectl govcloud backup list`)")
    asking.add_argument("--name", help="the BackupRestore's name (default: restore-<backup>)")
    asking.add_argument(
        "--only", action="append", default=[], help="one namespace of yours to restore (repeat)"
    )
    asking.add_argument(
        "--update", action="store_true", help="patch existing objects back (default: keep them)"
    )
    asking.add_argument("-n", "--namespace", help="where to file it (default: your first one)")
    following = subcommand(actions, "restores", backup_restores, "your restores and how they went")
    for parser in (listing, asking, following):
        parser.add_argument("--tenant", help="default: your one tenant")
