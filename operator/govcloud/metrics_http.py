"""The /metrics HTTP endpoint: serves an exposition the recorder has already rendered."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLIENT_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_BYTES = 16384


class MetricsServer:
    """A running /metrics endpoint: one thread that answers one connection at a time.

    Every socket call gives up the GIL, and while reconcile threads are busy each one costs a
    turn in the queue for it: this loop makes three (accept, read, write), where http.server's
    threaded server makes several more (select, a thread start, a write per header). A client
    that stalls is cut off after `client_timeout` seconds.
    """

    def __init__(
        self,
        render: Callable[[], bytes],
        port: int,
        host: str,
        client_timeout: float = CLIENT_TIMEOUT_SECONDS,
    ) -> None:
        family, address = _best_family(host, port)
        self._render = render
        self._client_timeout = client_timeout
        self._listener = socket.create_server((address, port), family=family)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stops answering, closes the socket and waits for the serving thread."""
        self._stopping.set()
        self._wake()
        self._thread.join()
        self._listener.close()

    close = shutdown

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError as error:  # out of file descriptors, say: retry, without spinning
                log.warning("/metrics could not accept a connection: %s", error)
                self._stopping.wait(1.0)
                continue
            with connection:
                if not self._stopping.is_set():
                    self._answer(connection)

    def _wake(self) -> None:
        """Connects to the listener, so that the blocking accept returns and sees the stop."""
        address = self._listener.getsockname()[:2]
        try:
            with socket.create_connection(address, timeout=self._client_timeout):
                pass
        except OSError as error:
            log.warning("could not wake the /metrics server to stop it: %s", error)

    def _answer(self, connection: socket.socket) -> None:
        _set_kernel_timeouts(connection, self._client_timeout)
        try:
            head = _read_head(connection, time.monotonic() + self._client_timeout)
            connection.sendall(self._response(head))
            connection.shutdown(socket.SHUT_WR)
        except OSError as error:
            log.debug("a /metrics client went away: %s", error)

    def _response(self, head: bytes) -> bytes:
        if not head.startswith(b"GET "):
            return _reply(405, "Method Not Allowed", b"", ("Allow", "GET"))
        try:
            body = self._render()
        except Exception:
            log.exception("rendering /metrics failed")
            return _reply(500, "Internal Server Error", b"")
        return _reply(200, "OK", body, ("Content-Type", CONTENT_TYPE))


def serve(
    render: Callable[[], bytes],
    port: int,
    host: str,
    client_timeout: float = CLIENT_TIMEOUT_SECONDS,
) -> MetricsServer:
    """Answers every GET (on any path, as prometheus_client's server does) with `render()`."""
    return MetricsServer(render, port, host, client_timeout)


def _reply(status: int, reason: str, body: bytes, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.0 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return "\r\n".join([*lines, "", ""]).encode() + body


def _read_head(connection: socket.socket, deadline: float) -> bytes:
    """The request line and headers (a GET has no body), or what came of them by `deadline`."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_BYTES:
        if time.monotonic() > deadline:
            raise TimeoutError("the request did not arrive in time")
        chunk = connection.recv(MAX_REQUEST_BYTES)
        if not chunk:
            break
        head += chunk
    return head


def _set_kernel_timeouts(connection: socket.socket, seconds: float) -> None:
    """Timeouts the kernel applies to the blocking socket. A Python-level timeout would poll
    before every send of a large body, and each poll is one more turn for the GIL."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _best_family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind `host` with (IPv6 hosts such as "::" too)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, str(address[0])
