"""A real local control plane on loopback: etcd, API server, controller-manager, scheduler, kwok.

Tests, e2e and the demo all start clusters through `ControlPlane`. Several can run at once
(a hub and a sub-center) because every port is chosen free and every file lives in the
cluster's own state folder. A cluster stops exactly the processes it started; one left
behind by a killed run is found through its state file and stopped before a new start.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from govcloud.dev import binaries, pki

# The controllers a local control plane runs: what the operator, its tests, the demo and the
# bench rely on (namespaces and their deletion, the node lifecycle, which lifts the not-ready
# taint from new kwok nodes, quota, owner references, the workload controllers a migration or a
# refused replica needs, volume claims bound to their volumes and released on deletion, service
# accounts and their tokens, the aggregated admin/edit/view roles, the root CA ConfigMap). The
# others (attaching volumes, endpoints, autoscaling, CronJob runs...) only cost CPU here: an
# idle control plane with all of them burns about 2.5 % of a core more, and the tests run
# eight or more at once.
CONTROLLERS = (
    "namespace-controller",
    "node-lifecycle-controller",
    "resourcequota-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
)
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"  # in the log lines a component's exit error quotes
SERVICE_CIDR = "10.0.0.0/24"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


class ClusterError(RuntimeError):
    """The control plane could not start; the message says why and what to do."""


def default_state_root() -> Path:
    configured = os.environ.get("GOVCLOUD_CLUSTER_DIR")
    return Path(configured) if configured else Path.cwd() / ".cache" / "clusters"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise ClusterError(
                f"port {port} on 127.0.0.1 is already in use ({error.strerror}); "
                "stop whatever listens there or choose another port"
            ) from error


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the launcher dies (no leftovers)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, its parent gone, never reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _terminate_pids(pids: Iterable[int], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every pid at once, wait on one shared deadline, then SIGKILL what is left."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _stop_processes(processes: list[subprocess.Popen[bytes]], deadline: float) -> None:
    """SIGTERM them all at once, wait until the shared deadline, then SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int


