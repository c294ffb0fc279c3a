"""The `kubectl govcloud` subcommands: read and write with the user's own rights
(govcloud.k8s.user), turn the objects into views (govcloud.cli.views).

Every refusal becomes a `CommandError` naming what the user lacks; nothing here asks for more than
the command needs, and nothing falls back to a wider read when a narrow one is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timezone
from pathlib import Path
from typing import Any

import pydantic
import yaml

from govcloud import constants
from govcloud.api.v1alpha1 import resourceplan
from govcloud.billing import assessment, periods
from govcloud.cli import roles, views
from govcloud.desired import meta, rbac
from govcloud.k8s import user

Manifest = dict[str, Any]
REPORT_PERIOD_LABEL = f"{constants.GROUP}/period"
# Cluster-wide rules apply in every namespace; any name serves for the SelfSubjectRulesReview.
RULES_NAMESPACE = "default"
MEMBERS_ONLY = "only the tenant's own admins, editors and viewers (and the platform team) may"


class CommandError(Exception):
    """The command cannot do what was asked; `code` is the exit status (1: refused or failed,
    2: the command line or an input file is wrong)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    client: user.UserClient
    tz: timezone
    now: datetime

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()


def billing_zone() -> timezone:
    """The billing time zone the operator uses (GOVCLOUD_BILLING_UTC_OFFSET_HOURS, else UTC+8)."""
    return periods.zone(float(os.environ.get("GOVCLOUD_BILLING_UTC_OFFSET_HOURS") or 8))


def context(client: user.UserClient) -> Context:
    return Context(client=client, tz=billing_zone(), now=datetime.now(UTC))


def govcloud_path(plural: str, name: str | None = None, namespace: str | None = None) -> str:
    return user.path(constants.GROUP, constants.VERSION, plural, name, namespace)


def failure(error: user.RefusedError, what: str, lacks: str = "") -> CommandError:
    """One line saying what the user could not do and why."""
    if error.status == 401:
        return CommandError(
            f"cannot {what}: the API server does not accept your credentials (401"
            " Unauthorized); log in again or check your kubeconfig's user"
        )
    if error.by_admission:
        reason = error.message.split("denied request: ", 1)[-1]
        return CommandError(f"cannot {what}: refused by the cluster's policy: {reason}")
    if error.forbidden:
        return CommandError(f"you may not {what}: {lacks or error.message}")
    if error.status == 0:
        return CommandError(f"cannot {what}: {error.message}")
    return CommandError(f"cannot {what}: {error.message} (HTTP {error.status})")


def lacks(verb: str, plural: str, name: str | None = None, namespace: str | None = None) -> str:
    target = f"{plural}.{constants.GROUP}" + (f' "{name}"' if name else "")
    where = f" in namespace {namespace}" if namespace else ""
    return f'you lack "{verb}" on {target}{where}'


def get_or_fail(ctx: Context, url: str, what: str, missing: str) -> Manifest | None:
    try:
        return ctx.client.get(url)
    except user.RefusedError as error:
        raise failure(error, what, missing) from error


# -- who am I, which tenants -------------------------------------------------------------------


def user_info(ctx: Context) -> dict[str, Any]:
    try:
        return ctx.client.user_info()
    except user.RefusedError as error:
        raise failure(error, "ask the API server who you are (SelfSubjectReview)") from error


def discover(ctx: Context) -> tuple[roles.Grants, bool]:
    """The tenants whose self-view (and plan-filer) roles the user holds, from one
    SelfSubjectRulesReview; and whether the server said the rules are incomplete."""
    try:
        rules, incomplete = ctx.client.rules(RULES_NAMESPACE)
    except user.RefusedError as error:
        raise failure(
            error,
            "list your own permissions (SelfSubjectRulesReview)",
            "every authenticated user normally may (ClusterRole system:basic-user)",
        ) from error
    return roles.grants(rules), incomplete


def tenant(ctx: Context, name: str) -> Manifest:
    found = get_or_fail(
        ctx,
        govcloud_path(meta.CLOUDTENANT_PLURAL, name),
        f"read CloudTenant {name}",
        f"{lacks('get', 'cloudtenants', name)}; {MEMBERS_ONLY}",
    )
    if found is None:
        raise CommandError(f"CloudTenant {name} does not exist")
    return found


