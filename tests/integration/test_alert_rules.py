"""Each alert of the chart, proven with promtool: it fires on series that should raise it, only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _chart_helpers import REPO_ROOT, Manifest, one, render

from govcloud.dev import binaries

pytestmark = pytest.mark.integration

ALERTS_DIR = REPO_ROOT / "tests" / "alerts"
# The name the test files' rule_files give: the rendered rules are written beside them.
RULES_FILE = "govcloud-rules.yaml"
# The values the expected labels and annotations of tests/alerts/ are written for.
VALUES = (
    "--set", "prometheusRule.enabled=true",
    "--set", "prometheusRule.additionalAlertLabels.team=govcloud-platform",
)  # fmt: skip


def alert_test_files() -> list[Path]:
    files = sorted(ALERTS_DIR.glob("*.yaml"))
    assert files, f"no promtool test files in {ALERTS_DIR}"
    return files


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return binaries.ensure("promtool")
    except binaries.BinaryError as error:
        pytest.fail(f"promtool (pinned in hack/promtool) could not be built or found: {error}")


@pytest.fixture(scope="module")
def rule_groups() -> list[Manifest]:
    groups: list[Manifest] = one(render(*VALUES), "PrometheusRule")["spec"]["groups"]
    return groups


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, rule_groups: list[Manifest]) -> Path:
    """The rendered rules as a Prometheus rules file, with copies of the test files beside it."""
    folder = tmp_path_factory.mktemp("alerts")
    rules = yaml.safe_dump({"groups": rule_groups}, sort_keys=False, width=1000)
    (folder / RULES_FILE).write_text(rules)
    for path in alert_test_files():
        shutil.copy(path, folder / path.name)
    return folder


def run(promtool: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], cwd=workdir, capture_output=True, text=True, check=False, timeout=60
    )


def test_the_rendered_rules_pass_promtool_check(promtool: Path, workdir: Path) -> None:
    result = run(promtool, workdir, "check", "rules", "--lint=all", "--lint-fatal", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_and_stays_quiet_as_its_cases_say(promtool: Path, workdir: Path) -> None:
    names = [path.name for path in alert_test_files()]
    result = run(promtool, workdir, "test", "rules", *names)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_cases(test_group: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """(alert, fires at some eval_time) for each alert a test group checks."""
    checked: dict[str, bool] = {}
    for case in test_group.get("alert_rule_test") or []:
        name = case["alertname"]
        checked[name] = checked.get(name, False) or bool(case.get("exp_alerts"))
    yield from checked.items()


def covered() -> tuple[set[str], set[str]]:
    """The alerts that some test group makes fire, and those that one checks and never fire."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in alert_test_files():
        for test_group in yaml.safe_load(path.read_text())["tests"]:
            for name, fires in alert_cases(test_group):
                (firing if fires else quiet).add(name)
    return firing, quiet


def test_every_alert_has_a_firing_and_a_quiet_case(rule_groups: list[Manifest]) -> None:
    shipped = {rule["alert"] for group in rule_groups for rule in group["rules"] if "alert" in rule}
    firing, quiet = covered()
    assert not shipped - firing, f"alerts no test group makes fire: {shipped - firing}"
    assert not shipped - quiet, f"alerts no test group shows quiet: {shipped - quiet}"
    assert not (firing | quiet) - shipped, f"cases of unknown alerts: {(firing | quiet) - shipped}"
