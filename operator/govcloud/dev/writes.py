"""Test writes straight to the API server: the common `kubectl` write commands, without a process.

A kubectl process costs 80–150 ms of CPU (most of it before the request), and the integration
suite runs thousands of them on a 2-core machine. `run` carries out the forms the tests use
most as the admin of the kubeconfig, with kubectl's results (exit code, `Error from server
(Reason): message` on stderr); anything else — other verbs or flags, impersonation, an apply
that would update an object (kubectl's three-way merge) — returns None and kubectl runs it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from govcloud.dev import reads

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DELETE_WAIT_SECONDS = 7 * 24 * 3600.0  # kubectl's default when --timeout is 0 or not given
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_VALUED = frozenset({"-n", "--namespace", "-p", "--patch", "--type", "--timeout", "--subresource"})
_SWITCHES = {
    "--wait": "wait",
    "--ignore-not-found": "ignore_not_found",
    "--overwrite": "overwrite",
}

Result = subprocess.CompletedProcess[str]


@dataclass
class Command:
    """A kubectl command line split into its words and the flags this module knows."""

    words: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    switches: dict[str, bool] = field(default_factory=dict)


def parse(args: Sequence[str]) -> Command | None:
    """The command, or None when it has a flag this module does not carry out."""
    command = Command()
    rest = list(args)
    while rest:
        word = rest.pop(0)
        if not word.startswith("-"):
            command.words.append(word)
            continue
        flag, has_value, value = word.partition("=")
        if flag in _VALUED:
            if not has_value:
                if not rest:
                    return None
                value = rest.pop(0)
            command.values[{"--namespace": "-n", "--patch": "-p"}.get(flag, flag)] = value
        elif flag in _SWITCHES and value in ("", "true", "false"):
            command.switches[_SWITCHES[flag]] = value != "false"
        elif flag == "-f" and not has_value and rest[:1] == ["-"]:
            command.values["-f"] = rest.pop(0)
        else:
            return None
    return command


def run(reader: reads.Reader, args: Sequence[str], stdin: str | None) -> Result | None:
    """kubectl's outcome of `args`, or None when kubectl must run them."""
    command = parse(args)
    if command is None or not command.words:
        return None
    verb = command.words[0]
    if verb == "apply" and command.values.get("-f") == "-" and stdin is not None:
        return _create_all(reader, command, args, stdin)
    if verb == "create" and command.words[1:2] == ["namespace"] and len(command.words) == 3:
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": command.words[2]}}
        return _create_all(reader, command, args, json.dumps(manifest), annotate=False)
    handler = {"delete": _delete, "annotate": _annotate, "label": _annotate, "patch": _patch}
    return handler[verb](reader, command, args) if verb in handler else None


def _delete(reader: reads.Reader, command: Command, args: Sequence[str]) -> Result | None:
    if len(command.words) < 3 or set(command.values) - {"-n", "--timeout"}:
        return None
    resource = reader.resolve(command.words[1])
    if resource is None:
        return None
    namespace = command.values.get("-n")
    lines, errors = [], []
    for name in command.words[2:]:
        path = resource.path(namespace or "default", name)
        status, body = reader.request("DELETE", path, {"propagationPolicy": "Background"})
        if status == 404:
            if not command.switches.get("ignore_not_found"):
                errors.append(_server_error(body))
            continue
        if status >= 300:
            errors.append(_server_error(body))
            continue
        lines.append(f'{_kind_name(resource)} "{name}" deleted')
        if command.switches.get("wait", True) and not _gone(reader, path, command):
            errors.append(f"error: timed out waiting for the condition on {resource.plural}/{name}")
    return _result(args, lines, errors)


def _gone(reader: reads.Reader, path: str, command: Command) -> bool:
    timeout = _seconds(command.values.get("--timeout", "0s")) or DELETE_WAIT_SECONDS
    deadline = time.monotonic() + timeout
    while reader.request("GET", path)[0] != 404:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _annotate(reader: reads.Reader, command: Command, args: Sequence[str]) -> Result | None:
    verb = command.words[0]
    if len(command.words) < 4 or set(command.values) - {"-n"} or "=" in command.words[2]:
        return None
    resource = reader.resolve(command.words[1])
    changes = _changes(command.words[3:])
    if resource is None or changes is None:
        return None
    path = resource.path(command.values.get("-n") or "default", command.words[2])
    status, found = reader.request("GET", path)
    if status >= 300:
        return _result(args, [], [_server_error(found)])
    field_name = "annotations" if verb == "annotate" else "labels"
    current = (found.get("metadata") or {}).get(field_name) or {}
    clash = [
        key
        for key, value in changes.items()
        if value is not None and current.get(key, value) != value
    ]
    if clash and not command.switches.get("overwrite"):
        key = clash[0]
        message = f"error: '{key}' already has a value ({current[key]}), and --overwrite is false"
        return _result(args, [], [message])
    patch = {"metadata": {field_name: changes}}  # as kubectl sends it: no resourceVersion
    status, body = reader.request("PATCH", path, body=patch, content_type=PATCH_TYPES["merge"])
    if status >= 300:
        return _result(args, [], [_server_error(body)])
    done = "annotated" if verb == "annotate" else "labeled"
    return _result(args, [f"{_kind_name(resource)}/{command.words[2]} {done}"], [])


