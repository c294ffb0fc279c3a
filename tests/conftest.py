"""Shared fixtures: the real local control plane, started once per test session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from govcloud.dev import cluster

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_ROOT = REPO_ROOT / ".cache" / "clusters"


def _start(role: str) -> cluster.ControlPlane:
    # One cluster per pytest process, so parallel sessions in one checkout never collide;
    # what a killed session left behind is swept first.
    cluster.sweep_dead_sessions(STATE_ROOT, "pytest-")
    name = f"pytest-{role}-{os.getpid()}"
    plane = cluster.ControlPlane(name=name, state_root=STATE_ROOT, log=lambda _: None)
    try:
        plane.start()
    except (cluster.ClusterError, OSError) as error:
        # Never skip: a control plane that cannot start is a failed run, with the reason.
        pytest.fail(f"the local control plane {name!r} could not start: {error}", pytrace=False)
    return plane


def _stop(plane: cluster.ControlPlane) -> None:
    plane.stop()
    shutil.rmtree(plane.state_dir / "etcd", ignore_errors=True)  # the logs stay for a look


@pytest.fixture(scope="session")
def hub() -> Iterator[cluster.ControlPlane]:
    """The hub cluster: a real kube-apiserver, etcd, controller-manager, scheduler and kwok."""
    plane = _start("hub")
    yield plane
    _stop(plane)


@pytest.fixture(scope="session")
def subcenter() -> Iterator[cluster.ControlPlane]:
    """A second, independent cluster standing for a county sub-center."""
    plane = _start("subcenter")
    yield plane
    _stop(plane)
