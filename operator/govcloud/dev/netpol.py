"""Who may reach whom under the cluster's NetworkPolicies, computed by cyclonus, not by us.

The local control plane has no network plugin, so a NetworkPolicy there is only an object.
cyclonus (github.com/mattfenwick/cyclonus, pinned under hack/cyclonus) is an independent
implementation of NetworkPolicy semantics: given the policies, the namespaces' labels and the
pods, it says for every source pod, destination pod and port whether a conforming network
plugin lets the connection through. Here it reads every NetworkPolicy from the API server
itself (`analyze -A`); the namespaces and pods it is asked about are read back from the same
API server, so the tables describe the objects the operator really wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govcloud.dev import binaries

# Cell marks of cyclonus's tables: "." allowed, "X" refused, "N" nothing serves that port.
ALLOWED = "."
REFUSED = "X"
NOT_SERVED = "N"
DIRECTIONS = ("Ingress", "Egress", "Combined")


class EngineError(RuntimeError):
    """cyclonus failed or said something this module cannot read."""


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"


@dataclass(frozen=True)
class Table:
    """One port's verdicts: (source pod, destination pod) -> mark, pods named `ns/pod`."""

    port: Port
    ingress: dict[tuple[str, str], str]
    egress: dict[tuple[str, str], str]
    combined: dict[tuple[str, str], str]

    def allowed(self, source: str, destination: str) -> bool:
        """Whether a connection from `source` to `destination` on this port gets through."""
        return self.combined[(source, destination)] == ALLOWED

    def reachable_from(self, source: str) -> set[str]:
        return {dst for (src, dst), mark in self.combined.items() if src == source and mark == "."}


def probe(kubeconfig: Path, namespaces: Sequence[str], ports: Sequence[Port]) -> dict[Port, Table]:
    """The truth table per port for the running pods of `namespaces`, from the real objects."""
    model = {
        "Probes": [{"Port": port.number, "Protocol": port.protocol} for port in ports],
        "Resources": _resources(kubeconfig, namespaces, ports),
    }
    with tempfile.TemporaryDirectory(prefix="govcloud-netpol-") as folder:
        model_path = Path(folder) / "model.json"
        model_path.write_text(json.dumps(model))
        output = _run(kubeconfig, model_path)
    blocks = _blocks(output)
    if len(blocks) < len(ports):
        raise EngineError(
            f"cyclonus printed {len(blocks)} tables for {len(ports)} ports:\n{output}"
        )
    return {port: Table(port, *block) for port, block in zip(ports, blocks, strict=False)}


def _resources(kubeconfig: Path, namespaces: Sequence[str], ports: Sequence[Port]) -> Any:
    """Namespaces with their labels, and their running pods with an IP, as cyclonus models them.

    Each pod is modelled as serving every probed port (one container per port): the tables then
    say what the policies allow, not which ports a test image happens to open."""
    wanted = set(namespaces)
    found = _kubectl_json(kubeconfig, "get", "namespaces")["items"]
    labels = {ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in found}
    missing = wanted - labels.keys()
    if missing:
        raise EngineError(f"namespaces not found: {sorted(missing)}")
    pods = []
    for item in _kubectl_json(kubeconfig, "get", "pods", "--all-namespaces")["items"]:
        namespace = item["metadata"]["namespace"]
        ip = (item.get("status") or {}).get("podIP")
        if namespace not in wanted or not ip:
            continue
        pods.append(
            {
                "Namespace": namespace,
                "Name": item["metadata"]["name"],
                "Labels": item["metadata"].get("labels") or {},
                "IP": ip,
                "Containers": [_container(port) for port in ports],
            }
        )
    return {"Namespaces": {name: labels[name] for name in sorted(wanted)}, "Pods": pods}


def _container(port: Port) -> dict[str, Any]:
    name = f"serve-{port.number}-{port.protocol.lower()}"
    return {"Name": name, "Port": port.number, "Protocol": port.protocol, "PortName": name}


def _kubectl_json(kubeconfig: Path, *args: str) -> Any:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise EngineError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def _run(kubeconfig: Path, model_path: Path) -> str:
    command = [
        str(binaries.ensure("cyclonus")),
        "analyze",
        "--mode",
        "probe",
        "--all-namespaces",
        "--probe-path",
        str(model_path),
        "--verbosity",
        "warn",
    ]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if result.returncode != 0:
        raise EngineError(f"cyclonus failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


Cells = dict[tuple[str, str], str]


def _blocks(output: str) -> list[tuple[Cells, Cells, Cells]]:
    """The (ingress, egress, combined) tables in the order cyclonus printed them."""
    tables = _tables(output)
    if len(tables) % len(DIRECTIONS):
        raise EngineError(f"cyclonus printed {len(tables)} tables, not threes:\n{output}")
    return [
        (tables[index], tables[index + 1], tables[index + 2])
        for index in range(0, len(tables), len(DIRECTIONS))
    ]


_ROW = re.compile(r"^\|(.*)\|\s*$")


def _tables(output: str) -> list[Cells]:
    tables: list[Cells] = []
    header: list[str] | None = None
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.rstrip(":") in DIRECTIONS:
            header = None
            tables.append({})
            continue
        row = _ROW.match(stripped)
        if row is None or not tables:
            continue
        cells = [cell.strip() for cell in row.group(1).split("|")]
        if header is None:
            header = [cell.lower() for cell in cells[1:]]
            continue
        source, marks = cells[0], cells[1:]
        for destination, mark in zip(header, marks, strict=True):
            tables[-1][(source, destination)] = mark
    return tables
