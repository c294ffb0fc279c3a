"""Finding and building the control-plane binaries: assets first, then cache, then go build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from govcloud.dev import binaries


def _executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_kubebuilder_assets_are_used_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    provided = _executable(assets, "kube-apiserver")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("GOVCLOUD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no go: building would fail loudly
    assert binaries.ensure("kube-apiserver") == provided


def test_a_cached_binary_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("GOVCLOUD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = binaries.cached_path(binaries.TOOLS["etcd"])
    target.parent.mkdir(parents=True)
    _executable(target.parent, "etcd")
    assert binaries.ensure("etcd") == target


def test_no_go_and_no_assets_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("GOVCLOUD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(binaries.BinaryError, match=r"Go is not installed.*KUBEBUILDER_ASSETS"):
        binaries.ensure("kube-apiserver")


def test_the_cli_reports_a_missing_go_without_a_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path / "empty"),
        "GOVCLOUD_CACHE_DIR": str(tmp_path),
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "govcloud.dev", "tools", "kube-apiserver"],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot build kube-apiserver: Go is not installed")
    assert "Traceback" not in result.stderr


def test_versions_are_read_from_the_pinned_go_modules() -> None:
    assert binaries.kubernetes_version().startswith("v1.")
    assert binaries.pinned_version(binaries.TOOLS["kwok"]).startswith("v0.")
    assert binaries.pinned_version(binaries.TOOLS["etcd"]).startswith("v3.")


def test_krew_is_pinned_and_told_its_version_at_link_time() -> None:
    version = binaries.pinned_version(binaries.TOOLS["kubectl-krew"])
    assert version == binaries.pinned_version(binaries.TOOLS["validate-krew-manifest"])
    assert version.startswith("v0.")
    ldflags = binaries._ldflags(binaries.TOOLS["kubectl-krew"])
    assert f"-X sigs.k8s.io/krew/internal/version.gitTag={version}" in ldflags
    assert "-X" not in binaries._ldflags(binaries.TOOLS["validate-krew-manifest"])
