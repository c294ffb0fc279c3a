"""Logging setup: no HTTP body and no credential reaches a log line, even with --verbose."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import Configuration, rest

from govcloud import logs

KEY_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAv1kEYmaTERIALthatMustNeverBeLogged\n"
    "-----END RSA PRIVATE KEY-----\n"
)
TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9"
    ".eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06cHJvYmUifQ"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)
KUBECONFIG = (
    "users:\n- name: admin\n  user:\n"
    f"    client-key-data: {base64.b64encode(KEY_PEM.encode()).decode()}\n"
    f"    token: {TOKEN}\n"
)
SECRET_BODY = json.dumps(
    {
        "kind": "Secret",
        "metadata": {"name": "feixi-kubeconfig"},
        "data": {"kubeconfig": base64.b64encode(KUBECONFIG.encode()).decode()},
    }
).encode()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A buffer the operator's log goes to; root logging and the pinned loggers restored after."""
    root = logging.getLogger()
    names = (*logs.BODY_LOGGERS, "kopf.objects")
    level, handlers = root.level, root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in names}
    yield io.StringIO()
    root.setLevel(level)
    root.handlers = handlers
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
    logging.getLogger("kopf.objects").filters = []


def _get_secret_through_the_rest_client() -> None:
    """What CoreV1Api does for a Secret GET: the kubernetes client's REST layer, body preloaded."""
    client = rest.RESTClientObject(Configuration())
    response = SimpleNamespace(status=200, reason="OK", data=SECRET_BODY, headers={})
    client.pool_manager = SimpleNamespace(request=lambda *args, **kwargs: response)  # type: ignore[assignment]
    client.request("GET", "https://hub:6443/api/v1/namespaces/govcloud-system/secrets/x")


def _leaks(text: str) -> list[str]:
    encoded = base64.b64encode(KUBECONFIG.encode()).decode()
    pieces = [
        encoded[:40],
        TOKEN,
        "MIIEowIBAAKCAQEAv1kEYmaTERIAL",
        base64.b64encode(KEY_PEM.encode()).decode()[:40],
    ]
    return [piece[:12] for piece in pieces if piece in text]


def test_without_the_pin_debug_logging_prints_a_secrets_body(captured: io.StringIO) -> None:
    """Why the pin exists: plain DEBUG logging (what --verbose did) prints response bodies."""
    handler = logging.StreamHandler(captured)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    _get_secret_through_the_rest_client()
    assert "response body" in captured.getvalue()
    assert _leaks(captured.getvalue())


def test_verbose_logging_never_prints_a_response_body(captured: io.StringIO) -> None:
    logs.setup(verbose=True, stream=captured)
    assert logging.getLogger().level == logging.DEBUG
    _get_secret_through_the_rest_client()
    logging.getLogger("govcloud.test").debug("debug lines still show")
    text = captured.getvalue()
    assert "debug lines still show" in text
    assert "response body" not in text
    assert not _leaks(text)


@pytest.mark.parametrize("name", logs.BODY_LOGGERS)
def test_body_loggers_stay_at_warning_with_verbose(captured: io.StringIO, name: str) -> None:
    logs.setup(verbose=True, stream=captured)
    assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING


def test_credentials_that_reach_a_log_line_anyway_are_redacted(captured: io.StringIO) -> None:
    logs.setup(verbose=True, stream=captured)
    log = logging.getLogger("govcloud.test")
    log.warning("kubeconfig %s", KUBECONFIG)
    log.warning("headers {'Authorization': 'Bearer %s'}", "opaque-token-value-123")
    log.warning("secret data %s", SECRET_BODY.decode())
    try:
        raise ValueError(f"bad key {KEY_PEM}")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    assert not _leaks(text), text
    assert "opaque-token-value-123" not in text
    assert "<redacted>" in text
    assert "failed" in text
    assert "ValueError" in text


@pytest.mark.parametrize(
    "message",
    [
        "SubCenter feixi: Ready (3 nodes, 12 cores)",
        "CloudTenant city-transport: quota requests.cpu 8 -> 6",
        "credentials rotated (fingerprint sha256:" + "ab" * 32 + ")",
        "resync every 5 s; tokens: none",
    ],
)
def test_ordinary_messages_are_left_alone(message: str) -> None:
    assert logs.redact(message) == message


def test_kopf_object_logs_which_become_events_are_redacted_too(captured: io.StringIO) -> None:
    logs.setup(verbose=False, stream=captured)
    record: Any = logging.LogRecord(
        "kopf.objects", logging.WARNING, "x", 1, "got %s", (TOKEN,), None
    )
    for item in logging.getLogger("kopf.objects").filters:
        assert isinstance(item, logging.Filter)
        item.filter(record)
    assert TOKEN not in record.getMessage()
