"""What each `kubectl govcloud` command prints (pure): an aligned table by default, the same
facts as JSON or YAML with `-o json|yaml`.

Each ``*_view`` function turns objects read from the API server into a `View`; `render` prints
it. Tables align by display width, so Chinese unit names (two columns each) line up.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from govcloud.billing import accrual, assessment
from govcloud.desired import quantity

FORMATS = ("table", "json", "yaml")
GAP = "   "
NONE = "<none>"


@dataclass(frozen=True)
class View:
    """A table (headers, rows) with lines said before it, and the data -o json|yaml prints."""

    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    data: Any
    preamble: list[str] = field(default_factory=list)
    empty: str = "nothing to show"
    footer: list[str] = field(default_factory=list)


def width(text: str) -> int:
    """Columns `text` takes on a terminal: East Asian wide and full-width characters take two."""
    return sum(
        0
        if unicodedata.combining(char)
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """kubectl-style: upper-case headers, left-aligned columns three spaces apart."""
    lines = [tuple(headers), *(tuple(row) for row in rows)]
    widths = [max(width(line[column]) for line in lines) for column in range(len(headers))]
    out = []
    for line in lines:
        cells = [
            cell + " " * (widths[column] - width(cell)) if column < len(line) - 1 else cell
            for column, cell in enumerate(line)
        ]
        out.append(GAP.join(cells).rstrip())
    return "\n".join(out) + "\n"


def render(view: View, output: str = "table") -> str:
    if output == "json":
        return json.dumps(view.data, ensure_ascii=False, indent=2) + "\n"
    if output == "yaml":
        return str(yaml.safe_dump(view.data, allow_unicode=True, sort_keys=False))
    head = "".join(f"{line}\n" for line in view.preamble)
    if head and view.rows:
        head += "\n"
    foot = "".join(f"{line}\n" for line in view.footer)
    if not view.rows:
        return head + (f"{view.empty}\n" if view.empty else "") + foot
    return head + table(view.headers, view.rows) + (f"\n{foot}" if foot else "")


def _text(value: Any) -> str:
    return NONE if value is None or value == "" else str(value)


def percent(used: str | None, hard: str | None) -> str:
    """used / hard in whole percent, "" when either is missing or hard is zero."""
    if used is None or hard is None:
        return ""
    try:
        total = quantity.parse(hard)
        if total <= 0:
            return ""
        return f"{int(100 * quantity.parse(used) / total)}%"
    except (ValueError, InvalidOperation):
        return ""


# -- whoami ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    """The user's place in one tenant."""

    tenant: str
    display_name: str
    roles: list[str]
    namespaces: list[str]
    suspended: bool = False
    files_plans: bool = False


PLATFORM_ROLES = (
    ("platformAdmin", "platform admin", "create cloudtenants"),
    ("readsEveryTenant", "reads every tenant", "list cloudtenants"),
    ("planReviewer", "plan reviewer", "approve resourceplans"),
    ("financeAdmin", "finance admin", "amend usagereports"),
    ("migrationApprover", "migration approver", "approve migrationplans"),
)


def whoami_view(
    user: Mapping[str, Any],
    memberships: Sequence[Membership],
    platform: Mapping[str, bool],
    notes: Sequence[str] = (),
    approves_for: Sequence[str] = (),
) -> View:
    username = str(user.get("username") or "")
    groups = [str(group) for group in user.get("groups") or []]
    held = [f"{label} ({how})" for key, label, how in PLATFORM_ROLES if platform.get(key)]
    held += [f"plan reviewer of {payer} (approve payers {payer})" for payer in approves_for]
    preamble = [
        f"USER:     {username}",
        f"GROUPS:   {', '.join(groups) or NONE}",
        f"PLATFORM: {', '.join(held) or NONE}",
        *notes,
    ]
    rows = [
        (
            item.tenant,
            item.display_name,
            ",".join(item.roles) + (" (suspended: view only)" if item.suspended else ""),
            "yes" if item.files_plans else "no",
            ",".join(item.namespaces) or NONE,
        )
        for item in memberships
    ]
    return View(
        headers=("TENANT", "DISPLAY NAME", "ROLE", "FILES PLANS", "NAMESPACES"),
        rows=rows,
        data={
            "user": username,
            "groups": groups,
            "tenants": [
                {
                    "tenant": item.tenant,
                    "displayName": item.display_name,
                    "roles": item.roles,
                    "suspended": item.suspended,
                    "filesPlans": item.files_plans,
                    "namespaces": item.namespaces,
                }
                for item in memberships
            ],
            "platform": {key: bool(platform.get(key)) for key, _, _ in PLATFORM_ROLES},
            "plansOfPayers": list(approves_for),
            "notes": list(notes),
        },
        preamble=preamble,
        empty="TENANTS: none (no tenant names you as an admin, editor or viewer)",
    )


