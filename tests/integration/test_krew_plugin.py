"""The real krew installs `kubectl govcloud` from the repo's manifest and the archive built for it.

krew (sigs.k8s.io/krew, pinned in hack/krew) checks the manifest with its own validator, installs
the archive `plugins/krew/build.py` (`make plugin`) builds for this machine with `install
--manifest --archive`, offline and into a krew root of the test's own, and refuses an archive
whose sha256 is not the manifest's. kubectl then finds the installed plugin on PATH and runs it
against the local control plane as a department's admin, by impersonation.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _tenant_helpers as helpers
import pytest
import yaml

from govcloud.dev import binaries, cluster, testing

pytestmark = pytest.mark.integration

MANIFEST = testing.REPO_ROOT / "plugins" / "krew" / "govcloud.yaml"
BUILD = testing.REPO_ROOT / "plugins" / "krew" / "build.py"
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
RBAC_PROPAGATION = 15.0
# Every proxy is a closed port: a download or a git clone of the index by krew would fail.
NO_NETWORK = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Built:
    """What `make plugin` leaves: the archive and the manifest with the archive's sha256."""

    archive: Path
    manifest: Path
    sha256: str


@dataclass(frozen=True)
class Krew:
    """kubectl-krew and validate-krew-manifest, built from hack/krew."""

    krew: Path
    validator: Path


@pytest.fixture(scope="module")
def krew() -> Krew:
    try:
        found = binaries.ensure_all(binaries.KREW)
    except binaries.BinaryError as error:
        pytest.fail(f"krew (pinned in hack/krew) could not be built or found: {error}")
    return Krew(found["kubectl-krew"], found["validate-krew-manifest"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`make plugin` for this machine's platform, into a temporary folder (pip's own cache)."""
    out = tmp_path_factory.mktemp("plugin")
    os_name = platform.system().lower()
    arch = ARCHES[platform.machine().lower()]
    result = subprocess.run(
        [sys.executable, str(BUILD), "--os", os_name, "--arch", arch, "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (archive,) = out.glob(f"kubectl-govcloud-*-{os_name}-{arch}.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"sha256: {digest}" in result.stdout, result.stdout
    return Built(archive, out / "govcloud.yaml", digest)


def user_env(root: Path, krew: Krew) -> dict[str, str]:
    """A user with a home and a krew root of their own; on PATH krew's bin first, kubectl-krew,
    the base Python without this venv (so no package but the archive's, and no other
    kubectl-govcloud), kubectl and the system."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is not on PATH"
    path = [
        root / "bin",
        krew.krew.parent,
        Path(sys.base_prefix) / "bin",
        Path(kubectl).parent,
        Path("/usr/bin"),
        Path("/bin"),
    ]
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return {
        "PATH": os.pathsep.join(dict.fromkeys(str(folder) for folder in path)),
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "KREW_ROOT": str(root),
        "KREW_NO_UPGRADE_CHECK": "1",
        "LANG": "C.UTF-8",
    }


def offline(env: dict[str, str]) -> dict[str, str]:
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")
    return {**env, **dict.fromkeys(proxies, NO_NETWORK), "NO_PROXY": "", "no_proxy": ""}


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        check=False, timeout=120,
    )  # fmt: skip


def install(env: dict[str, str], manifest: Path, archive: Path) -> subprocess.CompletedProcess[str]:
    """`kubectl krew install --manifest --archive`, with any network use bound to fail."""
    return run(
        offline(env), "kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={archive}"
    )


def installed(root: Path) -> list[Path]:
    """What krew put in place of plugin govcloud: its link on PATH, its receipt, its files."""
    places = (root / "bin" / "kubectl-govcloud", root / "receipts" / "govcloud.yaml")
    return [place for place in (*places, root / "store" / "govcloud") if place.exists()]


def test_krews_validator_accepts_the_repo_manifest_and_the_built_one(
    krew: Krew, built: Built
) -> None:
    # -skip-install: the full check downloads each platform's uri, published only by a release.
    for manifest in (MANIFEST, built.manifest):
        result = subprocess.run(
            [str(krew.validator), "-manifest", str(manifest), "-skip-install"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "structural validation OK" in result.stderr
        assert "no overlapping spec.platform[].selector" in result.stderr
    platforms = yaml.safe_load(built.manifest.read_text())["spec"]["platforms"]
    assert built.sha256 in [entry["sha256"] for entry in platforms]


def test_krew_installs_the_built_archive_offline_and_kubectl_runs_it_as_a_department(
    krew: Krew,
    built: Built,
    tmp_path: Path,
    hub: cluster.ControlPlane,
    tenants: Any,
    kubectl: testing.Kubectl,
) -> None:
    admin = f"alice-{uuid.uuid4().hex[:6]}"
    tenant = tenants.create("krew", admins={"users": [admin]})
    root = tmp_path / "krew"
    env = user_env(root, krew)
    result = install(env, built.manifest, built.archive)
    assert result.returncode == 0, result.stderr
    assert "Installed plugin: govcloud" in result.stderr
    # krew read no index (an empty index folder: nothing cloned) and wrote only to its root.
    assert list((root / "index").iterdir()) == []
    assert not list((root / "home").iterdir())
    receipt = yaml.safe_load((root / "receipts" / "govcloud.yaml").read_text())
    assert receipt["status"]["source"]["name"] == "detached"
    # kubectl finds krew's link, and no other kubectl-govcloud.
    listed = run(env, "kubectl", "plugin", "list")
    plugins = [line for line in listed.stdout.splitlines() if line.endswith("kubectl-govcloud")]
    assert plugins == [str(root / "bin" / "kubectl-govcloud")], listed.stdout + listed.stderr
    helpers.wait_phase(kubectl, tenant, "Active")

    def whoami() -> dict[str, Any] | None:
        ran = run(
            env, "kubectl", "govcloud", "whoami", "-o", "json",
            f"--kubeconfig={hub.kubeconfig}", f"--as={admin}",
        )  # fmt: skip
        assert "Traceback" not in ran.stderr, ran.stderr
        found: dict[str, Any] = json.loads(ran.stdout) if ran.returncode == 0 else {}
        return found if found.get("tenants") else None

    me = testing.eventually(
        whoami, timeout=RBAC_PROPAGATION, what="the krew-installed plugin to name the tenant"
    )
    assert me["user"] == admin
    assert [(t["tenant"], t["roles"]) for t in me["tenants"]] == [(tenant, ["admin"])]
    assert me["tenants"][0]["namespaces"] == [f"{tenant}-app"]


def test_krew_refuses_an_archive_whose_sha256_is_not_the_manifests(
    krew: Krew, built: Built, tmp_path: Path
) -> None:
    tampered = tmp_path / built.archive.name
    data = bytearray(built.archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    wrong = hashlib.sha256(data).hexdigest()
    root = tmp_path / "krew"
    env = user_env(root, krew)
    result = install(env, built.manifest, tampered)
    assert result.returncode != 0
    assert f"checksum does not match, want: {built.sha256}, got {wrong}" in result.stderr
    assert installed(root) == []
    # The repo's manifest carries placeholders until a release: the real archive is refused too.
    result = install(env, MANIFEST, built.archive)
    assert result.returncode != 0
    assert f"want: {'0' * 64}, got {built.sha256}" in result.stderr
    assert installed(root) == []
