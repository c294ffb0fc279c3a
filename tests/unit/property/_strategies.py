"""Hypothesis strategies of the four user-written specs, near the edges of what the CRDs take.

About half the specs drawn are valid; each of the others is wrong in exactly one way (a
quota key, a negative or huge quantity, a system: subject, a duplicate namespace...), so
the same strategies feed the property tests of the pure layers and the generated-spec tests
against the real API server (which must refuse each wrong one with a message).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from govcloud.api import quantity
from govcloud.api.v1alpha1 import cloudtenant, migrationplan

Spec = dict[str, Any]

# Quota keys the API server takes, with integer ones (pods, count/...) among them, and a few
# it does not (each must be refused by the CRD, never reach a ResourceQuota).
QUOTA_KEYS = (
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "pods",
    "services",
    "configmaps",
    "count/deployments.apps",
    "requests.nvidia.com/gpu",
    "hugepages-2Mi",
    "gold.storageclass.storage.k8s.io/requests.storage",
)
BAD_QUOTA_KEYS = ("requests.memroy", "limits.storage", "requests.pods", "cpus")
LIMIT_KEYS = cloudtenant.LIMIT_NAMES

# The CRD's own grammar (digits, fraction, suffix or an exponent of at most three digits).
grammar_quantities = st.from_regex(quantity.PATTERN, fullmatch=True).filter(
    lambda text: len(text) <= quantity.MAX_LENGTH
)
# Everyday amounts, so that most tenants are usable and reach Ready.
plain_quantities = st.one_of(
    st.integers(min_value=0, max_value=4096).map(str),
    st.builds(
        "{}{}".format,
        st.integers(min_value=1, max_value=9999),
        st.sampled_from(["m", "Mi", "Gi", "k", "M", "G", ""]),
    ),
    st.integers(min_value=0, max_value=100_000),
)
EDGE_QUANTITIES = ("0", "1n", ".5", "1.", "+3", "1e-9", "0.1n", "1e15", "8Pi", "9e-999")
# Each is refused by the CRD: negative, too large, not a quantity, an exponent too long.
BAD_QUANTITIES = ("-1", "1e999", "7Ei", "9223372036854776", "1e1000", "abc", "1.5.2", "4 cpu")
quantities = st.one_of(
    plain_quantities,
    plain_quantities,
    grammar_quantities.filter(lambda text: quantity.within_bounds(quantity.parse(text))),
    st.sampled_from(EDGE_QUANTITIES),
)
# A draw of these chooses which one thing (if any) is wrong with a spec: about half are valid.
NO_FLAW = None

dns_labels = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
label_keys = st.from_regex(r"[a-z]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True).filter(
    lambda key: ".." not in key and ".-" not in key and "-." not in key
)
BAD_LABEL_KEYS = ("govcloud.io/tenant", "bad key", "a/b/c", "-x")
label_values = st.from_regex(r"([a-z0-9]([a-z0-9_.-]{0,8}[a-z0-9])?)?", fullmatch=True)
labels = st.dictionaries(label_keys, label_values, max_size=3)
# Within the Basic Multilingual Plane for now: a character beyond it (𠮷, CJK Extension B,
# found in people's names) makes every server-side apply of a string that holds it fail with
# 400 "invalid Unicode character escape code" (see the #13 report, k8s/client.py).
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), max_codepoint=0xFFFF),
    min_size=1,
    max_size=40,
)


def flaws(*names: str) -> st.SearchStrategy[str | None]:
    """None (a valid spec) half the time, else the name of the one thing to get wrong."""
    return st.sampled_from([NO_FLAW] * len(names) + list(names))


@st.composite
def members(draw: st.DrawFn, own_namespaces: list[str]) -> Spec:
    """Users, groups and service accounts of one role, all allowed."""
    users = draw(st.lists(st.sampled_from(["alice", "bob", "张三"]), max_size=2))
    groups = draw(st.lists(st.sampled_from(["ops", "auditors"]), max_size=2))
    accounts = draw(
        st.lists(st.sampled_from([f"{own}/deployer" for own in own_namespaces]), max_size=2)
        if own_namespaces
        else st.just([])
    )
    found: Spec = {}
    for key, value in (("users", users), ("groups", groups), ("serviceAccounts", accounts)):
        if value:
            found[key] = sorted(set(value))
    return found


@st.composite
def limit_ranges(draw: st.DrawFn) -> Spec:
    """A LimitRange spec whose defaultRequest <= default <= max hold where they meet."""
    found: Spec = {}
    for key in draw(st.sets(st.sampled_from(cloudtenant.LIMIT_NAMES), max_size=2)):
        amounts = sorted(
            draw(st.lists(quantities, min_size=3, max_size=3)),
            key=lambda amount: quantity.parse(str(amount)),
        )
        for part, amount in zip(("defaultRequest", "default", "max"), amounts, strict=True):
            if draw(st.booleans()):
                found.setdefault(part, {})[key] = amount
    return found


@st.composite
def network(draw: st.DrawFn) -> Spec:
    peers = draw(
        st.lists(
            st.one_of(
                dns_labels.map(lambda name: {"tenant": name}),
                labels.filter(bool).map(lambda found: {"namespaceSelector": found}),
            ),
            max_size=2,
        )
    )
    return {"isolated": draw(st.booleans()), "allowFrom": peers}


TENANT_FLAWS = (
    "quota-key",
    "quantity",
    "limit-order",
    "limit-key",
    "system-user",
    "foreign-account",
    "no-contact",
    "level",
    "classified",
    "duplicate-namespace",
    "no-namespace",
    "reserved-label",
    "placement-hub",
    "long-namespace",
    "peer-both",
    "tier",
)


@st.composite
def tenant_specs(draw: st.DrawFn, name: str, flaw: str | None = "draw") -> Spec:
    """A CloudTenant spec for tenant `name`: valid, or wrong in exactly one way."""
    if flaw == "draw":
        flaw = draw(flaws(*TENANT_FLAWS))
    short_names = draw(st.lists(dns_labels, min_size=1, max_size=3, unique=True))
    namespaces = [
        {"name": short, **({"labels": draw(labels)} if draw(st.booleans()) else {})}
        for short in short_names
    ]
    own = [f"{name}-{short}" for short in short_names]
    spec: Spec = {
        "displayName": draw(texts),
        "unit": {"code": draw(dns_labels), "tier": draw(st.sampled_from(list(cloudtenant.Tier)))},
        "contacts": [
            draw(
                st.sampled_from(
                    [
                        {"name": "测试员", "email": "gen@example.gov.cn"},
                        {"name": "值班", "phone": "+86 551 1234"},
                    ]
                )
            )
        ],
        "admins": draw(members(own)),
        "editors": draw(members(own)),
        "securityLevel": draw(st.integers(1, 3)),
        "namespaces": namespaces,
        "quota": draw(st.dictionaries(st.sampled_from(QUOTA_KEYS), quantities, max_size=5)),
        "network": draw(network()),
        "suspended": draw(st.sampled_from([False, False, False, True])),
        "deletionPolicy": draw(st.sampled_from(["Delete", "Retain"])),
    }
    if draw(st.booleans()):
        spec["limitRange"] = draw(limit_ranges())
    if draw(st.integers(0, 5)) == 0:
        spec["placement"] = {"subCenter": "nowhere"}  # no such SubCenter: it must say so
    _break_tenant(draw, spec, name, flaw)
    return spec


def _break_tenant(draw: st.DrawFn, spec: Spec, name: str, flaw: str | None) -> None:
    if flaw == "quota-key":
        spec["quota"][draw(st.sampled_from(BAD_QUOTA_KEYS))] = "1"
    elif flaw == "quantity":
        spec["quota"][draw(st.sampled_from(QUOTA_KEYS))] = draw(st.sampled_from(BAD_QUANTITIES))
    elif flaw == "limit-order":
        spec["limitRange"] = {"default": {"cpu": "2"}, "max": {"cpu": "1"}}
    elif flaw == "limit-key":
        spec["limitRange"] = {"max": {draw(st.sampled_from(["requests.cpu", "pods"])): "1"}}
    elif flaw == "system-user":
        spec["admins"] = {"users": ["system:anonymous"], "groups": ["system:masters"]}
    elif flaw == "foreign-account":
        spec["editors"] = {"serviceAccounts": ["kube-system/default"]}
    elif flaw == "no-contact":
        spec["contacts"] = draw(st.sampled_from([[], [{"name": "无联系方式"}]]))
    elif flaw == "level":
        spec["securityLevel"] = draw(st.sampled_from([0, 4, -1]))
    elif flaw == "classified":
        spec["classified"] = True
    elif flaw == "duplicate-namespace":
        spec["namespaces"].append(dict(spec["namespaces"][0]))
    elif flaw == "no-namespace":
        spec["namespaces"] = []
    elif flaw == "reserved-label":
        spec["namespaces"][0]["labels"] = {draw(st.sampled_from(BAD_LABEL_KEYS)): "x"}
    elif flaw == "placement-hub":
        spec["placement"] = {"subCenter": draw(st.sampled_from(["hub", "Bad_Site"]))}
    elif flaw == "long-namespace":
        spec["namespaces"][0]["name"] = "n" * (64 - len(name))
    elif flaw == "peer-both":
        spec["network"]["allowFrom"] = [{"tenant": "a", "namespaceSelector": {"x": "y"}}]
    elif flaw == "tier":
        spec["unit"]["tier"] = "province"


@st.composite
def plan_lines(draw: st.DrawFn) -> Spec:
    line: Spec = {"reason": draw(texts), "count": draw(st.integers(1, 20))}
    if draw(st.integers(0, 3)) == 0:
        line["offering"] = draw(st.sampled_from(["ecs.4c8g", "rds.mysql"]))
    else:
        line["resources"] = draw(
            st.dictionaries(st.sampled_from(QUOTA_KEYS), quantities, min_size=1, max_size=3)
        )
    return line


PLAN_FLAWS = ("no-lines", "both", "neither", "count", "bad-key", "quantity", "state", "year")


@st.composite
def resource_plan_specs(draw: st.DrawFn, tenant: str, year: int, flaw: str | None = "draw") -> Spec:
    """A ResourcePlan spec of `tenant` for `year` (named <tenant>-<year>), or one flaw."""
    if flaw == "draw":
        flaw = draw(flaws(*PLAN_FLAWS))
    spec: Spec = {
        "tenant": tenant,
        "year": year,
        "lines": draw(st.lists(plan_lines(), min_size=1, max_size=3)),
    }
    if draw(st.booleans()):
        spec["migrations"] = [
            {
                "app": draw(texts),
                "targetDate": draw(st.dates(date(2020, 1, 1), date(2100, 12, 31))).isoformat(),
            }
        ]
    line = spec["lines"][0]
    if flaw == "no-lines":
        spec["lines"] = []
    elif flaw == "both":
        line.update(offering="ecs.4c8g", resources={"requests.cpu": "1"})
    elif flaw == "neither":
        line.pop("offering", None)
        line.pop("resources", None)
    elif flaw == "count":
        line["count"] = draw(st.sampled_from([0, 100_001, -3]))
    elif flaw == "bad-key":
        line.pop("offering", None)
        line["resources"] = {draw(st.sampled_from(BAD_QUOTA_KEYS)): "1"}
    elif flaw == "quantity":
        line.pop("offering", None)
        line["resources"] = {"requests.cpu": draw(st.sampled_from(BAD_QUANTITIES))}
    elif flaw == "state":
        spec["decision"] = {"state": "Pending", "by": "approver", "reason": "审核"}
    elif flaw == "year":
        spec["year"] = year + 1  # the name no longer says the year
    return spec


SUBCENTER_FLAWS = (
    "mode",
    "hosted-no-date",
    "federated-date",
    "interval",
    "timeout",
    "threshold",
    "level",
    "secret-name",
    "label-key",
)


@st.composite
def subcenter_specs(
    draw: st.DrawFn, secret: str, namespace: str, flaw: str | None = "draw"
) -> Spec:
    """A SubCenter spec whose kubeconfig Secret is `namespace`/`secret`, or one flaw."""
    if flaw == "draw":
        flaw = draw(flaws(*SUBCENTER_FLAWS))
    mode = draw(st.sampled_from(["federated", "federated", "hosted"]))
    interval = draw(st.integers(2, 600))
    spec: Spec = {
        "displayName": draw(texts),
        "region": draw(texts),
        "tier": draw(st.sampled_from(list(cloudtenant.Tier))),
        "mode": mode,
        "kubeconfigSecretRef": {"name": secret, "namespace": namespace},
        "maxSecurityLevel": draw(st.integers(1, 3)),
        "placementLabels": draw(labels),
        "probe": {
            "intervalSeconds": interval,
            "timeoutSeconds": draw(st.integers(1, min(interval, 30))),
            "failureThreshold": draw(st.integers(1, 10)),
        },
    }
    if mode == "hosted":
        spec["retireBy"] = draw(st.dates(date(2020, 1, 1), date(2035, 12, 31))).isoformat()
    if flaw == "mode":
        spec["mode"] = "retired"
    elif flaw == "hosted-no-date":
        spec["mode"] = "hosted"
        spec.pop("retireBy", None)
    elif flaw == "federated-date":
        spec.update(mode="federated", retireBy="2030-01-01")
    elif flaw == "interval":
        spec["probe"]["intervalSeconds"] = draw(st.sampled_from([0, 100_000]))
    elif flaw == "timeout":
        spec["probe"]["timeoutSeconds"] = interval + 1
    elif flaw == "threshold":
        spec["probe"]["failureThreshold"] = 0
    elif flaw == "level":
        spec["maxSecurityLevel"] = 4
    elif flaw == "secret-name":
        spec["kubeconfigSecretRef"]["name"] = "Bad_Name"
    elif flaw == "label-key":
        spec["placementLabels"] = {draw(st.sampled_from(BAD_LABEL_KEYS[1:])): "x"}
    return spec


def _time_text(moment: datetime, style: int) -> str:
    """A time as RFC 3339 writes it (the API server's date-time format)."""
    forms = (
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        moment.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z",
    )
    return forms[style % len(forms)]


# Times people write that the API server's date-time format refuses (no zone, no seconds).
BAD_TIMES = ("2027-01-01T00:00:00", "2027-01-01 00:00:00Z", "2027-01-01T00:00Z", "2027-01-01")


MIGRATION_FLAWS = (
    "kind",
    "duplicate-kind",
    "same-namespace",
    "window",
    "level",
    "stage",
    "policy",
    "verify",
    "volume",
    "namespace",
    "time",
)


@st.composite
def migration_plan_specs(
    draw: st.DrawFn, source: str, target: str, flaw: str | None = "draw"
) -> Spec:
    """A MigrationPlan spec from namespace `source` into `target`, or one flaw."""
    if flaw == "draw":
        flaw = draw(flaws(*MIGRATION_FLAWS))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    deadline = now + timedelta(days=draw(st.integers(-400, 400)))
    spec: Spec = {
        "app": {"name": draw(texts), "securityLevel": draw(st.integers(1, 5))},
        "source": {
            "namespace": source,
            "kinds": draw(
                st.lists(st.sampled_from(migrationplan.SUPPORTED_KINDS), max_size=4, unique=True)
            ),
        },
        "targetNamespace": target,
        "deadline": _time_text(deadline, draw(st.integers(0, 11))),
        "approvalsRequired": draw(
            st.lists(st.sampled_from(["copy", "cutover"]), max_size=2, unique=True)
        ),
        "rollbackPolicy": draw(st.sampled_from(["Manual", "Automatic"])),
        "verifyTimeoutSeconds": draw(st.integers(5, 3600)),
    }
    if draw(st.booleans()):
        not_before = deadline - timedelta(days=draw(st.integers(1, 30)))
        spec["notBefore"] = _time_text(not_before, draw(st.integers(0, 11)))
    if draw(st.integers(0, 4)) == 0:
        spec["app"]["classified"] = True
    if draw(st.integers(0, 3)) == 0:
        spec["source"]["selector"] = draw(labels)
    if draw(st.integers(0, 5)) == 0:
        spec["dataMigration"] = {"volumes": ["PersistentVolumeClaim/data"], "step": "DBA 恢复备份"}
    _break_migration(draw, spec, flaw)
    return spec


def _break_migration(draw: st.DrawFn, spec: Spec, flaw: str | None) -> None:
    if flaw == "kind":
        spec["source"]["kinds"] = ["Pod"]
    elif flaw == "duplicate-kind":
        spec["source"]["kinds"] = ["Secret", "Secret"]
    elif flaw == "same-namespace":
        spec["source"]["namespace"] = spec["targetNamespace"]
    elif flaw == "window":
        spec["notBefore"] = spec["deadline"]
    elif flaw == "level":
        spec["app"]["securityLevel"] = draw(st.sampled_from([0, 6]))
    elif flaw == "stage":
        spec["approvalsRequired"] = ["verify"]
    elif flaw == "policy":
        spec["rollbackPolicy"] = "Never"
    elif flaw == "verify":
        spec["verifyTimeoutSeconds"] = draw(st.sampled_from([0, 4000]))
    elif flaw == "volume":
        spec["dataMigration"] = {"volumes": ["Pod/x"], "step": "x"}
    elif flaw == "namespace":
        spec["source"]["namespace"] = "Bad_NS"
    elif flaw == "time":
        spec["deadline"] = draw(st.sampled_from(BAD_TIMES))