def my_tenants(ctx: Context, only: str | None = None) -> list[Manifest]:
    """The tenant named with --tenant, else every tenant the user is a member of."""
    if only:
        return [tenant(ctx, only)]
    grants, incomplete = discover(ctx)
    found = []
    for name in grants.readable:
        try:
            body = ctx.client.get(govcloud_path(meta.CLOUDTENANT_PLURAL, name))
        except user.RefusedError as error:
            if error.forbidden:  # a grant just withdrawn: not the user's any more
                continue
            raise failure(error, f"read CloudTenant {name}") from error
        if body is not None:
            found.append(body)
    if not found:
        extra = (
            "; the API server could not list all of your rules (incomplete), so name it"
            " with --tenant"
            if incomplete
            else " (name one with --tenant if the platform team lets you read it)"
        )
        raise CommandError(
            "you are in no tenant: no CloudTenant names you (or a group of yours) as an"
            f" admin, editor or viewer{extra}"
        )
    return found


def namespace_of(ctx: Context, args: argparse.Namespace) -> str:
    """--namespace, else the first active namespace of the user's one tenant."""
    if args.namespace:
        return str(args.namespace)
    tenants = my_tenants(ctx, args.tenant)
    if len(tenants) != 1:
        raise CommandError("name the namespace with -n (or the tenant with --tenant)", 2)
    for item in (tenants[0].get("status") or {}).get("namespaces") or []:
        if item.get("phase") == "Active":
            return str(item["name"])
    raise CommandError(f"tenant {name_of(tenants[0])} has no active namespace yet")


def in_my_namespaces(ctx: Context, tenant: str | None, plural: str, kind: str) -> list[Manifest]:
    """Every `plural` (a govcloud.io kind) in the active hub namespaces of the user's tenants
    (or of `tenant`), listed namespace by namespace with the user's rights."""
    found: list[Manifest] = []
    for body in my_tenants(ctx, tenant):
        for item in (body.get("status") or {}).get("namespaces") or []:
            if item.get("phase") != "Active" or views.site_of(body) != "hub":
                continue
            namespace = str(item["name"])
            try:
                found += ctx.client.list(govcloud_path(plural, namespace=namespace))
            except user.RefusedError as error:
                if error.status == 404:
                    raise CommandError(f"this cluster serves no {kind}s") from error
                raise failure(
                    error,
                    f"list the {kind}s of namespace {namespace}",
                    lacks("list", plural, namespace=namespace),
                ) from error
    return found


def name_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name") or "")


PLATFORM_CHECKS = (
    ("platformAdmin", "create", "cloudtenants"),
    ("readsEveryTenant", "list", "cloudtenants"),
    ("planReviewer", "approve", "resourceplans"),
    ("financeAdmin", "amend", "usagereports"),
    ("migrationApprover", "approve", "migrationplans"),
)


def whoami(ctx: Context, args: argparse.Namespace) -> views.View:
    del args
    info = user_info(ctx)
    username = str(info.get("username") or "")
    groups = [str(group) for group in info.get("groups") or []]
    grants, incomplete = discover(ctx)
    memberships = []
    for name in grants.readable:
        try:
            body = ctx.client.get(govcloud_path(meta.CLOUDTENANT_PLURAL, name))
        except user.RefusedError as error:
            if error.forbidden:
                continue
            raise failure(error, f"read CloudTenant {name}") from error
        if body is None:
            continue
        spec = dict(body.get("spec") or {})
        memberships.append(
            views.Membership(
                tenant=name,
                display_name=str(spec.get("displayName") or ""),
                roles=roles.roles_in(spec, username, groups) or ["member"],
                namespaces=[
                    str(item.get("name"))
                    for item in (body.get("status") or {}).get("namespaces") or []
                ],
                suspended=bool(spec.get("suspended")),
                files_plans=name in grants.files_plans,
            )
        )
    platform = {}
    for key, verb, plural in PLATFORM_CHECKS:
        try:
            platform[key] = ctx.client.may(verb, constants.GROUP, plural)
        except user.RefusedError as error:
            raise failure(error, "check your rights (SelfSubjectAccessReview)") from error
    notes = (
        [
            "NOTE:     the API server could not list all of your rules; tenants granted by"
            " another authorizer may be missing"
        ]
        if incomplete
        else []
    )
    return views.whoami_view(info, memberships, platform, notes, grants.approves_for)


# -- ns, usage ---------------------------------------------------------------------------------


def ns(ctx: Context, args: argparse.Namespace) -> views.View:
    return views.ns_view(my_tenants(ctx, args.tenant))