# -- ns, usage ---------------------------------------------------------------------------------


def _status(tenant: Mapping[str, Any]) -> dict[str, Any]:
    return dict(tenant.get("status") or {})


def _name(tenant: Mapping[str, Any]) -> str:
    return str((tenant.get("metadata") or {}).get("name") or "")


def site_of(tenant: Mapping[str, Any]) -> str:
    """Where the tenant's namespaces live: the hub, or the sub-center it is placed on."""
    placement = _status(tenant).get("placement") or {}
    return str(placement.get("cluster") or "hub")


def ns_view(tenants: Sequence[Mapping[str, Any]]) -> View:
    rows = []
    data = []
    for tenant in tenants:
        name, site = _name(tenant), site_of(tenant)
        for item in _status(tenant).get("namespaces") or []:
            rows.append(
                (
                    name,
                    str(item.get("name")),
                    _text(item.get("phase")),
                    site,
                    str(item.get("message") or ""),
                )
            )
            data.append(
                {
                    "tenant": name,
                    "namespace": item.get("name"),
                    "phase": item.get("phase"),
                    "site": site,
                    "message": item.get("message") or "",
                }
            )
    return View(
        headers=("TENANT", "NAMESPACE", "PHASE", "SITE", "MESSAGE"),
        rows=rows,
        data={"namespaces": data},
        empty="no namespaces",
    )


def _usage_rows(
    tenant: str, namespace: str, amounts: Mapping[str, Any]
) -> list[tuple[str, str, str, str, str, str]]:
    hard = dict(amounts.get("hard") or {})
    used = dict(amounts.get("used") or {})
    return [
        (
            tenant,
            namespace,
            resource,
            str(used.get(resource, "0")),
            str(hard.get(resource, "")),
            percent(str(used.get(resource, "0")), hard.get(resource)),
        )
        for resource in sorted(set(hard) | set(used))
    ]


TENANT_TOTAL = "(tenant)"


def usage_view(tenants: Sequence[Mapping[str, Any]]) -> View:
    """Quota hard and used per namespace (each namespace's share of the tenant quota), then the
    tenant's totals."""
    rows: list[tuple[str, ...]] = []
    data = []
    for tenant in tenants:
        name, status = _name(tenant), _status(tenant)
        namespaces = []
        for item in status.get("namespaces") or []:
            quota = dict(item.get("quota") or {})
            rows += _usage_rows(name, str(item.get("name")), quota)
            namespaces.append(
                {
                    "namespace": item.get("name"),
                    "hard": dict(quota.get("hard") or {}),
                    "used": dict(quota.get("used") or {}),
                }
            )
        totals = dict(status.get("quota") or {})
        rows += _usage_rows(name, TENANT_TOTAL, totals)
        data.append(
            {
                "tenant": name,
                "hard": dict(totals.get("hard") or {}),
                "used": dict(totals.get("used") or {}),
                "namespaces": namespaces,
            }
        )
    return View(
        headers=("TENANT", "NAMESPACE", "RESOURCE", "USED", "HARD", "USE"),
        rows=rows,
        data={"tenants": data},
        empty="no quota recorded yet",
    )


# -- bill --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bill:
    """One tenant's bill of one month: its status.billing and the UsageReport, if readable."""

    tenant: str
    period: str | None
    billing: Mapping[str, Any]
    report: Mapping[str, Any] | None
    note: str = ""


def _hours(value: Any, unit: str) -> str:
    if value in (None, ""):
        return ""
    try:
        return f"{Decimal(str(value)).quantize(Decimal('0.01'))} {unit}-h"
    except InvalidOperation:
        return str(value)


def bill_view(bills: Sequence[Bill]) -> View:
    rows: list[tuple[str, ...]] = []
    data = []
    footer: list[str] = []
    for bill in bills:
        status = dict((bill.report or {}).get("status") or {})
        currency = str(status.get("currency") or "CNY")
        this_month = bill.billing.get("period") == bill.period
        report_name = (
            str((bill.report.get("metadata") or {}).get("name"))
            if bill.report
            else bill.billing.get("report")
            if this_month
            else None
        )
        period = str(bill.period or "")
        for line in status.get("resources") or []:
            unit = str(line.get("unit") or "unit")
            rows.append(
                (
                    bill.tenant,
                    period,
                    str(line.get("resource")),
                    _hours(line.get("allocatedHours"), unit),
                    _hours(line.get("requestedHours"), unit),
                    str(line.get("charge") or "0.00"),
                )
            )
        if bill.report is not None:
            state = "closed" if status.get("closed") else "open, to date"
            total = f"{status.get('total') or '0.00'} {currency} ({state})"
        elif bill.billing.get("charge") and this_month:
            total = f"{bill.billing.get('charge')} (to date, whole units)"
        else:
            total = NONE
        rows.append((bill.tenant, period, "total", "", "", total))
        if bill.note:
            footer.append(f"{bill.tenant}: {bill.note}")
        data.append(
            {
                "tenant": bill.tenant,
                "period": bill.period,
                "report": report_name,
                "chargeToDate": bill.billing.get("charge") if this_month else None,
                "total": status.get("total"),
                "currency": currency if bill.report is not None else None,
                "closed": bool(status.get("closed")) if bill.report is not None else None,
                "resources": [
                    {
                        key: line.get(key)
                        for key in (
                            "resource",
                            "unit",
                            "allocatedHours",
                            "requestedHours",
                            "charge",
                        )
                    }
                    for line in status.get("resources") or []
                ],
                "note": bill.note,
            }
        )
    return View(
        headers=("TENANT", "PERIOD", "RESOURCE", "ALLOCATED", "REQUESTED", "CHARGE"),
        rows=rows,
        data={"bills": data},
        empty="no bill",
        footer=footer,
    )


