"""`kubectl govcloud grant`: NetworkGrants, requested by the consumer's admins, consented to by
the provider's admins (or the platform), revoked by either, with the user's own rights; the
review policy records each act as the user who did it."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

import pydantic

from govcloud import constants
from govcloud.api.v1alpha1 import networkgrant
from govcloud.cli import commands, roles, views
from govcloud.k8s import user

Manifest = dict[str, Any]
PLURAL = "networkgrants"
CommandError = commands.CommandError
NONE = "-"


def grant_path(namespace: str, name: str | None = None) -> str:
    return commands.govcloud_path(PLURAL, name, namespace)


def _me(ctx: commands.Context) -> tuple[str, list[str]]:
    info = commands.user_info(ctx)
    groups = roles.decision_groups(info.get("groups") or [])
    return str(info.get("username") or ""), groups[: networkgrant.MAX_GROUPS]


def grant_request(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    namespace = commands.namespace_of(ctx, args)
    provider_namespace, _, service = str(args.provider).partition("/")
    if not service:
        raise CommandError("--provider is <namespace>/<service>, e.g. rsj-data/eligibility", 2)
    username, _ = _me(ctx)
    spec: Manifest = {
        "provider": {
            "namespace": provider_namespace,
            "service": service,
            "ports": [str(port) for port in args.port],
        },
        "purpose": args.purpose,
        "requestedBy": username,
    }
    if args.consumer:
        spec["consumers"] = list(args.consumer)
    if args.expires:
        spec["expires"] = args.expires
    try:
        networkgrant.parse(spec)
    except (pydantic.ValidationError, ValueError) as error:
        raise CommandError(f"the grant is not valid: {user.one_line(str(error))}", 2) from error
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": "NetworkGrant",
        "metadata": {"name": args.name, "namespace": namespace},
        "spec": spec,
    }
    try:
        written = ctx.client.create(grant_path(namespace), body)
    except user.RefusedError as error:
        raise commands.failure(
            error,
            f"request NetworkGrant {args.name} in namespace {namespace}",
            f"{commands.lacks('create', PLURAL, namespace=namespace)} (a tenant's admins"
            " request grants in its namespaces)",
        ) from error
    return written_view(
        written, "requested; it waits for the consent of the provider namespace's admins"
    )


def grant_list(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    found = commands.in_my_namespaces(ctx, args.tenant, PLURAL, "NetworkGrant")
    return grants_view(found)


def _read(ctx: commands.Context, namespace: str, name: str) -> Manifest:
    found = commands.get_or_fail(
        ctx,
        grant_path(namespace, name),
        f"read NetworkGrant {namespace}/{name}",
        commands.lacks("get", PLURAL, name, namespace),
    )
    if found is None:
        raise CommandError(f"NetworkGrant {namespace}/{name} does not exist")
    return found


def _act(ctx: commands.Context, args: argparse.Namespace, field: str, verb: str) -> views.View:
    """spec.consent or spec.revocation as the review policy wants it: by the acting user, with
    the groups through which they act, a consent bound to the generation read."""
    namespace = str(args.namespace)
    body = _read(ctx, namespace, args.name)
    username, groups = _me(ctx)
    act: Manifest = {
        "by": username,
        "groups": list(args.group) if args.group else groups,
        "reason": args.reason,
    }
    if field == "consent":
        act["generation"] = int((body.get("metadata") or {}).get("generation") or 0)
    what = f"{verb} NetworkGrant {namespace}/{args.name}"
    try:
        written = ctx.client.patch_merge(grant_path(namespace, args.name), {"spec": {field: act}})
    except user.RefusedError as error:
        provider = str(((body.get("spec") or {}).get("provider") or {}).get("namespace") or "")
        raise commands.failure(
            error,
            what,
            f"only the admins of the provider namespace {provider} (verb consent there) or the"
            " platform (verb approve) consent; either side's admins or the platform revoke",
        ) from error
    return written_view(written, f"{verb}; the operator acts on it within seconds")


def grant_consent(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return _act(ctx, args, "consent", "consented")


def grant_revoke(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return _act(ctx, args, "revocation", "revoked")


def grant_history(ctx: commands.Context, args: argparse.Namespace) -> views.View:
    return history_view(_read(ctx, str(args.namespace), args.name))


# -- views ------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return NONE if value in (None, "") else str(value)


def grants_view(grants: list[Manifest]) -> views.View:
    rows = []
    for item in sorted(
        grants, key=lambda g: (g["metadata"].get("namespace", ""), g["metadata"]["name"])
    ):
        spec, status = dict(item.get("spec") or {}), dict(item.get("status") or {})
        provider = dict(spec.get("provider") or {})
        rows.append(
            (
                str(item["metadata"].get("namespace") or ""),
                str(item["metadata"]["name"]),
                f"{provider.get('namespace')}/{provider.get('service')}",
                _text(status.get("ports") or ",".join(provider.get("ports") or [])),
                _text(spec.get("purpose")),
                _text(status.get("expiresAt")),
                _text(status.get("state") or "Pending"),
                _text(status.get("consentedBy")),
            )
        )
    return views.View(
        headers=(
            "NAMESPACE",
            "NAME",
            "PROVIDER",
            "PORTS",
            "PURPOSE",
            "EXPIRES",
            "STATE",
            "CONSENTED BY",
        ),
        rows=rows,
        data={"grants": [dict(item) for item in grants]},
        empty="no NetworkGrants",
    )


def written_view(grant: Manifest, said: str) -> views.View:
    metadata = dict(grant.get("metadata") or {})
    line = f"networkgrant.govcloud.io/{metadata.get('name')} in {metadata.get('namespace')} {said}"
    return views.View(headers=(), rows=[], data=dict(grant), preamble=[line], empty="")


def history_view(grant: Manifest) -> views.View:
    metadata = dict(grant.get("metadata") or {})
    spec, status = dict(grant.get("spec") or {}), dict(grant.get("status") or {})
    provider = dict(spec.get("provider") or {})
    history = [dict(entry) for entry in status.get("history") or []]
    consumer, provider_tenant = (
        _text(status.get("consumerTenant")),
        _text(status.get("providerTenant")),
    )
    preamble = [
        f"GRANT:   {metadata.get('namespace')}/{metadata.get('name')} ({consumer}"
        f" -> {provider_tenant}: {provider.get('namespace')}/"
        f"{provider.get('service')} on {_text(status.get('ports'))})",
        f"PURPOSE: {_text(spec.get('purpose'))}",
        f"STATE:   {_text(status.get('state'))} until {_text(status.get('expiresAt'))}",
    ]
    rows = [
        (
            _stamp(entry.get("at")),
            _text(entry.get("event")),
            _text(entry.get("by")),
            _text(entry.get("generation")),
            _text(entry.get("reason")),
        )
        for entry in history
    ]
    return views.View(
        headers=("AT", "EVENT", "BY", "GENERATION", "REASON"),
        rows=rows,
        data={"grant": metadata.get("name"), "state": status.get("state"), "history": history},
        preamble=preamble,
        empty="HISTORY: nothing recorded yet",
    )


def _stamp(value: Any) -> str:
    if not value:
        return NONE
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value)


def add_parsers(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], subcommand: Any
) -> None:
    """`grant request|list|consent|revoke|history`; `subcommand` adds one with the connection
    flags (main._subcommand)."""
    top = subparsers.add_parser(
        "grant", help="NetworkGrants: request, list, consent, revoke; their history"
    )
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    asking = subcommand(
        actions, "request", grant_request, "ask to reach another tenant's Service ports"
    )
    asking.add_argument("name", help="the grant's name, e.g. eligibility-check")
    asking.add_argument("--provider", required=True, help="<namespace>/<service> to reach")
    asking.add_argument(
        "--port", action="append", required=True, help="a Service port name or number (repeat)"
    )
    asking.add_argument("--purpose", required=True, help="what the data is used for")
    asking.add_argument("--expires", help="RFC 3339 (default: the platform's default duration)")
    asking.add_argument(
        "--consumer", action="append", default=[], help="another namespace of yours (repeat)"
    )
    asking.add_argument("-n", "--namespace", help="default: your tenant's first namespace")
    listing = subcommand(actions, "list", grant_list, "the NetworkGrants your tenants requested")
    for parser in (asking, listing):
        parser.add_argument("--tenant", help="default: your one tenant")
    for action, run, help_text in (
        ("consent", grant_consent, "consent to a grant (the provider's admins, the platform)"),
        ("revoke", grant_revoke, "withdraw a grant for good (either side, the platform)"),
    ):
        acting = subcommand(actions, action, run, help_text)
        acting.add_argument("name")
        acting.add_argument("-n", "--namespace", required=True, help="the grant's namespace")
        acting.add_argument("--reason", required=True, help="why (recorded with the act)")
        acting.add_argument("--group", action="append", default=[], help="a group you act in")
        acting.set_defaults(tenant=None)
    history = subcommand(actions, "history", grant_history, "a grant's every act")
    history.add_argument("name")
    history.add_argument("-n", "--namespace", required=True)
    history.set_defaults(tenant=None)
