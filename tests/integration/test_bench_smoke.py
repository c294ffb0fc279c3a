"""The benchmark runner, tiny: it starts its clusters and the operator, measures, and the JSON
holds sane figures. Keeps `make bench` from rotting; the real figures are in BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from govcloud.dev import testing

pytestmark = pytest.mark.integration


def test_the_bench_runner_measures_the_operator_beside_its_floor(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--tenants=3",
            "--scenarios=burst,steady,single,drift",
            "--trials=3",
            "--resync-seconds=3",
            "--quiet-seconds=4",
            f"--json={output}",
        ],
        cwd=testing.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"the runner failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    document = json.loads(output.read_text())
    assert document["errors"] == {}
    scenarios = document["scenarios"]

    burst = scenarios["burst"]
    assert burst["tenants"] == 3
    # 3 namespaces, their quotas, LimitRanges, NetworkPolicies, 3 RoleBindings each, self-view.
    assert burst["objects_per_tenant"] >= 23
    assert burst["floor"]["writes"] == 3 * burst["objects_per_tenant"]
    assert burst["floor"]["wall_seconds"] > 0
    assert burst["operator"]["ready_wall_seconds"] > 0
    assert burst["operator"]["ready_latency"]["n"] == 3
    # The operator writes at least every object the floor writes.
    assert burst["operator"]["writes"] >= burst["floor"]["writes"]
    assert burst["ratio"]["ready_wall"] == pytest.approx(
        burst["operator"]["ready_wall_seconds"] / burst["floor"]["wall_seconds"]
    )

    steady = scenarios["steady"]
    assert steady["writes_audit"] == 0, steady["calls"]
    assert steady["writes_self_reported"] == 0
    assert steady["tenant_passes"] >= 3, "every tenant is resynced within one period"
    # A resync pass reads the watch-fed caches: the audit log shows no GET or LIST of the
    # operator in a whole resync period (it does show its watches and the runner's reads).
    assert steady["reads_audit"] == 0, steady["calls"]
    assert steady["passes_per_tenant"] >= 1
    assert steady["cpu_seconds"] > 0
    assert steady["peak_rss_mib_window"] > 20

    single = scenarios["single"]
    assert single["trials"] == 3
    # Both measured; which is faster is the benchmark's finding, not this smoke test's (with 3
    # trials on a loaded machine the floor's p50 was once the slower one).
    assert single["floor"]["p50"] > 0
    assert single["operator_ready"]["p50"] > 0

    drift = scenarios["drift"]
    assert drift["trials"] == 3
    assert 0 < drift["restored"]["p50"] <= drift["healed"]["p50"] < 90
    assert drift["floor_single_write"]["p50"] > 0

    rows = {(row["scenario"], row["metric"]) for row in document["table"]}
    assert ("1 burst", "3 tenants: all Ready") in rows
    assert document["machine"]["cpus"] >= 1