# -- plans -------------------------------------------------------------------------------------


def history_rows(history: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """A plan's or a request's decisions, one row each: when, what, who, on which generation."""
    return [
        (
            _text(entry.get("at")),
            str(entry.get("state") or ""),
            _text(entry.get("by")),
            _text(entry.get("generation")),
            str(entry.get("reason") or ""),
        )
        for entry in history
    ]


def plan_history_view(plan: Mapping[str, Any]) -> View:
    status = dict(plan.get("status") or {})
    review = dict(status.get("review") or {})
    name = str((plan.get("metadata") or {}).get("name") or "")
    history = [dict(entry) for entry in status.get("history") or []]
    rows = history_rows(history)
    decided = f" by {review.get('decidedBy')}" if review.get("decidedBy") else ""
    preamble = [
        f"PLAN:   {name} (tenant {(plan.get('spec') or {}).get('tenant')},"
        f" year {(plan.get('spec') or {}).get('year')}, generation"
        f" {(plan.get('metadata') or {}).get('generation')})",
        f"REVIEW: {review.get('state') or 'Pending'}{decided}"
        + (f": {review.get('reason')}" if review.get("reason") else ""),
        f"COST:   {status.get('estimatedAnnualCost') or NONE}"
        f" {status.get('currency') or ''}".rstrip(),
    ]
    return View(
        headers=("AT", "STATE", "BY", "GENERATION", "REASON"),
        rows=rows,
        data={"plan": name, "review": review, "history": history},
        preamble=preamble,
        empty="HISTORY: no decision yet",
    )


def plan_written_view(plan: Mapping[str, Any], verb: str) -> View:
    spec = dict(plan.get("spec") or {})
    name = str((plan.get("metadata") or {}).get("name") or "")
    decision = dict(spec.get("decision") or {})
    line = f"resourceplan.govcloud.io/{name} {verb}"
    if decision and verb != "filed":
        line += (
            f": {decision.get('state')} by {decision.get('by')} on generation"
            f" {decision.get('approvedGeneration')} ({decision.get('reason')});"
            " the operator records it in status.review within seconds"
        )
    else:
        line += (
            f" for tenant {spec.get('tenant')}, year {spec.get('year')};"
            " it waits for a plan approver"
        )
    return View(headers=(), rows=[], data=plan, preamble=[line], empty="")


# -- in-year requests --------------------------------------------------------------------------


def _change(status: Mapping[str, Any]) -> str:
    change = dict(status.get("change") or {})
    return ", ".join(f"{key}={value}" for key, value in sorted(change.items())) or NONE


def requests_view(requests: Sequence[Mapping[str, Any]]) -> View:
    rows = []
    for item in sorted(
        requests, key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"])
    ):
        spec, status = dict(item.get("spec") or {}), dict(item.get("status") or {})
        review = dict(status.get("review") or {})
        rows.append(
            (
                str(item["metadata"].get("namespace") or ""),
                str(item["metadata"]["name"]),
                _text(spec.get("year")),
                str(spec.get("direction") or "Raise"),
                _change(status),
                str(review.get("state") or "Pending"),
                _text(review.get("decidedBy")),
            )
        )
    return View(
        headers=("NAMESPACE", "NAME", "YEAR", "DIRECTION", "CHANGE", "REVIEW", "DECIDED BY"),
        rows=rows,
        data={"requests": [dict(item) for item in requests]},
        empty="no ResourceRequests",
    )


def request_written_view(request: Mapping[str, Any], verb: str) -> View:
    metadata = dict(request.get("metadata") or {})
    decision = dict((request.get("spec") or {}).get("decision") or {})
    line = (
        f"resourcerequest.govcloud.io/{metadata.get('name')} in {metadata.get('namespace')} {verb}"
    )
    if decision and verb == "decided":
        line += (
            f": {decision.get('state')} by {decision.get('by')} on generation"
            f" {decision.get('approvedGeneration')} ({decision.get('reason')});"
            " the operator records it in status.review within seconds"
        )
    else:
        line += "; it waits for an approver of the tenant's paying level"
    return View(headers=(), rows=[], data=dict(request), preamble=[line], empty="")


def request_history_view(request: Mapping[str, Any]) -> View:
    metadata = dict(request.get("metadata") or {})
    spec, status = dict(request.get("spec") or {}), dict(request.get("status") or {})
    review = dict(status.get("review") or {})
    history = [dict(entry) for entry in status.get("history") or []]
    decided = f" by {review.get('decidedBy')}" if review.get("decidedBy") else ""
    preamble = [
        f"REQUEST: {metadata.get('namespace')}/{metadata.get('name')} (tenant"
        f" {status.get('tenant') or NONE}, year {spec.get('year')},"
        f" {spec.get('direction') or 'Raise'} {_change(status)})",
        f"REVIEW:  {review.get('state') or 'Pending'}{decided}"
        + (f": {review.get('reason')}" if review.get("reason") else ""),
    ]
    return View(
        headers=("AT", "STATE", "BY", "GENERATION", "REASON"),
        rows=history_rows(history),
        data={"request": metadata.get("name"), "review": review, "history": history},
        preamble=preamble,
        empty="HISTORY: no decision yet",
    )


# -- migrations --------------------------------------------------------------------------------


def _condition(status: Mapping[str, Any], type_: str) -> bool:
    return any(
        item.get("type") == type_ and item.get("status") == "True"
        for item in status.get("conditions") or []
    )


def stage_of(status: Mapping[str, Any]) -> str:
    """The stage running now, else the last one that finished, else none."""
    stages = [dict(item) for item in status.get("stages") or []]
    for item in stages:
        if item.get("state") == "Running":
            return f"{item.get('name')} (Running)"
    done = [item for item in stages if item.get("state")]
    if done:
        return f"{done[-1].get('name')} ({done[-1].get('state')})"
    return NONE


def timeliness(status: Mapping[str, Any]) -> str:
    if status.get("phase") == "Completed":
        return "done"
    if _condition(status, "Overdue"):
        return "Overdue"
    if _condition(status, "DeadlineAtRisk"):
        return "AtRisk"
    return "OnTime"


def migrations_view(plans: Sequence[Mapping[str, Any]]) -> View:
    rows = []
    data = []
    for plan in sorted(
        plans,
        key=lambda item: (
            str((item.get("metadata") or {}).get("namespace")),
            str((item.get("metadata") or {}).get("name")),
        ),
    ):
        meta, spec = dict(plan.get("metadata") or {}), dict(plan.get("spec") or {})
        status = dict(plan.get("status") or {})
        phase = str(status.get("phase") or "Pending")
        entry = {
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "tenant": status.get("tenant"),
            "app": (spec.get("app") or {}).get("name"),
            "phase": phase,
            "stage": stage_of(status),
            "progress": int(status.get("progress") or 0),
            "deadline": spec.get("deadline"),
            "timeliness": timeliness(status),
        }
        data.append(entry)
        rows.append(
            (
                str(entry["namespace"]),
                str(entry["name"]),
                _text(entry["app"]),
                phase,
                str(entry["stage"]),
                f"{entry['progress']}%",
                _text(entry["deadline"]),
                str(entry["timeliness"]),
            )
        )
    return View(
        headers=("NAMESPACE", "NAME", "APP", "PHASE", "STAGE", "PROGRESS", "DEADLINE", "DUE"),
        rows=rows,
        data={"migrations": data},
        empty="no MigrationPlans",
    )


# -- assess ------------------------------------------------------------------------------------


def _pct(value: int | None) -> str:
    return "" if value is None else f"{value}%"


def assess_view(year: int, rows: Sequence[assessment.Row]) -> View:
    table_rows = [
        (
            row.tenant,
            row.name,
            row.payer,
            _pct(row.utilisation("requests.cpu")),
            _pct(row.utilisation("requests.memory")),
            accrual.money(row.spend),
            accrual.money(row.budget) if row.budget is not None else "",
            f"{row.migrations_completed}/{row.migrations_planned}",
            str(row.migrations_overdue),
            row.verdict,
            "; ".join(row.reasons),
        )
        for row in rows
    ]
    return View(
        headers=(
            "TENANT",
            "NAME",
            "PAYER",
            "CPU USED",
            "MEM USED",
            "SPEND",
            "BUDGET",
            "MIGRATED",
            "OVERDUE",
            "VERDICT",
            "REASONS",
        ),
        rows=table_rows,
        data=json.loads(assessment.to_json(year, rows)),
        preamble=[f"YEAR: {year}"],
        empty="no unit you may see",
    )
