"""Helpers of the generated-spec tests: draw specs, send them, judge the answers and outcomes."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from govcloud.dev import testing

Manifest = dict[str, Any]
GROUP, VERSION = "govcloud.io", "v1alpha1"
TESTS_ROOT = Path(__file__).resolve().parents[1]
# make test: a short, fixed run; make soak sets GOVCLOUD_GEN_EXAMPLES (and may set a seed).
EXAMPLES = int(os.environ.get("GOVCLOUD_GEN_EXAMPLES", "15"))
SEED = os.environ.get("GOVCLOUD_GEN_SEED")
# Who the operator's writes come from in the audit log (its client, and kopf's).
OPERATOR_AGENTS = ("govcloud-operator/", "kopf/")


def strategies() -> ModuleType:
    """tests/unit/property/_strategies.py, loaded by path (tests/ is not a package)."""
    loaded = sys.modules.get("_strategies")
    if loaded is not None:
        return loaded
    path = TESTS_ROOT / "unit" / "property" / "_strategies.py"
    spec = importlib.util.spec_from_file_location("_strategies", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_strategies"] = module
    spec.loader.exec_module(module)
    return module


def draw(strategy: st.SearchStrategy[Any], count: int = EXAMPLES) -> list[Any]:
    """`count` examples of `strategy`, the same every run (or those of GOVCLOUD_GEN_SEED)."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=SEED is None,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        found.append(example)

    if SEED is not None:
        collect = seed(int(SEED))(collect)
    collect()
    return found[:count]


def draw_half_flawed(
    specs: Callable[[str | None], st.SearchStrategy[Any]], flaws: tuple[str, ...], count: int
) -> list[Any]:
    """`count` specs: every other one valid, the rest each wrong in one way, every kind of
    flaw in turn (hypothesis alone would draw some flaws far more often than others)."""
    wanted = [None if index % 2 == 0 else flaws[index // 2 % len(flaws)] for index in range(count)]
    drawn = {flaw: iter(draw(specs(flaw), wanted.count(flaw))) for flaw in set(wanted)}
    return [next(drawn[flaw]) for flaw in wanted]


def seed_note() -> str:
    return f"GOVCLOUD_GEN_SEED={SEED}" if SEED else "derandomized (no GOVCLOUD_GEN_SEED)"


@dataclass
class Answer:
    """What the API server said to one create: the object, or the refusal."""

    manifest: Manifest
    created: Manifest | None
    status: int = 0
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.created is not None


@dataclass
class Sender:
    """Creates custom objects on the hub with the Python client (no kubectl per example)."""

    kubeconfig: Path
    api: client.CustomObjectsApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = client.CustomObjectsApi(
            config.new_client_from_config(config_file=str(self.kubeconfig))
        )

    def create(self, plural: str, manifest: Manifest, *, dry_run: bool = False) -> Answer:
        namespace = manifest["metadata"].get("namespace")
        options = {"dry_run": "All"} if dry_run else {}
        try:
            if namespace:
                created = self.api.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, manifest, **options
                )
            else:
                created = self.api.create_cluster_custom_object(
                    GROUP, VERSION, plural, manifest, **options
                )
        except ApiException as error:
            return Answer(manifest, None, int(error.status), _message(error.body))
        return Answer(manifest, created)


def _message(body: Any) -> str:
    try:
        return str(json.loads(body).get("message", ""))
    except (TypeError, ValueError):
        return str(body)


def refused_with_a_message(answer: Answer) -> str | None:
    """Why a refusal is not a proper one (None when it is): 422 or 400 with a message that
    names what is wrong, never a 500 or an internal error."""
    if answer.status not in (400, 422):
        return f"answered {answer.status}: {answer.message}"
    lowered = answer.message.lower()
    if not answer.message or "internal error" in lowered or "panic" in lowered:
        return f"no message a person can act on: {answer.message!r}"
    return None


def settled(body: Manifest | None) -> bool:
    """The operator has looked at the current generation and said something."""
    if body is None:
        return False
    status = body.get("status") or {}
    generation = body["metadata"].get("generation")
    return status.get("observedGeneration") == generation and bool(status.get("conditions"))


def unclear(body: Manifest, main: str | None) -> str | None:
    """Why an outcome is not Ready nor a clear error (None when it is one of them)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    for item in conditions:
        if not item.get("reason"):
            return f"condition {item.get('type')} has no reason"
        if item.get("status") == "False" and not item.get("message"):
            return f"condition {item.get('type')} is False with no message"
    if main is not None and not any(item["type"] == main for item in conditions):
        return f"no {main} condition"
    return None


def wait_settled(
    kubectl: testing.Kubectl, kind: str, names: list[tuple[str | None, str]], timeout: float
) -> dict[str, Manifest]:
    """Every named object once the operator has written a status for its generation."""
    bodies: dict[str, Manifest] = {}

    def all_settled() -> bool:
        for namespace, name in names:
            if name in bodies:
                continue
            body = kubectl.get(kind, name, namespace)
            if settled(body):
                assert body is not None
                bodies[name] = body
        return len(bodies) == len(names)

    try:
        testing.eventually(all_settled, timeout=timeout, what=f"every generated {kind} to settle")
    except testing.WaitTimeoutError as error:
        missing = [name for _, name in names if name not in bodies]
        raise AssertionError(f"{error}; never settled: {missing} ({seed_note()})") from None
    return bodies


@dataclass
class OperatorWatch:
    """What the operator said and did from a moment on: its log, its error metrics, and its
    audited writes."""

    operator: testing.OperatorProcess
    audited: Callable[[], list[dict[str, Any]]]
    log_offset: int = 0
    errors: float = 0.0
    audit_count: int = 0

    def __post_init__(self) -> None:
        self.log_offset = self.operator.log_path.stat().st_size
        self.errors = self._errors()
        self.audit_count = len(self.audited())

    def _errors(self) -> float:
        return sum(
            self.operator.metric_value("govcloud_reconcile_total", result=result)
            for result in ("error", "exception")
        )

    def new_log(self) -> str:
        with self.operator.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def refused_writes(self) -> list[str]:
        """The operator's writes the API server refused as invalid since the watch began."""
        refused = []
        for event in self.audited()[self.audit_count :]:
            if not str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS):
                continue
            answer = event.get("responseStatus") or {}
            code = int(answer.get("code") or 0)
            if code in (400, 422) or code >= 500:
                ref = event.get("objectRef") or {}
                refused.append(
                    f"{event.get('verb')} {ref.get('resource')}/{ref.get('subresource', '')}"
                    f" {ref.get('namespace', '')}/{ref.get('name', '')}: {code}"
                    f" {answer.get('reason', '')} {answer.get('message', '')}"
                )
        return refused

    def problems(self) -> list[str]:
        """Tracebacks, passes counted as errors, and refused writes since the watch began."""
        found = []
        log = self.new_log()
        if "Traceback" in log:
            start = log.index("Traceback")
            found.append(f"the operator logged a traceback:\n{log[max(0, start - 300) :][:3000]}")
        errors = self._errors() - self.errors
        if errors:
            found.append(f"{errors:.0f} passes counted result=error or exception")
        refused = self.refused_writes()
        found += [f"the API server refused an operator write: {item}" for item in refused]
        return found
