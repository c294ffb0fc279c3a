"""Logging for the operator process: levels, body loggers pinned, credentials redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"

# Loggers that print HTTP request or response bodies (a Secret's data, a kubeconfig) at DEBUG:
# kept at WARNING whatever --verbose says. `client` is the kubernetes client's package logger.
BODY_LOGGERS = (
    "kubernetes",
    "kubernetes.client.rest",
    "kubernetes.dynamic",
    "kubernetes.config",
    "client",
    "urllib3",
    "aiohttp",
)

# Second line of defence, for whatever reaches a log line anyway: known credential shapes.
PATTERNS = (
    # PEM blocks (certificates, keys), raw and base64-encoded ("-----BEGIN" is LS0tLS1CRUdJTi).
    (re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.DOTALL), ""),
    (re.compile(r"LS0tLS1CRUdJT[A-Za-z0-9+/=]*"), ""),
    # Bearer tokens and JWTs (ServiceAccount tokens).
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), ""),
    # kubeconfig credential fields, in YAML, JSON or repr form.
    (
        re.compile(
            r"(?i)((?:client-key-data|client-certificate-data|token|password)['\"]?\s*[:=]\s*['\"]?)"
            r"[^'\"\s,}]+"
        ),
        r"\1",
    ),
    # Long base64 runs (Secret data values): nothing the operator logs on purpose looks like it.
    (re.compile(r"[A-Za-z0-9+/]{80,}={0,2}"), ""),
)


def redact(text: str) -> str:
    """`text` with every known credential shape replaced by <redacted>."""
    for pattern, keep in PATTERNS:
        text = pattern.sub(keep + REDACTED, text)
    return text


class Redactor(logging.Filter):
    """Rewrites each record's message (and traceback) with credentials redacted; drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def setup(verbose: bool, stream: TextIO | None = None) -> None:
    """Root logging at DEBUG (verbose) or INFO; body loggers pinned; every handler redacts."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    pin_body_loggers()
    redactor = Redactor()
    for each in root.handlers:
        each.addFilter(redactor)
    # kopf posts its per-object log lines as Events through a handler of its own on this logger.
    logging.getLogger("kopf.objects").addFilter(redactor)
    if not verbose:
        # kopf logs every successful handler call at INFO; the reconcilers log what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def pin_body_loggers() -> None:
    for name in BODY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
