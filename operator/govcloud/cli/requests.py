"""`kubectl govcloud request`: in-year ResourceRequests, filed in a tenant's namespace by its
admins and decided by its level's approvers, with the user's own rights."""

from __future__ import annotations

import argparse
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import resourceplan, resourcerequest
from govcloud.cli import commands, roles, views
from govcloud.k8s import user

Manifest = dict[str, Any]
PLURAL = "resourcerequests"
CommandError = commands.CommandError


def request_path(namespace: str, name: str | None = None) -> str:
    return commands.govcloud_path(PLURAL, name, namespace)


def _spec(ctx: commands.Context, args: argparse.Namespace) -> dict[str, Any]:
    if not (args.offering or args.resources) or not args.reason:
        raise CommandError(
            "a request needs one line: --offering ecs.4c8g (or --resources requests.cpu=4)"
            " --count 2 --reason ...",
            2,
        )
    line: dict[str, Any] = {"count": args.count, "reason": args.reason}
    if args.offering:
        line["offering"] = args.offering
    else:
        line["resources"] = dict(
            item.split("=", 1) for item in args.resources.split(",") if "=" in item
        )
    spec = {
        "year": int(args.year or ctx.today.year),
        "direction": "Lower" if args.lower else "Raise",
        "lines": [line],
    }
    try:
        resourcerequest.parse(spec)
    except (pydantic.ValidationError, ValueError) as error:
        raise CommandError(f"the request is not valid: {user.one_line(str(error))}", 2) from error
    return spec


def request_file(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    namespace = commands.namespace_of(ctx, args)
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": "ResourceRequest",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": _spec(ctx, args),
    }
    try:
        written = ctx.client.create(request_path(namespace), body)
    except user.RefusedError as error:
        raise commands.failure(
            error,
            f"file ResourceRequest {args.name} in namespace {namespace}",
            f"{commands.lacks('create', PLURAL, namespace=namespace)} (a tenant's admins file"
            " requests in its namespaces)",
        ) from error
    return views.request_written_view(written, "filed")


def request_list(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    found = commands.in_my_namespaces(ctx, args.tenant, PLURAL, "ResourceRequest")
    return views.requests_view(found)


def _read(ctx: commands.Context, namespace: str, name: str) -> Manifest:
    found = commands.get_or_fail(
        ctx,
        request_path(namespace, name),
        f"read ResourceRequest {namespace}/{name}",
        commands.lacks("get", PLURAL, name, namespace),
    )
    if found is None:
        raise CommandError(f"ResourceRequest {namespace}/{name} does not exist")
    return found


def _decide(ctx: commands.Context, args: argparse.Namespace, state: str) -> views.View:
    """spec.decision as the review policy wants it (by the acting user, bound to the
    generation read, with the groups through which the user approves)."""
    namespace = commands.namespace_of(ctx, args)
    body = _read(ctx, namespace, args.name)
    info = commands.user_info(ctx)
    groups = list(args.group) if args.group else roles.decision_groups(info.get("groups") or [])
    decision = {
        "state": state,
        "by": str(info.get("username") or ""),
        "reason": args.reason,
        "approvedGeneration": int((body.get("metadata") or {}).get("generation") or 0),
        "groups": groups[: roles.MAX_DECISION_GROUPS],
    }
    what = f"decide ResourceRequest {namespace}/{args.name}"
    try:
        written = ctx.client.patch_merge(
            request_path(namespace, args.name), {"spec": {"decision": decision}}
        )
    except user.RefusedError as error:
        payer = str((body.get("status") or {}).get("payer") or "")
        if error.forbidden and not commands.may_approve(ctx, payer):
            raise CommandError(
                f"you may not {what}: only approvers of every level (ClusterRole"
                " govcloud:plan-approver) or of the tenant's paying level"
                + (f" (govcloud:plan-approver:{payer})" if payer else "")
                + " decide requests"
            ) from error
        raise commands.failure(error, what, commands.lacks("patch", PLURAL, args.name)) from error
    return views.request_written_view(written, "decided")


def request_approve(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return _decide(ctx, args, resourceplan.ReviewState.APPROVED.value)


def request_reject(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return _decide(ctx, args, resourceplan.ReviewState.REJECTED.value)


def request_history(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return views.request_history_view(_read(ctx, commands.namespace_of(ctx, args), args.name))


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], subcommand: Any
) -> None:
    """`request file|list|approve|reject|history`; `subcommand` adds one with the connection
    flags (main._subcommand)."""
    top = subparsers.add_parser(
        "request", help="in-year ResourceRequests: file, list, approve, reject; their history"
    )
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    filing = subcommand(
        actions, "file", request_file, "ask for more (or, with --lower, less) this year"
    )
    filing.add_argument("name", help="the request's name, e.g. flood-season")
    filing.add_argument("--year", type=int, help="default: this year")
    filing.add_argument("--lower", action="store_true", help="give part of the plan back")
    filing.add_argument("--offering", help="an offering of the rate card, e.g. ecs.4c8g")
    filing.add_argument("--resources", help="raw resources: requests.cpu=4,requests.memory=8Gi")
    filing.add_argument("--count", type=int, default=1, help="how many (default 1)")
    filing.add_argument("--reason", help="what it is for")
    listing = subcommand(actions, "list", request_list, "your tenants' ResourceRequests")
    for parser in (filing, listing):
        parser.add_argument("--tenant", help="default: your one tenant")
    filing.add_argument("-n", "--namespace", help="default: your tenant's first namespace")
    for action, run in (("approve", request_approve), ("reject", request_reject)):
        deciding = subcommand(actions, action, run, f"{action} a ResourceRequest (approvers)")
        deciding.add_argument("name")
        deciding.add_argument("-n", "--namespace", required=True)
        deciding.add_argument("--reason", required=True, help="why (recorded with the decision)")
        deciding.add_argument("--group", action="append", default=[], help="a group you act in")
        deciding.set_defaults(tenant=None)
    history = subcommand(actions, "history", request_history, "a request's every decision")
    history.add_argument("name")
    history.add_argument("-n", "--namespace", required=True)
    history.set_defaults(tenant=None)
