"""Helpers shared by integration tests, e2e and benchmarks: kubectl, polling, the operator."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from govcloud.dev import binaries, reads, writes

T = TypeVar("T")
REPO_ROOT = binaries.REPO_ROOT
CRD_DIR = Path(os.environ.get("GOVCLOUD_CRD_DIR", str(REPO_ROOT / "crds")))


class WaitTimeoutError(AssertionError):
    """A condition did not hold before its deadline."""


def eventually(
    check: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.2
) -> T:
    """Poll `check` until it returns something truthy; raise WaitTimeoutError on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what or check}; last: {last!r}"
            )
        time.sleep(interval)


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig, optionally impersonating someone."""

    kubeconfig: Path
    as_user: str | None = None
    as_groups: Sequence[str] = ()

    def impersonate(self, user: str, *groups: str) -> Kubectl:
        return Kubectl(self.kubeconfig, user, groups)

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = ["kubectl", f"--kubeconfig={self.kubeconfig}"]
        if self.as_user:
            argv.append(f"--as={self.as_user}")
        argv += [f"--as-group={group}" for group in self.as_groups]
        return [*argv, *args]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        reader = self._reader()
        if reader is not None and (done := writes.run(reader, args, stdin)) is not None:
            return done
        return subprocess.run(
            self._argv(args), input=stdin, capture_output=True, text=True, check=False, timeout=120
        )

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        if args[:1] == ("get",) and (found := self._read(args[1:])) is not None:
            return found
        return json.loads(self(*args, "-o", "json"))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        reader = self._reader()
        if reader is not None and (resource := reader.resolve(kind)) is not None:
            return reader.get(resource, name, namespace)
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        result = self.run(*args)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise AssertionError(f"kubectl get {kind} {name} failed: {result.stderr.strip()}")
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    def _reader(self) -> reads.Reader | None:
        """Reads go straight to the API server, except impersonated ones: kubectl does those."""
        if self.as_user or self.as_groups or not self.kubeconfig.exists():
            return None
        return reads.reader_for(self.kubeconfig)

    def _read(self, args: Sequence[str]) -> dict[str, Any] | None:
        """`get KIND [NAME] [-n NS | -A] [-l SELECTOR]` read directly; None for anything else."""
        reader = self._reader()
        if reader is None or not args:
            return None
        kind, rest = args[0], list(args[1:])
        name = rest.pop(0) if rest and not rest[0].startswith("-") else None
        options: dict[str, str] = {}
        while rest:
            flag = rest.pop(0)
            if flag == "-A":
                options[flag] = ""
            elif flag in ("-n", "-l") and rest:
                options[flag] = rest.pop(0)
            else:
                return None
        resource = reader.resolve(kind)
        if resource is None or ("-A" in options and (name or "-n" in options)):
            return None
        namespace = None if "-A" in options else options.get("-n", "default")
        if name is not None:
            if "-l" in options:
                return None
            found = reader.get(resource, name, namespace)
            if found is None:
                raise AssertionError(f"kubectl get {kind} {name} failed: NotFound")
            return found
        return reader.collection(resource, namespace, options.get("-l"))

    def apply(self, manifest: dict[str, Any] | str) -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "-f", "-", stdin=text)

    def apply_crds(self, folder: Path = CRD_DIR) -> None:
        self("apply", "--server-side", "--force-conflicts", "-f", str(folder))
        self("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OperatorProcess:
    """The real operator (`python -m govcloud`) as a child process against one kubeconfig."""

    kubeconfig: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        environment = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "GOVCLOUD_STANDALONE": "true",
            "GOVCLOUD_METRICS_PORT": str(self.metrics_port),
            "GOVCLOUD_METRICS_HOST": "127.0.0.1",
            "GOVCLOUD_LIVENESS_PORT": "0",
            **self.env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "govcloud", *self.args],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        eventually(self._serving, timeout=60, what="the operator's /metrics endpoint")
        return self

    def _serving(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            return bool(self.metrics())
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def metric_value(self, name: str, **labels: str) -> float:
        """The sum of every sample of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, label_text = series.partition("{")
            if metric != name:
                continue
            if all(f'{key}="{want}"' in label_text for key, want in labels.items()):
                total += float(value)
        return total

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def operator_running(kubeconfig: Path, log_path: Path, **env: str) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kubeconfig, log_path, env=dict(env)).start()
    try:
        yield process
    finally:
        process.stop()


def json_text(manifest: Any) -> str:
    """A manifest as the JSON text kubectl reads from stdin."""
    return json.dumps(manifest)