def usage(ctx: Context, args: argparse.Namespace) -> views.View:
    return views.usage_view(my_tenants(ctx, args.tenant))


# -- bill --------------------------------------------------------------------------------------


def report_names(body: Mapping[str, Any], period: str) -> list[str]:
    """The tenant's UsageReports of `period` its status names (its own, by UID)."""
    billing = (body.get("status") or {}).get("billing") or {}
    name = name_of(body)
    uid = str((body.get("metadata") or {}).get("uid") or "")
    listed = [*(billing.get("reports") or []), billing.get("report")]
    own = rbac.own_reports(name, uid, [item for item in listed if item])
    return [item for item in own if item.startswith(f"{name}-{period}")]


def month_of(ctx: Context, month: str | None) -> str:
    """The period --month names (YYYY-MM), else this month in the billing time zone."""
    try:
        return periods.parse(month).name if month else periods.period_of(ctx.now, ctx.tz).name
    except ValueError as error:
        raise CommandError(str(error), 2) from error


def bill(ctx: Context, args: argparse.Namespace) -> views.View:
    period = month_of(ctx, args.month)
    bills = []
    for body in my_tenants(ctx, args.tenant):
        name = name_of(body)
        billing = dict((body.get("status") or {}).get("billing") or {})
        candidates = report_names(body, period) or [f"{name}-{period}"]
        report, note = None, ""
        for candidate in candidates:
            try:
                report = ctx.client.get(govcloud_path("usagereports", candidate))
            except user.RefusedError as error:
                if not error.forbidden:
                    raise failure(error, f"read UsageReport {candidate}") from error
                note = (
                    f"no report of {period} you may read"
                    f" ({lacks('get', 'usagereports', candidate)}; members read the reports"
                    " status.billing.reports names, the latest 24 months)"
                )
                continue
            if report is not None:
                note = ""
                break
            note = f"no UsageReport for {period} yet"
        bills.append(views.Bill(name, period, billing, report, note))
    return views.bill_view(bills)


# -- plans -------------------------------------------------------------------------------------


def plan_path(name: str | None = None) -> str:
    return govcloud_path("resourceplans", name)


def read_plan(ctx: Context, name: str) -> Manifest:
    found = get_or_fail(
        ctx,
        plan_path(name),
        f"read ResourcePlan {name}",
        f"{lacks('get', 'resourceplans', name)}; only its tenant's members and plan approvers"
        " may read a plan",
    )
    if found is None:
        raise CommandError(f"ResourcePlan {name} does not exist")
    return found


def the_tenant(named: str | None, candidates: Sequence[str], none: str) -> str:
    """The tenant named with --tenant, else the user's only candidate; `none` says what to do
    when there is no candidate."""
    if named:
        return named
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise CommandError(none, 2)
    raise CommandError(
        f"you are in several tenants ({', '.join(candidates)}); name one with --tenant", 2
    )


def plan_name_from(ctx: Context, args: argparse.Namespace) -> str:
    """The plan named on the command line, else <tenant>-<year> (default: your one tenant,
    this year)."""
    if args.name:
        return str(args.name)
    tenant_name = args.tenant
    if not tenant_name:
        grants, _ = discover(ctx)
        tenant_name = the_tenant(
            None, grants.readable, "name the plan (<tenant>-<year>), or its --tenant and --year"
        )
    return resourceplan.plan_name(tenant_name, args.year or ctx.today.year)