@dataclass
class ControlPlane:
    """One local Kubernetes cluster; use as a context manager or call start()/stop()."""

    name: str = "hub"
    state_root: Path = field(default_factory=default_state_root)
    apiserver_port: int | None = None
    kwok_nodes: int = 1
    tie_to_parent: bool = True
    log: Callable[[str], None] = print
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: Ports | None = None

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def server(self) -> str:
        if self.ports is None:
            raise ClusterError(f"cluster {self.name!r} is not started")
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every component and return once the cluster serves and a node is Ready."""
        paths = binaries.ensure_all((*binaries.CONTROL_PLANE, "kwok"))
        clean_stale(self.state_dir, self.log)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        if self.apiserver_port is not None:
            require_free(self.apiserver_port)
        certs = pki.generate(self.state_dir / "pki")
        try:
            self._start_serving(paths, certs)
            self._spawn(
                "kube-controller-manager",
                self._controller_manager_args(paths["kube-controller-manager"], certs),
            )
            self._spawn("kube-scheduler", self._scheduler_args(paths["kube-scheduler"]))
            self._spawn("kwok", self._kwok_args(paths["kwok"]))
            self._create_kwok_nodes()
            self._wait_for(self._default_service_account_exists, "controller-manager", 60.0)
        except BaseException:
            self.stop()
            raise
        self.log(f"cluster {self.name!r} ready at {self.server} (KUBECONFIG={self.kubeconfig})")

    def _start_serving(self, paths: Mapping[str, Path], certs: pki.Pki) -> None:
        """etcd and kube-apiserver on free ports. Another process (a parallel test worker
        starting its own cluster) may take a port between our pick and their bind: a port
        found taken means fresh ports and a fresh etcd, up to PORT_ATTEMPTS times."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.ports = Ports(free_port(), free_port(), self.apiserver_port or free_port())
            self._write_kubeconfig(certs)
            try:
                self._spawn("etcd", self._etcd_args(paths["etcd"]))
                self._wait_for(self._etcd_healthy, "etcd", 30.0)
                self._spawn("kube-apiserver", self._apiserver_args(paths["kube-apiserver"], certs))
                self._wait_for(lambda: self._readyz(certs), "kube-apiserver /readyz", READY_TIMEOUT)
                return
            except ClusterError as error:
                if attempt == PORT_ATTEMPTS or PORT_TAKEN not in str(error):
                    raise
                self.log(f"cluster {self.name!r}: a port was taken meanwhile; trying others")
                self.stop()
                shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)

    def stop(self) -> None:
        """Stop exactly the processes this cluster started: etcd last, once nothing uses it."""
        # kube-apiserver drains in about a second while etcd answers, but waits out the whole
        # timeout when etcd went first, so etcd gets its SIGTERM only after the others are gone.
        processes, self.processes = self.processes, {}
        deadline = time.monotonic() + STOP_TIMEOUT
        _stop_processes(
            [process for name, process in processes.items() if name != "etcd"], deadline
        )
        _stop_processes(
            [process for name, process in processes.items() if name == "etcd"], deadline
        )
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def flat_kubeconfig(self) -> str:
        """The admin kubeconfig with certificates embedded, as a sub-center Secret holds it."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        cluster["certificate-authority-data"] = _b64_file(cluster.pop("certificate-authority"))
        user = config["users"][0]["user"]
        user["client-certificate-data"] = _b64_file(user.pop("client-certificate"))
        user["client-key-data"] = _b64_file(user.pop("client-key"))
        return str(yaml.safe_dump(config))

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.state_dir / "logs" / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Only prctl runs between fork and exec: nothing that could deadlock on a lock.
                preexec_fn=_die_with_parent if self.tie_to_parent else None,  # noqa: PLW1509
                start_new_session=not self.tie_to_parent,
            )
        self.processes[name] = process
        self._save_state()

    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "server": self.server if self.ports else None,
            "kubeconfig": str(self.kubeconfig),
            "pids": {name: process.pid for name, process in self.processes.items()},
        }
        self.state_file.write_text(json.dumps(state, indent=2))

    def _wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_if_exited()
            if check():
                return
            time.sleep(0.2)
        raise ClusterError(
            f"{what} of cluster {self.name!r} not ready after {timeout:.0f}s; "
            f"logs are in {self.state_dir / 'logs'}"
        )

    def _raise_if_exited(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                tail = _tail(self.state_dir / "logs" / f"{name}.log")
                raise ClusterError(
                    f"{name} of cluster {self.name!r} exited with code {code}; last log lines:\n"
                    f"{tail}"
                )

    # -- arguments -------------------------------------------------------------------------

    def _etcd_args(self, binary: Path) -> list[str]:
        assert self.ports is not None
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            str(binary),
            f"--name={self.name}",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.name}={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_args(self, binary: Path, certs: pki.Pki) -> list[str]:
        assert self.ports is not None
        return [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={certs.serving.cert}",
            f"--tls-private-key-file={certs.serving.key}",
            f"--client-ca-file={certs.ca.cert}",
            f"--service-account-key-file={certs.service_account_pub}",
            f"--service-account-signing-key-file={certs.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--cert-dir={self.state_dir / 'pki'}",
            f"--audit-policy-file={self._write_audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--v=0",
        ]

    @property
    def audit_log(self) -> Path:
        """Every write any client made, as JSON lines: how tests count the operator's writes."""
        return self.state_dir / "logs" / "audit.log"

    def _write_audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [
                {"level": "Metadata", "verbs": list(WRITE_VERBS)},
                # Reads of Secrets too: tests prove who never read a Secret (no bodies logged).
                {"level": "Metadata", "verbs": ["get"], "resources": [{"resources": ["secrets"]}]},
                {"level": "None"},
            ],
        }
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def audit_events(self) -> list[dict[str, object]]:
        """The audit log's write events so far (stage ResponseComplete)."""
        return [event for event in self._audited() if event.get("verb") in WRITE_VERBS]

    def secret_reads(self) -> list[dict[str, object]]:
        """The audit log's GETs of Secrets so far (stage ResponseComplete)."""
        return [event for event in self._audited() if event.get("verb") == "get"]

    def _audited(self) -> list[dict[str, object]]:
        if not self.audit_log.exists():
            return []
        events: list[dict[str, object]] = []
        for line in self.audit_log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("stage") == "ResponseComplete":
                    events.append(event)
        return events

    def _controller_manager_args(self, binary: Path, certs: pki.Pki) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--service-account-private-key-file={certs.service_account_key}",
            f"--root-ca-file={certs.ca.cert}",
            f"--cluster-signing-cert-file={certs.ca.cert}",
            f"--cluster-signing-key-file={certs.ca.key}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--secure-port=0",
            "--concurrent-namespace-syncs=5",
            f"--controllers={','.join(CONTROLLERS)}",
            "--v=0",
        ]

    def _scheduler_args(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=0",
        ]

    def _kwok_args(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.244.0.1",
            "--node-lease-duration-seconds=40",
            f"--config={binaries.kwok_stages()}",
        ]

    # -- files and probes ------------------------------------------------------------------

    def _write_kubeconfig(self, certs: pki.Pki) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.name,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(certs.ca.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(certs.admin.cert),
                        "client-key": str(certs.admin.key),
                    },
                }
            ],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "admin"}}],
            "current-context": self.name,
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _ssl_context(self, certs: pki.Pki) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(certs.ca.cert))
        context.load_cert_chain(str(certs.admin.cert), str(certs.admin.key))
        return context

    def _get(self, path: str, certs: pki.Pki) -> tuple[int, bytes]:
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(
                request, context=self._ssl_context(certs), timeout=5
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except (urllib.error.URLError, OSError):
            return 0, b""

    def _readyz(self, certs: pki.Pki) -> bool:
        status, _ = self._get("/readyz", certs)
        return status == 200

    def _etcd_healthy(self) -> bool:
        assert self.ports is not None
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports.etcd_client}/health", timeout=2
            ) as response:
                return b"true" in response.read()
        except (urllib.error.URLError, OSError):
            return False

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """Run kubectl against this cluster and return stdout; raise with stderr on failure."""
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _create_kwok_nodes(self) -> None:
        for index in range(self.kwok_nodes):
            self.kubectl("apply", "-f", "-", input_text=json.dumps(kwok_node(f"kwok-{index}")))

    def _default_service_account_exists(self) -> bool:
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", "get", "sa", "default", "-n", "default"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    # -- outages, for tests of how clients of this cluster behave -----------------------------

    def stop_component(self, name: str) -> None:
        """Stop one component (e.g. "kube-apiserver" or "etcd"); the others keep running."""
        process = self.processes[name]
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start_component(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Start a stopped component again with the very arguments it had (ports, certs, data).

        Returns once the API server answers /readyz again.
        """
        process = self.processes[name]
        if process.poll() is None:
            return
        args = process.args
        if not isinstance(args, list):
            raise ClusterError(f"{name} of cluster {self.name!r} was not started by this launcher")
        self._spawn(name, [str(arg) for arg in args])
        self._wait_for(self._answers_readyz, f"{name} restart", timeout)

    def pause_component(self, name: str) -> None:
        """SIGSTOP a component: its sockets still accept connections, nothing is answered."""
        os.kill(self.processes[name].pid, signal.SIGSTOP)

    def resume_component(self, name: str) -> None:
        """SIGCONT a component paused by `pause_component`."""
        os.kill(self.processes[name].pid, signal.SIGCONT)

    def _answers_readyz(self) -> bool:
        folder = self.state_dir / "pki"
        certs = pki.Pki(
            ca=pki.KeyPair(folder / "ca.crt", folder / "ca.key"),
            serving=pki.KeyPair(folder / "apiserver.crt", folder / "apiserver.key"),
            admin=pki.KeyPair(folder / "admin.crt", folder / "admin.key"),
            service_account_key=folder / "sa.key",
            service_account_pub=folder / "sa.pub",
        )
        return self._readyz(certs)


def kwok_node(name: str) -> dict[str, object]:
    """A fake node that kwok keeps Ready, with room for plenty of pods."""
    capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def clean_stale(state_dir: Path, log: Callable[[str], None] = print) -> None:
    """Stop processes that a killed earlier run left behind in this state folder, then wipe it."""
    state_file = state_dir / "state.json"
    if state_file.exists():
        try:
            pids = json.loads(state_file.read_text()).get("pids", {})
        except (OSError, ValueError):
            pids = {}
        # A pid is ours only if its command line names this state folder: pids get reused.
        stale = {
            name: pid
            for name, pid in pids.items()
            if _alive(pid) and str(state_dir) in _cmdline(pid)
        }
        for name, pid in stale.items():
            log(f"stopping {name} (pid {pid}) left running by an earlier run of {state_dir.name!r}")
        # etcd last, as in ControlPlane.stop: kube-apiserver is slow to stop without it.
        _terminate_pids(pid for name, pid in stale.items() if name != "etcd")
        _terminate_pids(pid for name, pid in stale.items() if name == "etcd")
    # Parallel test sessions may sweep the same dead folder at once: gone is gone.
    shutil.rmtree(state_dir, ignore_errors=True)


def sweep_dead_sessions(state_root: Path, prefix: str) -> None:
    """Clean the state folders `<prefix>...-<pid>` whose owning process is gone."""
    if not state_root.is_dir():
        return
    for folder in state_root.iterdir():
        owner = folder.name.rpartition("-")[2]
        if folder.name.startswith(prefix) and owner.isdigit() and not _alive(int(owner)):
            clean_stale(folder, log=lambda _: None)


def _b64_file(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running(name: str = "hub", **options: object) -> Iterator[ControlPlane]:
    """Start a cluster for the duration of a with-block."""
    cluster = ControlPlane(name=name, **options)  # type: ignore[arg-type]
    with cluster:
        yield cluster
