"""`kubectl govcloud statement`: a month's statement of the bills the user may read — a level's
finance staff see the units their level pays for (ClusterRole govcloud:finance:<payer>),
members their own tenants', the platform team every unit's — with subtotals per paying level."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from typing import Any

from govcloud import constants
from govcloud.billing import accrual, statement
from govcloud.cli import commands, views
from govcloud.k8s import user

Manifest = dict[str, Any]
PLURAL = "usagereports"
CommandError = commands.CommandError
UID_SUFFIX = "(-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?"


def of_period(names: Iterable[str], period: str) -> list[str]:
    """The report names of `period`: ``<tenant>-<period>``, or a re-created tenant's
    ``<tenant>-<period>-<uid>``."""
    pattern = re.compile(rf".+-{re.escape(period)}{UID_SUFFIX}")
    return sorted(name for name in names if pattern.fullmatch(name))


def _every_report(ctx: commands.Context, period: str) -> list[Manifest] | None:
    """Every UsageReport of the period, when the user may list them (the platform team,
    finance admins); else None."""
    try:
        if not ctx.client.may("list", constants.GROUP, PLURAL):
            return None
        return ctx.client.list(
            commands.govcloud_path(PLURAL),
            labelSelector=f"{commands.REPORT_PERIOD_LABEL}={period}",
        )
    except user.RefusedError as error:
        if error.forbidden:
            return None
        raise commands.failure(error, f"list the UsageReports of {period}") from error


def _named_reports(ctx: commands.Context, period: str) -> list[Manifest]:
    """The reports of the period the user's rules name (finance roles, self-view roles)."""
    grants, incomplete = commands.discover(ctx)
    found = []
    for name in of_period(grants.reports, period):
        try:
            report = ctx.client.get(commands.govcloud_path(PLURAL, name))
        except user.RefusedError as error:
            if error.forbidden:  # a grant withdrawn meanwhile
                continue
            raise commands.failure(error, f"read UsageReport {name}") from error
        if report is not None:
            found.append(report)
    if not found and incomplete:
        raise CommandError(
            f"no bill of {period} you may read that the API server could list: it said your"
            " rules are incomplete (another authorizer); ask the platform team"
        )
    return found


def statement_view(found: statement.Statement) -> views.View:
    rows = [
        (
            row.payer,
            row.tenant,
            row.unit,
            row.name,
            accrual.money(row.total),
            "yes" if row.closed else "no",
        )
        for row in found.rows
    ]
    footer = [
        f"SUBTOTAL {payer}: {accrual.money(value)} {found.currency}"
        for payer, value in found.payer_totals().items()
    ]
    footer.append(f"TOTAL: {accrual.money(found.total)} {found.currency}")
    return views.View(
        headers=("PAYER", "TENANT", "UNIT", "NAME", f"TOTAL ({found.currency})", "CLOSED"),
        rows=rows,
        data=json.loads(statement.to_json(found)),
        preamble=[f"PERIOD:   {found.period}"],
        empty="no bill of this month you may read",
        footer=footer if rows else [],
    )


def statement_command(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    period = commands.month_of(ctx, args.month)
    reports = _every_report(ctx, period)
    if reports is None:
        reports = _named_reports(ctx, period)
    found = statement.build(period, reports)
    if args.payer:
        found = found.for_payer(args.payer)
    return statement_view(found)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], subcommand: Any
) -> None:
    """`statement [--month] [--payer]`; `subcommand` adds one with the connection flags."""
    parser = subcommand(
        subparsers,
        "statement",
        statement_command,
        "a month's bills you may read, per paying level (finance staff: your level's units)",
    )
    parser.add_argument("--month", help="YYYY-MM (default: this month, to date)")
    parser.add_argument(
        "--payer", help="only the units one level pays for: city, county:<region>, devzone:<region>"
    )
