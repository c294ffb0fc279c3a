"""`govcloud-operator report`: the finance bureau's statement of one month, from UsageReports."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from govcloud import constants, settings
from govcloud.billing import periods, statement
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
