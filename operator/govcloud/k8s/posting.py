"""Kubernetes Events about the operator's objects, posted from one background thread.

A pass (on a reconcile thread) or a handler (on the loop) only enqueues: posting never holds
either up, and an Event that cannot be posted is logged and dropped, never retried forever.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from govcloud.k8s import client

log = logging.getLogger(__name__)

Manifest = dict[str, Any]
MAX_MESSAGE = 1024
BACKLOG = 10_000
NAME_PREFIX = "govcloud-event-"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def home_namespace() -> str:
    """Where Events about cluster-scoped objects go: the operator's own namespace when it runs
    in a pod (as kopf did), else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def event_manifest(
    obj: Manifest,
    type_: str,
    reason: str,
    message: str,
    *,
    component: str,
    instance: str,
    default_namespace: str,
    now: datetime | None = None,
) -> Manifest:
    """A core/v1 Event about `obj` (in its namespace, else `default_namespace`)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or default_namespace
    involved = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": metadata.get("name"),
        "namespace": namespace,
        **({"uid": metadata["uid"]} if metadata.get("uid") else {}),
    }
    stamp = (now or datetime.now(UTC)).isoformat()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": namespace, "generateName": NAME_PREFIX},
        "type": type_,
        "reason": reason,
        "message": shorten(message),
        "action": reason,
        "reportingComponent": component,
        "reportingInstance": instance,
        "source": {"component": component},
        "involvedObject": involved,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": stamp,
        "count": 1,
    }


def shorten(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    half = (MAX_MESSAGE - 3) // 2
    return f"{message[:half]}...{message[-half:]}"


class Poster:
    """A queue of Events and the one thread that creates them."""

    def __init__(
        self,
        cluster: client.Cluster,
        *,
        component: str,
        instance: str,
        default_namespace: str | None = None,
    ) -> None:
        self._cluster = cluster
        self._component = component
        self._instance = instance
        self._default_namespace = default_namespace or home_namespace()
        self._queue: queue.Queue[Manifest | None] = queue.Queue(maxsize=BACKLOG)
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def post(self, obj: Manifest, type_: str, reason: str, message: str) -> None:
        manifest = event_manifest(
            obj,
            type_,
            reason,
            message,
            component=self._component,
            instance=self._instance,
            default_namespace=self._default_namespace,
        )
        try:
            self._queue.put_nowait(manifest)
        except queue.Full:
            self.dropped += 1
            log.warning("too many Events waiting; dropped %s %s", reason, manifest["metadata"])

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="events", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Post what is queued (for up to `timeout` seconds), then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            manifest = self._queue.get()
            if manifest is None:
                return
            try:
                self._cluster.create(manifest)
            except Exception as error:  # an Event is best effort; the operator goes on
                log.warning(
                    "could not post Event %s about %s %s: %s",
                    manifest["reason"],
                    manifest["involvedObject"].get("kind"),
                    manifest["involvedObject"].get("name"),
                    getattr(error, "status", type(error).__name__),
                )
