"""The launcher: two clusters at once, clear errors, nothing left running after any kind of stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from govcloud.dev import cluster

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _state_of(pid: int) -> str:
    """The kernel's state line of a process (R, S, D: in uninterruptible I/O, Z), and where it
    waits, for a failure message."""
    proc = Path(f"/proc/{pid}")
    try:
        state = next(
            line for line in (proc / "status").read_text().splitlines() if line.startswith("State:")
        )
        return f"{state.split(':', 1)[1].strip()} in {(proc / 'wchan').read_text() or '-'}"
    except (OSError, StopIteration):
        return "gone"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_two_clusters_run_at_once_and_are_independent(
    hub: cluster.ControlPlane, subcenter: cluster.ControlPlane
) -> None:
    assert hub.server != subcenter.server
    hub.kubectl("create", "namespace", "only-on-hub")
    try:
        missing = subprocess.run(
            ["kubectl", f"--kubeconfig={subcenter.kubeconfig}", "get", "ns", "only-on-hub"],
            capture_output=True,
            check=False,
        )
        assert missing.returncode != 0
    finally:
        hub.kubectl("delete", "namespace", "only-on-hub", "--wait=false")


def test_a_port_taken_between_the_pick_and_the_bind_means_other_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel test workers start clusters at once: a port one picked free may be bound by
    another before its etcd binds it. The start picks fresh ports instead of failing."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        picks = iter([port])  # etcd's client port is picked first
        real = cluster.free_port
        monkeypatch.setattr(cluster, "free_port", lambda: next(picks, 0) or real())
        messages: list[str] = []
        plane = cluster.ControlPlane(name="port-race", state_root=tmp_path, log=messages.append)
        try:
            plane.start()
            assert plane.ports is not None
            assert port not in (
                plane.ports.etcd_client,
                plane.ports.etcd_peer,
                plane.ports.apiserver,
            )
            assert any("a port was taken meanwhile" in message for message in messages)
            plane.kubectl("get", "namespaces")
        finally:
            plane.stop()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plane = cluster.ControlPlane(
            name="port-clash", state_root=tmp_path, apiserver_port=port, log=lambda _: None
        )
        with pytest.raises(cluster.ClusterError, match=f"port {port} .* already in use"):
            plane.start()
    assert not plane.processes


def _cli(*args: str, state_root: Path) -> list[str]:
    return [sys.executable, "-m", "govcloud.dev", "cluster", *args, "--state-root", str(state_root)]


def test_a_stale_control_plane_from_a_killed_run_is_stopped_before_a_new_start(
    tmp_path: Path,
) -> None:
    # `cluster up` leaves the components running with no launcher: what a killed run leaves.
    subprocess.run(_cli("up", "--name", "stale", state_root=tmp_path), check=True, timeout=300)
    old_pids = json.loads((tmp_path / "stale" / "state.json").read_text())["pids"]
    assert all(_alive(pid) for pid in old_pids.values())

    messages: list[str] = []
    plane = cluster.ControlPlane(name="stale", state_root=tmp_path, log=messages.append)
    plane.start()
    try:
        assert not any(_alive(pid) for pid in old_pids.values())
        assert any("left running by an earlier run" in message for message in messages)
        plane.kubectl("get", "namespaces")
        new_pids = [process.pid for process in plane.processes.values()]
    finally:
        plane.stop()
    assert not any(_alive(pid) for pid in new_pids)


def test_killing_the_launcher_takes_every_component_with_it(tmp_path: Path) -> None:
    launcher = subprocess.Popen(
        _cli("run", "--name", "orphan", state_root=tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if line.startswith("export KUBECONFIG="):
                break
        pids = json.loads((tmp_path / "orphan" / "state.json").read_text())["pids"]
        assert set(pids) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kwok"}
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        _wait(
            lambda: not any(_alive(pid) for pid in pids.values()),
            30,
            "every component to exit after the launcher was killed",
        )
    finally:
        if launcher.poll() is None:
            launcher.kill()
        cluster.clean_stale(tmp_path / "orphan")


def test_ctrl_c_of_a_foreground_cluster_stops_everything(tmp_path: Path) -> None:
    launcher = subprocess.Popen(
        _cli("run", "--name", "interrupted", state_root=tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if line.startswith("export KUBECONFIG="):
                break
        pids = json.loads((tmp_path / "interrupted" / "state.json").read_text())["pids"]
        launcher.send_signal(signal.SIGINT)
        try:
            code = launcher.wait(60)
        except subprocess.TimeoutExpired:
            # Seen once on a machine at load 7: say what each process was doing.
            states = {
                name: _state_of(pid) for name, pid in {"launcher": launcher.pid, **pids}.items()
            }
            raise AssertionError(f"the launcher did not stop within 60 s: {states}") from None
        assert code == 0
        assert not any(_alive(pid) for pid in pids.values())
        assert not (tmp_path / "interrupted" / "state.json").exists()
    finally:
        if launcher.poll() is None:
            launcher.kill()
        cluster.clean_stale(tmp_path / "interrupted")
