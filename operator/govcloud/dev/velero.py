"""Velero's real server, with its AWS object-store plugin, run against a local control plane.

`velero server` runs here as a process with the control plane's kubeconfig instead of as a pod:
it needs no node to run on, and backing up API objects needs no node agent. Its plugin folder
holds the pinned `velero-plugin-for-aws`, and its backup storage location is an S3 bucket on
the tests' object store (`govcloud.dev.objectstore`). Volume data is out of reach here (no node
agent, no CSI driver); the kind workflow covers that.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govcloud.dev import binaries, objectstore, testing

NAMESPACE = "velero"
MANAGER_PORT = 8080  # controller-runtime's metrics default, fixed in velero server
# Test modules on other xdist workers may want a server too: they take turns (see `start`).
TURN_TIMEOUT = 600.0
CREDENTIALS_SECRET = "cloud-credentials"  # the name `velero install` gives it


def install_manifests(
    kubeconfig: Path,
    store: objectstore.ObjectStore,
    bucket: str,
    *,
    read_only: bool = False,
    in_cluster_url: str | None = None,
) -> list[dict[str, Any]]:
    """What `velero install` would create, rendered by the pinned velero itself: its CRDs,
    namespace, ServiceAccount and binding, the credentials Secret, the storage location (a
    bucket on the S3 store, path-style) and its Deployment. The Deployment is kept at 0
    replicas, as the server runs here as a process (its restore actions read the image
    from it).

    With `in_cluster_url` (a real cluster, the kind workflow) Velero runs in its pods as
    `velero install` makes them, with its node agent backing up volume data by file system,
    and reaches the object store at that URL."""
    with tempfile.TemporaryDirectory(prefix="govcloud-velero-") as folder:
        secret_file = Path(folder) / "cloud"
        secret_file.write_text(store.credentials_file())
        secret_file.chmod(0o600)
        url = in_cluster_url or store.url
        config = f"region={objectstore.REGION},s3ForcePathStyle=true,s3Url={url}"
        node_agent = ["--use-node-agent", "--default-volumes-to-fs-backup"]
        if not in_cluster_url:
            node_agent = []
        result = subprocess.run(
            [
                str(binaries.ensure("velero")), "install", "--dry-run", "-o", "json",
                "--kubeconfig", str(kubeconfig), "--namespace", NAMESPACE,
                "--provider", "aws", "--bucket", bucket, "--backup-location-config", config,
                "--secret-file", str(secret_file), "--use-volume-snapshots=false",
                "--image", f"velero/velero:{pinned('velero')}",
                "--plugins", f"velero/velero-plugin-for-aws:{pinned('velero-plugin-for-aws')}",
                *node_agent,
            ],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"velero install --dry-run failed: {result.stderr[-2000:]}")
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    if in_cluster_url:
        return items
    for item in items:
        if item["kind"] == "Deployment":
            item["spec"]["replicas"] = 0
        if item["kind"] == "BackupStorageLocation":
            # The Deployment would mount the Secret as a file; the process reads it by reference.
            item["spec"]["credential"] = {"name": CREDENTIALS_SECRET, "key": "cloud"}
            if read_only:
                item["spec"]["accessMode"] = "ReadOnly"
    return items


def pinned(name: str) -> str:
    return binaries.pinned_version(binaries.TOOLS[name])


@dataclass
class VeleroServer:
    """One `velero server` process for one cluster, backing up to `bucket` on `store`."""

    kubeconfig: Path
    store: objectstore.ObjectStore
    bucket: str
    log_path: Path
    read_only: bool = False
    metrics_port: int = field(default_factory=testing.free_port)
    process: subprocess.Popen[bytes] | None = None
    _workdir: Path | None = None
    _turn: Any = None

    def install(self, kubectl: testing.Kubectl) -> None:
        """Velero's own installation on the cluster (see `install_manifests`)."""
        items = install_manifests(
            self.kubeconfig, self.store, self.bucket, read_only=self.read_only
        )
        crds = [item for item in items if item["kind"] == "CustomResourceDefinition"]
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": crds})
        kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "component=velero"
        )
        rest = [item for item in items if item["kind"] != "CustomResourceDefinition"]
        kubectl.apply({"apiVersion": "v1", "kind": "List", "items": rest})

    def start(self) -> VeleroServer:
        self._take_turn()
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", MANAGER_PORT)) == 0:
                self._release_turn()
                raise RuntimeError(
                    f"port {MANAGER_PORT} is in use: velero server's controller manager binds it"
                    " (no flag moves it), so one velero server runs on a machine at a time"
                )
        self._workdir = Path(tempfile.mkdtemp(prefix="govcloud-velero-"))
        plugins = self._workdir / "plugins"
        plugins.mkdir()
        shutil.copy(binaries.ensure("velero-plugin-for-aws"), plugins / "velero-plugin-for-aws")
        command = [
            str(binaries.ensure("velero")),
            "server",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            NAMESPACE,
            "--plugin-dir",
            str(plugins),
            "--backup-sync-period",
            "2s",
            "--store-validation-frequency",
            "5s",
            "--metrics-address",
            f"127.0.0.1:{self.metrics_port}",
            "--profiler-address",
            "",
            "--log-format",
            "json",
        ]
        # Velero reads the credential Secret into a file under its working folder.
        env = {**os.environ, "HOME": str(self._workdir), "TMPDIR": str(self._workdir)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self._workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def _take_turn(self) -> None:
        """Wait for the machine's one velero server slot (its manager binds a fixed port), so
        that tests on several workers run their servers one after another, not into a clash."""
        lock_path = binaries.cache_dir() / "velero-server.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a")
        deadline = time.monotonic() + TURN_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise RuntimeError(
                        f"no turn to run a velero server within {TURN_TIMEOUT:.0f} s: another"
                        f" test holds {lock_path}"
                    ) from None
                time.sleep(0.2)
        self._turn = handle

    def _release_turn(self) -> None:
        if self._turn is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._turn, fcntl.LOCK_UN)
            self._turn.close()
            self._turn = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._release_turn()
