"""Entry point of `kubectl govcloud` (the console script `kubectl-govcloud`): parse the command
line, connect as the user, run one subcommand, print its view or one line saying why not."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from govcloud import __version__
from govcloud.billing import assessment
from govcloud.cli import commands, grants, requests, restores, statements, views
from govcloud.k8s import user

Command = Callable[[commands.Context, argparse.Namespace], views.View]


def _connection_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """kubectl's own flags, accepted before or after the subcommand (a subcommand's copy
    leaves the value given before it alone)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("connection (as kubectl)")
    group.add_argument("--kubeconfig", default=default(None), help="kubeconfig file")
    group.add_argument("--context", default=default(None), help="kubeconfig context")
    group.add_argument(
        "--as", dest="as_user", default=default(None), help="user to impersonate", metavar="USER"
    )
    group.add_argument(
        "--as-group",
        dest="as_groups",
        action="append",
        default=default([]),
        metavar="GROUP",
        help="group to impersonate (repeatable; needs --as)",
    )
    group.add_argument("--as-uid", default=default(None), help="UID to impersonate")
    group.add_argument(
        "--request-timeout",
        type=float,
        default=default(30.0),
        metavar="SECONDS",
        help="give up on a request after this long",
    )
    group.add_argument(
        "-o", "--output", choices=views.FORMATS, default=default("table"), help="table, json, yaml"
    )


def _tenant_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="one tenant (default: every tenant you are a member of)")


def _subcommand(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Command,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    _connection_flags(parser, defaults=False)
    parser.set_defaults(run=run)
    return parser


def _plan_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = subparsers.add_parser("plan", help="file, approve, reject a ResourcePlan; its history")
    actions = plan.add_subparsers(dest="action", required=True, metavar="ACTION")

    filing = _subcommand(
        actions,
        "file",
        commands.plan_file,
        "file your tenant's ResourcePlan for a year (tenant admins)",
    )
    filing.add_argument("--tenant", help="default: the one tenant you are an admin of")
    filing.add_argument("--year", type=int, help="default: next year")
    filing.add_argument(
        "-f", "--filename", help="a ResourcePlan, or its spec (lines:, migrations:)"
    )
    filing.add_argument("--offering", help="one line: an offering of the rate card, e.g. ecs.4c8g")
    filing.add_argument(
        "--resources", help="one line of raw resources: requests.cpu=4,requests.memory=8Gi"
    )
    filing.add_argument("--count", type=int, default=1, help="how many of the line (default 1)")
    filing.add_argument("--reason", help="what the line is for")
    filing.add_argument(
        "--update", action="store_true", help="replace the lines of a plan filed already"
    )

    for action, run, help_text in (
        ("approve", commands.plan_approve, "approve a ResourcePlan (plan approvers)"),
        ("reject", commands.plan_reject, "reject a ResourcePlan (plan approvers)"),
    ):
        deciding = _subcommand(actions, action, run, help_text)
        deciding.add_argument("name", nargs="?", help="<tenant>-<year>")
        deciding.add_argument("--tenant", help="with --year, instead of the name")
        deciding.add_argument("--year", type=int, help="default: this year")
        deciding.add_argument("--reason", required=True, help="why (recorded with the decision)")
        deciding.add_argument(
            "--group",
            action="append",
            default=[],
            help="a group through which you approve (default: all of yours)",
        )
        if action == "reject":
            deciding.add_argument(
                "--changes-requested",
                action="store_true",
                help="ask for changes instead of rejecting",
            )

    history = _subcommand(
        actions, "history", commands.plan_history, "a plan's review and every decision on it"
    )
    history.add_argument("name", nargs="?", help="<tenant>-<year>")
    history.add_argument("--tenant", help="with --year, instead of the name")
    history.add_argument("--year", type=int, help="default: this year")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl govcloud",
        description=(
            "Your tenants on the government cloud, with your own rights: who you are, your"
            " namespaces, quota, bill, plans, migrations and assessment."
        ),
    )
    top.add_argument("--version", action="version", version=f"kubectl-govcloud {__version__}")
    _connection_flags(top, defaults=True)
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _subcommand(subparsers, "whoami", commands.whoami, "which tenants you belong to, in which role")
    _tenant_flag(_subcommand(subparsers, "ns", commands.ns, "your tenants' namespaces"))
    _tenant_flag(
        _subcommand(subparsers, "usage", commands.usage, "quota hard and used, per namespace")
    )
    bill = _subcommand(subparsers, "bill", commands.bill, "a month's charge and its lines")
    _tenant_flag(bill)
    bill.add_argument("--month", help="YYYY-MM (default: this month, to date)")
    statements.add_parser(subparsers, _subcommand)
    _plan_parsers(subparsers)
    migrations = _subcommand(
        subparsers, "migrations", commands.migrations, "your tenants' MigrationPlans"
    )
    _tenant_flag(migrations)
    migrations.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (platform team)"
    )
    assess = _subcommand(subparsers, "assess", commands.assess, "the annual assessment you may see")
    _tenant_flag(assess)
    assess.add_argument("--year", type=int, help="default: this year")
    rule = assessment.Rule()
    assess.add_argument("--min-utilisation", type=int, default=rule.min_utilisation)
    assess.add_argument("--max-overdue", type=int, default=rule.max_overdue)
    requests.add_parsers(subparsers, _subcommand)
    grants.add_parsers(subparsers, _subcommand)
    restores.add_parsers(subparsers, _subcommand)
    return top


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    args = parser().parse_args(list(argv))
    try:
        configuration = user.load_configuration(args.kubeconfig, args.context)
        client = user.UserClient(
            configuration,
            as_user=args.as_user,
            as_groups=args.as_groups,
            as_uid=args.as_uid,
            timeout=args.request_timeout,
        )
    except user.ConfigError as error:
        print(f"error: {error}", file=err)
        return 2
    try:
        view = args.run(commands.context(client), args)
    except commands.CommandError as error:
        print(f"error: {error}", file=err)
        return error.code
    except user.RefusedError as error:
        print(f"error: {commands.failure(error, f'run {args.command}')}", file=err)
        return 1
    out.write(views.render(view, args.output))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
