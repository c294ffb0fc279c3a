"""Find or build the pinned upstream binaries: the control plane and the test tools (hack/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
HACK_DIR = REPO_ROOT / "hack"


class BinaryError(RuntimeError):
    """A binary could not be found or built; the message says what to do."""


@dataclass(frozen=True)
class Tool:
    """One binary built with `go build` from a pinned Go tools module under hack/."""

    name: str
    module_dir: str
    package: str
    version_module: str
    kubernetes_version_ldflags: bool = False
    build_tags: tuple[str, ...] = ()
    # A string variable set to the pinned version at link time, for tools that print it.
    version_variable: str = ""


VELERO = "github.com/vmware-tanzu/velero"

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "kube-apiserver",
            "k8s",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes",
            kubernetes_version_ldflags=True,
        ),
        Tool(
            "kube-controller-manager",
            "k8s",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes",
            kubernetes_version_ldflags=True,
        ),
        Tool(
            "kube-scheduler",
            "k8s",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            "k8s.io/kubernetes",
            kubernetes_version_ldflags=True,
        ),
        Tool("etcd", "k8s", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
        Tool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok"),
        Tool("helm", "helm", "helm.sh/helm/v3/cmd/helm", "helm.sh/helm/v3"),
        Tool(
            "cyclonus",
            "cyclonus",
            "github.com/mattfenwick/cyclonus/cmd/cyclonus",
            "github.com/mattfenwick/cyclonus",
        ),
        Tool("velero", "velero", "github.com/vmware-tanzu/velero/cmd/velero", VELERO),
        Tool(
            "velero-plugin-for-aws",
            "velero",
            "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws",
            f"{VELERO}-plugin-for-aws",
        ),
        # Only its rule commands are used: remove_all_sd leaves out the cloud service discoveries.
        Tool(
            "promtool",
            "promtool",
            "github.com/prometheus/prometheus/cmd/promtool",
            "github.com/prometheus/prometheus",
            build_tags=("remove_all_sd",),
        ),
        # kubectl's plugin manager and its manifest checker: the krew test installs
        # `kubectl govcloud` with them from plugins/krew/govcloud.yaml and the archive built for it.
        Tool(
            "kubectl-krew",
            "krew",
            "sigs.k8s.io/krew/cmd/krew",
            "sigs.k8s.io/krew",
            version_variable="sigs.k8s.io/krew/internal/version.gitTag",
        ),
        Tool(
            "validate-krew-manifest",
            "krew",
            "sigs.k8s.io/krew/cmd/validate-krew-manifest",
            "sigs.k8s.io/krew",
        ),
    )
}

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BACKUP = ("velero", "velero-plugin-for-aws")
KREW = ("kubectl-krew", "validate-krew-manifest")


def cache_dir() -> Path:
    """Where built binaries live: $GOVCLOUD_CACHE_DIR, else ~/.cache/govcloud-operator."""
    configured = os.environ.get("GOVCLOUD_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "govcloud-operator"


def pinned_version(tool: Tool) -> str:
    """The version of the tool's module pinned in hack/<module>/go.mod."""
    go_mod = HACK_DIR / tool.module_dir / "go.mod"
    if not go_mod.exists():
        raise BinaryError(
            f"{go_mod} is missing: building {tool.name} needs a source checkout of "
            "govcloud-operator, or set KUBEBUILDER_ASSETS to a folder holding the binaries"
        )
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(tool.version_module)}\s+(v\S+)", re.M)
    match = pattern.search(go_mod.read_text())
    if match is None:
        raise BinaryError(f"{go_mod} does not pin {tool.version_module}")
    return match.group(1)


def kubernetes_version() -> str:
    """The pinned Kubernetes version that the local control plane runs."""
    return pinned_version(TOOLS["kube-apiserver"])


def cached_path(tool: Tool) -> Path:
    return cache_dir() / "bin" / tool.name / pinned_version(tool) / tool.name


def from_assets(name: str) -> Path | None:
    """The binary in $KUBEBUILDER_ASSETS (the envtest convention), if it is there."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    candidate = Path(assets) / name
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def ensure(name: str) -> Path:
    """The path of a runnable binary, building it once if it is neither provided nor cached."""
    provided = from_assets(name)
    if provided is not None:
        return provided
    tool = TOOLS[name]
    target = cached_path(tool)
    if target.is_file():
        return target
    build(tool, target)
    return target


def ensure_all(names: tuple[str, ...] = CONTROL_PLANE) -> dict[str, Path]:
    return {name: ensure(name) for name in names}


def _ldflags(tool: Tool) -> str:
    flags = ["-s", "-w"]
    if tool.kubernetes_version_ldflags:
        version = pinned_version(tool)
        minor = version.split(".")[1]
        prefix = "k8s.io/component-base/version"
        flags += [
            f"-X {prefix}.gitVersion={version}",
            f"-X {prefix}.gitMajor=1",
            f"-X {prefix}.gitMinor={minor}",
            f"-X {prefix}.gitTreeState=clean",
        ]
    if tool.version_variable:
        flags.append(f"-X {tool.version_variable}={pinned_version(tool)}")
    return " ".join(flags)


def build(tool: Tool, target: Path) -> None:
    """`go build` the tool from its pinned module into the cache (atomically)."""
    go = shutil.which("go")
    if go is None:
        raise BinaryError(
            f"cannot build {tool.name}: Go is not installed. Install Go 1.26 "
            "(https://go.dev/dl) or set KUBEBUILDER_ASSETS to a folder that holds "
            "etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    print(
        f"building {tool.name} {pinned_version(tool)} with go build "
        "(once; cold builds of Kubernetes take several minutes)...",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "CGO_ENABLED": "0"}
    command = [go, "build", "-trimpath", "-ldflags", _ldflags(tool), "-o", str(partial)]
    if tool.build_tags:
        command += ["-tags", ",".join(tool.build_tags)]
    result = subprocess.run(
        [*command, tool.package], cwd=HACK_DIR / tool.module_dir, env=env, check=False
    )
    if result.returncode != 0:
        raise BinaryError(f"go build of {tool.package} failed (exit {result.returncode})")
    partial.replace(target)


KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def kwok_stages() -> Path:
    """kwok's upstream 'fast' node and pod stages as one config file, taken from its pinned module.

    A standalone kwok has no stages unless given a config; kwokctl writes these same files.
    """
    tool = TOOLS["kwok"]
    target = cache_dir() / "bin" / tool.name / pinned_version(tool) / "stages.yaml"
    if target.is_file():
        return target
    module_dir = _module_source(tool)
    documents = [(module_dir / stage).read_text() for stage in KWOK_STAGES]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text("\n---\n".join(document.strip() for document in documents) + "\n")
    partial.replace(target)
    return target


def _module_source(tool: Tool) -> Path:
    go = shutil.which("go")
    if go is None:
        raise BinaryError(
            "kwok needs its stage definitions from the sigs.k8s.io/kwok Go module: install Go 1.26"
        )
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{tool.version_module}@{pinned_version(tool)}"],
        cwd=HACK_DIR / tool.module_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BinaryError(f"go mod download {tool.version_module} failed: {result.stderr.strip()}")
    return Path(json.loads(result.stdout)["Dir"])