def load_plan_file(text: str) -> dict[str, Any]:
    """A ResourcePlan manifest, or just its spec (lines, migrations, maybe tenant and year)."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CommandError(f"the plan file is not YAML: {error}", 2) from error
    if not isinstance(loaded, dict):
        raise CommandError("the plan file must hold a ResourcePlan or its spec (lines: ...)", 2)
    if loaded.get("kind") == "ResourcePlan":
        loaded = dict(loaded.get("spec") or {})
    return {key: value for key, value in loaded.items() if key != "decision"}


def plan_spec(ctx: Context, args: argparse.Namespace, tenant_name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.filename:
        source = Path(args.filename)
        try:
            text = source.read_text() if args.filename != "-" else sys.stdin.read()
        except OSError as error:
            raise CommandError(f"cannot read {args.filename}: {error}", 2) from error
        spec = load_plan_file(text)
    if args.offering or args.resources:
        if not args.reason:
            raise CommandError("a plan line needs --reason (what it is for)", 2)
        line: dict[str, Any] = {"count": args.count, "reason": args.reason}
        if args.offering:
            line["offering"] = args.offering
        else:
            line["resources"] = dict(
                item.split("=", 1) for item in args.resources.split(",") if "=" in item
            )
        spec["lines"] = [*(spec.get("lines") or []), line]
    if not spec.get("lines"):
        raise CommandError(
            "a plan needs lines: -f plan.yaml, or --offering ecs.4c8g --count 2 --reason ...", 2
        )
    if spec.get("tenant") and spec["tenant"] != tenant_name:
        raise CommandError(f"the file is for tenant {spec['tenant']}, not {tenant_name}", 2)
    spec["tenant"] = tenant_name
    spec["year"] = int(args.year or spec.get("year") or ctx.today.year + 1)
    return spec


def plan_file(ctx: Context, args: argparse.Namespace) -> views.View:
    named = args.tenant
    if not named:
        grants, _ = discover(ctx)
        named = the_tenant(
            None,
            grants.files_plans,
            "you are an admin of no tenant (only a tenant's admins file its plans); if the"
            " platform lets you file for one, name it with --tenant",
        )
    spec = plan_spec(ctx, args, named)
    name = resourceplan.plan_name(named, spec["year"])
    try:
        resourceplan.parse(name, spec)
    except (pydantic.ValidationError, ValueError) as error:
        raise CommandError(f"the plan is not valid: {user.one_line(str(error))}", 2) from error
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": "ResourcePlan",
        "metadata": {"name": name},
        "spec": spec,
    }
    what = f"file ResourcePlan {name} for tenant {named}"
    try:
        return views.plan_written_view(ctx.client.create(plan_path(), body), "filed")
    except user.RefusedError as error:
        if error.status != 409 or error.reason != "AlreadyExists":
            raise failure(
                error,
                what,
                f"{lacks('create', 'resourceplans')} (ClusterRole govcloud:plan-filer)",
            ) from error
        if not args.update:
            raise CommandError(
                f"ResourcePlan {name} is filed already; run again with --update to replace its"
                " lines and migrations"
            ) from error
    patch = {"spec": {"lines": spec["lines"], "migrations": spec.get("migrations") or []}}
    try:
        return views.plan_written_view(ctx.client.patch_merge(plan_path(name), patch), "updated")
    except user.RefusedError as error:
        raise failure(
            error, f"update ResourcePlan {name}", lacks("patch", "resourceplans")
        ) from error


def decide(ctx: Context, args: argparse.Namespace, state: str) -> views.View:
    """Write spec.decision exactly as the review policy wants it: by the acting user, bound
    to the generation read, naming the groups through which the user may approve."""
    name = plan_name_from(ctx, args)
    body = read_plan(ctx, name)
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    info = user_info(ctx)
    groups = list(args.group) if args.group else roles.decision_groups(info.get("groups") or [])
    if len(groups) > roles.MAX_DECISION_GROUPS:
        raise CommandError(
            f"you are in {len(groups)} groups, more than a decision records"
            f" ({roles.MAX_DECISION_GROUPS}); name the ones that make you a plan approver with"
            " --group",
            2,
        )
    decision = {
        "state": state,
        "by": str(info.get("username") or ""),
        "reason": args.reason,
        "approvedGeneration": generation,
        "groups": groups,
    }
    verb = {"Approved": "approve", "Rejected": "reject"}.get(state, "decide")
    try:
        written = ctx.client.patch_merge(plan_path(name), {"spec": {"decision": decision}})
    except user.RefusedError as error:
        payer = str((body.get("status") or {}).get("payer") or "")
        if error.forbidden and not may_approve(ctx, payer):
            level = f' or on payers.{constants.GROUP} "{payer}"' if payer else ""
            raise CommandError(
                f'you may not {verb} ResourcePlan {name}: you lack "approve" on'
                f" resourceplans.{constants.GROUP}"
                f"{level} (plan approvers hold it: ClusterRole govcloud:plan-approver"
                + (f", or govcloud:plan-approver:{payer} for this level" if payer else "")
                + ")"
            ) from error
        raise failure(
            error, f"{verb} ResourcePlan {name}", lacks("patch", "resourceplans", name)
        ) from error
    return views.plan_written_view(written, "decided")


def may_approve(ctx: Context, payer: str) -> bool:
    """Whether the user may decide every plan, or those of the level `payer` (the plan's
    status.payer) pays for."""
    try:
        return ctx.client.may("approve", constants.GROUP, "resourceplans") or bool(
            payer and ctx.client.may("approve", constants.GROUP, "payers", name=payer)
        )
    except user.RefusedError:
        return False


def plan_approve(ctx: Context, args: argparse.Namespace) -> views.View:
    return decide(ctx, args, resourceplan.ReviewState.APPROVED.value)


def plan_reject(ctx: Context, args: argparse.Namespace) -> views.View:
    state = (
        resourceplan.ReviewState.CHANGES_REQUESTED
        if args.changes_requested
        else resourceplan.ReviewState.REJECTED
    )
    return decide(ctx, args, state.value)


def plan_history(ctx: Context, args: argparse.Namespace) -> views.View:
    return views.plan_history_view(read_plan(ctx, plan_name_from(ctx, args)))


# -- migrations --------------------------------------------------------------------------------


def migrations(ctx: Context, args: argparse.Namespace) -> views.View:
    if args.all_namespaces:
        try:
            return views.migrations_view(ctx.client.list(govcloud_path("migrationplans")))
        except user.RefusedError as error:
            raise failure(
                error, "list MigrationPlans in every namespace", lacks("list", "migrationplans")
            ) from error
    found: list[Manifest] = []
    for body in my_tenants(ctx, args.tenant):
        if views.site_of(body) != "hub":
            continue  # its namespaces are on a sub-center; MigrationPlans live on the hub
        for item in (body.get("status") or {}).get("namespaces") or []:
            namespace = str(item.get("name"))
            try:
                found += ctx.client.list(govcloud_path("migrationplans", namespace=namespace))
            except user.RefusedError as error:
                if error.status == 404:
                    raise CommandError("this cluster serves no MigrationPlans") from error
                if error.forbidden and item.get("phase") != "Active":
                    continue  # not (yet) the tenant's: a conflict, or still being set up
                raise failure(
                    error,
                    f"list the MigrationPlans of namespace {namespace}",
                    f"{lacks('list', 'migrationplans', namespace=namespace)} (the chart adds it"
                    " to the admin, edit and view roles of tenant namespaces)",
                ) from error
    return views.migrations_view(found)


# -- assess ------------------------------------------------------------------------------------


def _everything(ctx: Context, year: int) -> tuple[list[Manifest], ...] | None:
    """Every tenant, report of the year and plan, when the user may list them; else None."""
    months = ",".join(f"{year}-{month:02d}" for month in range(1, 13))
    try:
        return (
            ctx.client.list(govcloud_path("cloudtenants")),
            ctx.client.list(
                govcloud_path("usagereports"), labelSelector=f"{REPORT_PERIOD_LABEL} in ({months})"
            ),
            ctx.client.list(govcloud_path("resourceplans")),
        )
    except user.RefusedError as error:
        if error.forbidden:
            return None
        raise failure(error, "read the year's tenants, reports and plans") from error


def _own_year(ctx: Context, bodies: Sequence[Manifest], year: int) -> tuple[list[Manifest], ...]:
    reports: list[Manifest] = []
    plans: list[Manifest] = []
    for body in bodies:
        name = name_of(body)
        for month in range(1, 13):
            for report in report_names(body, f"{year}-{month:02d}"):
                try:
                    found = ctx.client.get(govcloud_path("usagereports", report))
                except user.RefusedError as error:
                    if error.forbidden:
                        continue
                    raise failure(error, f"read UsageReport {report}") from error
                if found is not None:
                    reports.append(found)
        try:
            plan = ctx.client.get(plan_path(resourceplan.plan_name(name, year)))
        except user.RefusedError as error:
            if not error.forbidden:
                raise failure(error, f"read the plan of {name}") from error
            plan = None
        if plan is not None:
            plans.append(plan)
    return list(bodies), reports, plans


def assess(ctx: Context, args: argparse.Namespace) -> views.View:
    year = args.year or ctx.today.year
    everything = None if args.tenant else _everything(ctx, year)
    tenants, reports, plans = everything or _own_year(ctx, my_tenants(ctx, args.tenant), year)
    rule = assessment.Rule(min_utilisation=args.min_utilisation, max_overdue=args.max_overdue)
    rows = assessment.build(year, tenants, reports, plans, ctx.today, rule)
    return views.assess_view(year, rows)