def _changes(words: Sequence[str]) -> dict[str, str | None] | None:
    """`key=value` sets, `key-` removes; None for anything else."""
    changes: dict[str, str | None] = {}
    for word in words:
        if word.endswith("-") and "=" not in word:
            changes[word[:-1]] = None
            continue
        key, equals, value = word.partition("=")
        if not equals:
            return None
        changes[key] = value
    return changes


def _patch(reader: reads.Reader, command: Command, args: Sequence[str]) -> Result | None:
    patch_type = command.values.get("--type")
    if len(command.words) != 3 or "-p" not in command.values or patch_type not in PATCH_TYPES:
        return None
    if set(command.values) - {"-n", "-p", "--type", "--subresource"}:
        return None
    resource = reader.resolve(command.words[1])
    if resource is None:
        return None
    path = resource.path(command.values.get("-n") or "default", command.words[2])
    if subresource := command.values.get("--subresource"):
        path += f"/{subresource}"
    try:
        body = json.loads(command.values["-p"])
    except ValueError:
        body = yaml.safe_load(command.values["-p"])
    status, answer = reader.request(
        "PATCH", path, body=body, content_type=PATCH_TYPES[str(patch_type)]
    )
    if status >= 300:
        return _result(args, [], [_server_error(answer)])
    return _result(args, [f"{_kind_name(resource)}/{command.words[2]} patched"], [])


def _create_all(
    reader: reads.Reader, command: Command, args: Sequence[str], text: str, annotate: bool = True
) -> Result | None:
    """Create each object of `text` as kubectl's apply would, when none of them exists yet."""
    if set(command.values) - {"-n", "-f"} or command.switches:
        return None
    planned = []
    for manifest in _objects(text):
        resource = reader.resolve(manifest.get("kind", "")) if manifest.get("kind") else None
        metadata = manifest.get("metadata") or {}
        if resource is None or not metadata.get("name") or metadata.get("generateName"):
            return None
        namespace = metadata.get("namespace") or command.values.get("-n") or "default"
        if reader.request("GET", resource.path(namespace, metadata["name"]))[0] != 404:
            return None  # an update: kubectl's three-way merge
        planned.append((resource, namespace, manifest))
    lines, errors = [], []
    for resource, namespace, manifest in planned:
        body = _with_last_applied(manifest) if annotate else manifest
        if resource.namespaced:
            body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        status, answer = reader.request("POST", resource.path(namespace), body=body)
        if status == 409 and len(planned) == 1:
            return None  # created meanwhile by someone else: kubectl's apply updates it
        if status >= 300:
            errors.append(_server_error(answer, when='error when creating "STDIN": '))
        else:
            lines.append(f"{_kind_name(resource)}/{manifest['metadata']['name']} created")
    return _result(args, lines, errors)


def _objects(text: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for document in yaml.safe_load_all(text):
        if not isinstance(document, dict):
            continue
        if document.get("kind") == "List":
            found.extend(item for item in document.get("items") or [] if isinstance(item, dict))
        else:
            found.append(document)
    return found


def _with_last_applied(manifest: dict[str, Any]) -> dict[str, Any]:
    """What kubectl apply creates: the object annotated with the configuration it applied."""
    metadata = dict(manifest.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    applied = {**manifest, "metadata": {**metadata, "annotations": annotations}}
    annotations.pop(LAST_APPLIED, None)
    if not annotations:
        applied["metadata"].pop("annotations")
    annotations = {**annotations, LAST_APPLIED: json.dumps(applied, separators=(",", ":")) + "\n"}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def _kind_name(resource: reads.Resource) -> str:
    kind = resource.kind.lower()
    return f"{kind}.{resource.group}" if resource.group else kind


def _server_error(body: dict[str, Any], when: str = "") -> str:
    reason = body.get("reason") or "Unknown"
    return f"Error from server ({reason}): {when}{body.get('message') or body}"


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return float(text) if text.replace(".", "", 1).isdigit() else 0.0


def _result(args: Sequence[str], lines: list[str], errors: list[str]) -> Result:
    stdout = "".join(f"{line}\n" for line in lines)
    stderr = "".join(f"{error}\n" for error in errors)
    return subprocess.CompletedProcess(["kubectl", *args], 1 if errors else 0, stdout, stderr)
