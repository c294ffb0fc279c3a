"""`govcloud-operator report`: the finance bureau's statement of one month, from UsageReports;
`report assessment --year`: each unit's annual assessment."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime

from govcloud import constants, settings
from govcloud.billing import assessment, periods, statement
from govcloud.k8s import client

LABEL_PERIOD = f"{constants.GROUP}/period"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govcloud-operator report",
        description=(
            "Print each tenant's charges of a billing month with sub-totals per paying level"
            " (the city, each county/district, each zone) and per tier, and the total; totals"
            " are the sums of the UsageReports."
        ),
    )
    parser.add_argument("--period", help="YYYY-MM (default: the current month)")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument(
        "--payer",
        help=(
            "only the units one level pays for: city, county:<region> or devzone:<region>"
            " (as in the payer column)"
        ),
    )
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["assessment"]:
        return assess(argv[1:])
    if argv[:1] == ["budget"]:
        return budget(argv[1:])
    args = _parser().parse_args(argv)
    tz = periods.zone(settings.load().billing_utc_offset_hours)
    try:
        period = (
            periods.parse(args.period) if args.period else periods.period_of(datetime.now(UTC), tz)
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    hub = client.Cluster(client.load_api_client(args.kubeconfig), "hub")
    try:
        reports = hub.list(
            constants.API_VERSION, "UsageReport", label_selector=f"{LABEL_PERIOD}={period.name}"
        )
    except client.ApiError as error:
        print(f"error: cannot read UsageReports: {error}", file=sys.stderr)
        return 1
    found = statement.build(period.name, reports)
    if args.payer:
        found = found.for_payer(args.payer)
    sys.stdout.write(
        statement.to_json(found) + "\n" if args.format == "json" else statement.to_csv(found)
    )
    return 0


def _yearly_parser(command: str, description: str) -> argparse.ArgumentParser:
    """The options every report of a year takes: --year, --format and --kubeconfig."""
    parser = argparse.ArgumentParser(
        prog=f"govcloud-operator report {command}", description=description
    )
    parser.add_argument("--year", type=int, help="default: the current year")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG, ~/.kube/config, in-cluster")
    return parser


def _today() -> date:
    """Today in the billing time zone."""
    tz = periods.zone(settings.load().billing_utc_offset_hours)
    return datetime.now(UTC).astimezone(tz).date()


def _assessment_parser() -> argparse.ArgumentParser:
    rule = assessment.Rule()
    parser = _yearly_parser(
        "assessment",
        "Print each unit's annual assessment: quota used vs granted, spend vs its approved"
        " plan, migrations completed, on time and overdue, planned apps past their target"
        " date with no MigrationPlan, and a verdict (OnTrack or Lagging, with reasons).",
    )
    parser.add_argument(
        "--min-utilisation",
        type=int,
        default=rule.min_utilisation,
        help=f"lagging below this percent of the cpu quota used (default {rule.min_utilisation})",
    )
    parser.add_argument(
        "--max-overdue",
        type=int,
        default=rule.max_overdue,
        help=f"lagging above this many overdue migrations (default {rule.max_overdue})",
    )
    parser.add_argument("--payer", help="only the units one level pays for")
    return parser


def assess(argv: list[str]) -> int:
    args = _assessment_parser().parse_args(argv)
    today = _today()
    year = args.year or today.year
    hub = client.Cluster(client.load_api_client(args.kubeconfig), "hub")
    try:
        tenants = hub.list(constants.API_VERSION, "CloudTenant")
        months = ",".join(f"{year}-{month:02d}" for month in range(1, 13))
        reports = hub.list(
            constants.API_VERSION, "UsageReport", label_selector=f"{LABEL_PERIOD} in ({months})"
        )
        plans = hub.list(constants.API_VERSION, "ResourcePlan")
    except client.ApiError as error:
        print(f"error: cannot read the year's objects: {error}", file=sys.stderr)
        return 1
    rule = assessment.Rule(min_utilisation=args.min_utilisation, max_overdue=args.max_overdue)
    rows = assessment.build(year, tenants, reports, plans, today, rule)
    if args.payer:
        rows = [row for row in rows if row.payer == args.payer]
    sys.stdout.write(
        assessment.to_json(year, rows) + "\n"
        if args.format == "json"
        else assessment.to_csv(year, rows)
    )
    return 0


def budget(argv: list[str]) -> int:
    """Per paying level, the approved plans of a year and their estimated annual cost."""
    parser = _yearly_parser(
        "budget",
        "Print, per paying level (the city, each county/district, each zone), how many units"
        " have an approved ResourcePlan for the year and the sum of their estimated annual"
        " costs: the level's budget basis.",
    )
    args = parser.parse_args(argv)
    year = args.year or _today().year
    hub = client.Cluster(client.load_api_client(args.kubeconfig), "hub")
    try:
        tenants = hub.list(constants.API_VERSION, "CloudTenant")
        plans = hub.list(constants.API_VERSION, "ResourcePlan")
    except client.ApiError as error:
        print(f"error: cannot read the plans: {error}", file=sys.stderr)
        return 1
    found = assessment.budgets(year, tenants, plans)
    sys.stdout.write(
        assessment.budgets_json(year, found) + "\n"
        if args.format == "json"
        else assessment.budgets_csv(year, found)
    )
    return 0
