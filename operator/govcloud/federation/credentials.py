"""Sub-center credentials (pure): what a kubeconfig holds, what is wrong with it, when it expires.

Nothing here ever puts secret material (tokens, keys, certificates, passwords) into a message:
problems name the kubeconfig entry and the field, never its value, and `redact` is the last
line of defence for text that comes from elsewhere (exceptions, API answers).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import yaml
from cryptography import exceptions, x509
from cryptography.hazmat.primitives import serialization

from govcloud.federation import condition
from govcloud.federation.condition import Condition

FLATTEN_HINT = (
    "embed it with `kubectl config view --raw --minify --flatten` before storing the kubeconfig"
    " in the Secret"
)


EXPIRED = "Expired"  # reason of CredentialExpiring and CredentialsValid once expired


class CredentialKind(StrEnum):
    """What a kubeconfig user authenticates with."""

    CLIENT_CERTIFICATE = "ClientCertificate"
    BEARER_TOKEN = "BearerToken"


@dataclasses.dataclass(frozen=True)
class Credential:
    """The credential of a kubeconfig's context, and its expiry when it can be read."""

    kind: CredentialKind
    expires_at: datetime | None = None
    subject: str | None = None  # who it authenticates as (certificate subject, JWT sub)
    note: str = ""  # why the expiry is unknown, if it is

    def describe(self) -> str:
        """A short, secret-free description, e.g. "client certificate CN=hub,O=govcloud"."""
        what = {
            CredentialKind.CLIENT_CERTIFICATE: "client certificate",
            CredentialKind.BEARER_TOKEN: "bearer token",
        }[self.kind]
        return f"{what} {self.subject}" if self.subject else what


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message is safe to show (it holds no secrets)."""


@dataclasses.dataclass(frozen=True)
class ExpiryVerdict:
    """CredentialExpiring, and CredentialsValid=False when the credential has already expired."""

    expiring: Condition
    invalid: Condition | None = None


def parse_kubeconfig(text: str | bytes) -> dict[str, Any]:
    """The kubeconfig document; KubeconfigError (saying only where) if it is not a YAML mapping.

    YAML's own errors quote the offending line, which may be a key or a token; they are never
    passed on.
    """
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise KubeconfigError(f"the kubeconfig is not valid YAML{where}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise KubeconfigError("the kubeconfig is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise KubeconfigError(_NOT_A_MAPPING)
    return loaded


_NOT_A_MAPPING = "the kubeconfig is not a YAML mapping with clusters, users and contexts"


@dataclasses.dataclass(frozen=True)
class _Resolved:
    """The entries a context points at, or the problems that stop us from finding them."""

    context: str | None = None
    cluster_name: str | None = None
    cluster: Mapping[str, Any] | None = None
    user_name: str | None = None
    user: Mapping[str, Any] | None = None
    problems: tuple[str, ...] = ()


def _entries(data: Mapping[str, Any], section: str) -> dict[str, Mapping[str, Any]]:
    """name -> body of the named entries of clusters/users/contexts (malformed ones skipped)."""
    inner = section.removesuffix("s")
    found: dict[str, Mapping[str, Any]] = {}
    items = data.get(section)
    if not isinstance(items, list):
        return found
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            body = item.get(inner)
            found[item["name"]] = body if isinstance(body, Mapping) else {}
    return found


def _names(entries: Mapping[str, Any]) -> str:
    return ", ".join(sorted(entries)) or "none"


def _resolve(data: object, context: str | None) -> _Resolved:
    if not isinstance(data, Mapping):
        return _Resolved(problems=(_NOT_A_MAPPING,))
    contexts = _entries(data, "contexts")
    name = context or data.get("current-context")
    if not isinstance(name, str) or not name:
        return _Resolved(
            problems=(
                "the kubeconfig has no current-context; set current-context to one of its"
                f" contexts ({_names(contexts)})",
            )
        )
    if name not in contexts:
        return _Resolved(
            context=name,
            problems=(
                f"context {name!r} is not among the kubeconfig's contexts ({_names(contexts)})",
            ),
        )
    body = contexts[name]
    problems: list[str] = []
    cluster_name, user_name = body.get("cluster"), body.get("user")
    clusters, users = _entries(data, "clusters"), _entries(data, "users")
    cluster = user = None
    if not isinstance(cluster_name, str) or not cluster_name:
        problems.append(f"context {name!r} names no cluster")
    elif cluster_name not in clusters:
        problems.append(
            f"context {name!r} uses cluster {cluster_name!r}, which is not among the kubeconfig's"
            f" clusters ({_names(clusters)})"
        )
    else:
        cluster = clusters[cluster_name]
    if not isinstance(user_name, str) or not user_name:
        problems.append(f"context {name!r} names no user, so it holds no credentials")
    elif user_name not in users:
        problems.append(
            f"context {name!r} uses user {user_name!r}, which is not among the kubeconfig's"
            f" users ({_names(users)})"
        )
    else:
        user = users[user_name]
    return _Resolved(
        context=name,
        cluster_name=cluster_name if isinstance(cluster_name, str) else None,
        cluster=cluster,
        user_name=user_name if isinstance(user_name, str) else None,
        user=user,
        problems=tuple(problems),
    )


def validate_kubeconfig(data: object, context: str | None = None) -> list[str]:
    """Every reason the kubeconfig cannot be used by the hub, one clear sentence each.

    `context` overrides current-context. An empty list means usable: a server over https, a CA
    that parses, and a credential the operator can present without reading local files.
    """
    resolved = _resolve(data, context)
    problems = list(resolved.problems)
    if resolved.cluster is not None and resolved.cluster_name is not None:
        problems.extend(_cluster_problems(resolved.cluster_name, resolved.cluster))
    if resolved.user is not None and resolved.user_name is not None:
        problems.extend(_user_problems(resolved.user_name, resolved.user))
    return problems


def _cluster_problems(name: str, cluster: Mapping[str, Any]) -> list[str]:
    where = f"cluster {name!r}"
    problems: list[str] = []
    server = cluster.get("server")
    if not isinstance(server, str) or not server.strip():
        problems.append(
            f"{where} has no server; set it to the sub-center's API address,"
            " e.g. https://10.20.0.10:6443"
        )
    else:
        problems.extend(_server_problems(where, server.strip()))
    if cluster.get("insecure-skip-tls-verify") not in (None, False):
        problems.append(
            f"{where} sets insecure-skip-tls-verify; the hub must verify the sub-center's"
            " identity: remove it and set certificate-authority-data to the sub-center's CA"
        )
    if "certificate-authority" in cluster:
        problems.append(
            f"{where} refers to a certificate-authority file, which the operator cannot read;"
            f" {FLATTEN_HINT}"
        )
    if "proxy-url" in cluster:
        problems.append(
            f"{where} sets proxy-url; the hub connects to sub-centers directly, never through"
            " a proxy named by a kubeconfig: remove it"
        )
    problems.extend(
        f"{where} has the field {_field_name(field)}, which the operator does not use; only"
        " server and certificate-authority-data are read: remove it"
        for field in sorted(map(str, cluster))
        if field not in CLUSTER_FIELDS and field not in _CLUSTER_FIELDS_NAMED
    )
    if "certificate-authority-data" in cluster:
        problems.extend(
            _pem_problems(
                f"{where} certificate-authority-data",
                cluster["certificate-authority-data"],
                _load_certificates,
                "PEM certificate",
            )
        )
    return problems


def _server_problems(where: str, server: str) -> list[str]:
    try:
        url = urllib.parse.urlsplit(server)
        port = url.port
    except ValueError:
        return [f"{where} server is not a valid URL; use https://<host>:<port>"]
    shown = _safe_url(url, port)
    problems: list[str] = []
    if url.username is not None or url.password is not None:
        problems.append(
            f"{where} server {shown} carries a user name or password in its URL; remove it"
            " and use a client certificate or token"
        )
    if url.scheme != "https":
        problems.append(
            f"{where} server {shown} is not https; the hub talks to sub-centers only over TLS"
        )
    if not url.hostname:
        problems.append(f"{where} server {shown} names no host; use https://<host>:<port>")
    return problems


def _safe_url(url: urllib.parse.SplitResult, port: int | None) -> str:
    """scheme://host:port/path of a URL, without user info, query or fragment."""
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urllib.parse.urlunsplit((url.scheme, netloc, url.path, "", ""))


def _user_problems(name: str, user: Mapping[str, Any]) -> list[str]:
    where = f"user {name!r}"
    files = _present(user, _FILES)
    problems = [
        f"{where} refers to a {field} file, which the operator cannot read; {FLATTEN_HINT}"
        for field in files
    ]
    if "username" in user or "password" in user:
        problems.append(
            f"{where} uses a user name and password (basic auth), which Kubernetes no longer"
            " accepts; use a client certificate or a service-account token"
        )
    problems.extend(
        f"{where} uses {_PLUGINS[field]}, which the operator never runs: credentials are"
        " data, never code; use a client certificate or a service-account token"
        for field in _PLUGINS
        if field in user
    )
    if impersonation := _present(user, _IMPERSONATION):
        problems.append(
            f"{where} asks to impersonate another user ({', '.join(impersonation)}); the"
            " operator acts only as the kubeconfig's own user: remove it"
        )
    problems.extend(
        f"{where} has the field {_field_name(field)}, which the operator does not use; only"
        " client-certificate-data, client-key-data and token are read: remove it"
        for field in sorted(map(str, user))
        if field not in USER_FIELDS and field not in _USER_FIELDS_NAMED
    )
    if not files:  # a file half of a certificate pair is reported above already
        problems.extend(_certificate_problems(where, user))
    token = user.get("token")
    if "token" in user and (not isinstance(token, str) or not token.strip()):
        problems.append(f"{where} has an empty token")
    credential_fields = ("client-certificate-data", "token")
    if not problems and not any(field in user for field in credential_fields):
        problems.append(
            f"{where} holds no credentials; add client-certificate-data and client-key-data,"
            " or a token"
        )
    return problems


# The allow-list: the only fields of a cluster and a user the operator reads. Anything that
# runs a command, reads a file, goes through a proxy or changes who the hub acts as is refused.
CLUSTER_FIELDS = frozenset({"server", "certificate-authority-data", "extensions"})
USER_FIELDS = frozenset({"client-certificate-data", "client-key-data", "token", "extensions"})
_PLUGINS = {"exec": "an exec credential plugin", "auth-provider": "an auth-provider plugin"}
_IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")
_FILES = ("client-certificate", "client-key", "tokenFile")
# Refused above with their own message, so not again as unknown fields.
_CLUSTER_FIELDS_NAMED = frozenset(
    {"insecure-skip-tls-verify", "certificate-authority", "proxy-url"}
)
_USER_FIELDS_NAMED = frozenset({*_PLUGINS, *_IMPERSONATION, *_FILES, "username", "password"})
_FIELD_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


def _field_name(field: str) -> str:
    """A field name fit to quote: the name itself when it looks like one, else a placeholder."""
    return repr(field) if _FIELD_NAME_RE.match(field) else "with an unusual name"


def _present(user: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    return [field for field in fields if field in user]


def _certificate_problems(where: str, user: Mapping[str, Any]) -> list[str]:
    has_cert, has_key = "client-certificate-data" in user, "client-key-data" in user
    if has_cert != has_key:
        present, missing = (
            ("client-certificate-data", "client-key-data")
            if has_cert
            else ("client-key-data", "client-certificate-data")
        )
        return [f"{where} has {present} but no {missing}; a client certificate needs both"]
    if not has_cert:
        return []
    problems = _pem_problems(
        f"{where} client-certificate-data",
        user["client-certificate-data"],
        _load_certificates,
        "PEM certificate",
    )
    problems += _pem_problems(
        f"{where} client-key-data", user["client-key-data"], _load_key, "PEM private key"
    )
    if not problems and not _key_matches(user):
        problems.append(
            f"{where} client-key-data is not the key of its client-certificate-data;"
            " store the certificate and key that were issued together"
        )
    return problems


def _decode(value: object) -> bytes:
    """The bytes of a kubeconfig *-data field; ValueError if it is not base64."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    compact = "".join(value.split())
    return base64.b64decode(compact, validate=True)


def _load_certificates(pem: bytes) -> object:
    return x509.load_pem_x509_certificates(pem)


def _load_key(pem: bytes) -> object:
    return serialization.load_pem_private_key(pem, password=None)


def _pem_problems(
    where: str, value: object, load: Callable[[bytes], object], what: str
) -> list[str]:
    try:
        pem = _decode(value)
    except (ValueError, binascii.Error):
        return [f"{where} is not valid base64; it holds the base64 of a {what}"]
    try:
        load(pem)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm):
        return [f"{where} does not hold a {what} (or it is encrypted or damaged)"]
    return []


def _key_matches(user: Mapping[str, Any]) -> bool:
    certificate = x509.load_pem_x509_certificates(_decode(user["client-certificate-data"]))[0]
    key = serialization.load_pem_private_key(_decode(user["client-key-data"]), password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    return bool(
        certificate.public_key().public_bytes(encoding, public)
        == key.public_key().public_bytes(encoding, public)
    )


def inspect(data: object, context: str | None = None) -> Credential:
    """The credential the kubeconfig's context presents, and when it expires if that is known.

    KubeconfigError, with every problem of `validate_kubeconfig`, if the kubeconfig is unusable.
    When a user holds both a client certificate and a token, the one that expires first is
    reported.
    """
    problems = validate_kubeconfig(data, context)
    resolved = _resolve(data, context)
    if problems or resolved.user is None:
        raise KubeconfigError("; ".join(problems) or "the kubeconfig holds no user")
    user = resolved.user
    found: list[Credential] = []
    if "client-certificate-data" in user:
        found.append(_certificate(user["client-certificate-data"]))
    if isinstance(user.get("token"), str):
        found.append(_token(user["token"]))
    dated = [credential for credential in found if credential.expires_at is not None]
    if dated:
        return min(dated, key=lambda credential: credential.expires_at or datetime.max)
    return found[0]


@dataclasses.dataclass(frozen=True, repr=False)
class Connection:
    """The allow-listed fields of a usable kubeconfig: all the hub needs to reach a site."""

    server: str
    ca_pem: bytes | None = None
    certificate_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never the key or the token, even in a traceback
        return f"Connection(server={self.server!r})"


def connection(data: object, context: str | None = None) -> Connection:
    """The server, CA, client certificate and key, and token of the kubeconfig's context.

    KubeconfigError, with every problem of `validate_kubeconfig`, if the kubeconfig is unusable.
    Nothing else of the kubeconfig is read, so no field can make the hub run a command, read a
    file or use a proxy, whatever the validation lets through.
    """
    problems = validate_kubeconfig(data, context)
    resolved = _resolve(data, context)
    if problems or resolved.cluster is None or resolved.user is None:
        raise KubeconfigError("; ".join(problems) or "the kubeconfig holds no cluster or user")
    cluster, user = resolved.cluster, resolved.user
    token = user.get("token")
    return Connection(
        server=str(cluster["server"]).strip(),
        ca_pem=_decoded(cluster, "certificate-authority-data"),
        certificate_pem=_decoded(user, "client-certificate-data"),
        key_pem=_decoded(user, "client-key-data"),
        token=token.strip() if isinstance(token, str) else None,
    )


def _decoded(entry: Mapping[str, Any], field: str) -> bytes | None:
    return _decode(entry[field]) if field in entry else None


def _certificate(data: str) -> Credential:
    certificate = x509.load_pem_x509_certificates(_decode(data))[0]
    return Credential(
        CredentialKind.CLIENT_CERTIFICATE,
        expires_at=certificate.not_valid_after_utc,
        subject=certificate.subject.rfc4514_string(),
    )


def _token(token: str) -> Credential:
    claims = jwt_claims(token.strip())
    if claims is None:
        return Credential(
            CredentialKind.BEARER_TOKEN,
            note="an opaque token (not a JWT) carries no expiry the operator can read",
        )
    subject = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    expiry = claims.get("exp")
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return Credential(
            CredentialKind.BEARER_TOKEN,
            subject=subject,
            note="the token has no exp claim (a long-lived service-account token never expires)",
        )
    try:
        expires_at = datetime.fromtimestamp(expiry, UTC)
    except (OverflowError, OSError, ValueError):
        return Credential(
            CredentialKind.BEARER_TOKEN, subject=subject, note="the token's exp claim is invalid"
        )
    return Credential(CredentialKind.BEARER_TOKEN, expires_at=expires_at, subject=subject)


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT (signature not checked: only the hub's own expiry check uses it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(payload, dict):
        return None
    return payload


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def expiry_verdict(
    expires_at: datetime | None,
    now: datetime,
    warning_window: timedelta,
    *,
    what: str = "the kubeconfig's credential",
    unknown_because: str = "",
) -> ExpiryVerdict:
    """CredentialExpiring for a credential that expires at `expires_at` (None: not known).

    True within `warning_window` of the expiry; once expired, also CredentialsValid=False.
    """
    if expires_at is None:
        because = f": {unknown_because}" if unknown_because else ""
        return ExpiryVerdict(
            Condition(
                condition.CREDENTIAL_EXPIRING,
                condition.UNKNOWN,
                "ExpiryUnknown",
                f"the expiry of {what} cannot be read{because}",
            )
        )
    at = _timestamp(expires_at)
    left = expires_at - now
    if left <= timedelta(0):
        message = (
            f"{what} expired at {at}; put a kubeconfig with new credentials into the"
            " SubCenter's kubeconfig Secret (it takes effect without a restart)"
        )
        return ExpiryVerdict(
            Condition(condition.CREDENTIAL_EXPIRING, condition.TRUE, EXPIRED, message),
            Condition(condition.CREDENTIALS_VALID, condition.FALSE, EXPIRED, message),
        )
    if left <= warning_window:
        return ExpiryVerdict(
            Condition(
                condition.CREDENTIAL_EXPIRING,
                condition.TRUE,
                "ExpiresSoon",
                f"{what} expires at {at}, in {_duration(left)} (warning window"
                f" {_duration(warning_window)}); rotate it by updating the SubCenter's kubeconfig"
                " Secret",
            )
        )
    return ExpiryVerdict(
        Condition(
            condition.CREDENTIAL_EXPIRING,
            condition.FALSE,
            "NotExpiringSoon",
            f"{what} expires at {at}, in {_duration(left)}",
        )
    )


def verdict(credential: Credential, now: datetime, warning_window: timedelta) -> ExpiryVerdict:
    """`expiry_verdict` for what `inspect` found, naming the credential in the messages."""
    return expiry_verdict(
        credential.expires_at,
        now,
        warning_window,
        what=f"the {credential.describe()}",
        unknown_because=credential.note,
    )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(span: timedelta) -> str:
    if span >= timedelta(days=2):
        return f"{span.days} days"
    hours = int(span.total_seconds() // 3600)
    if hours >= 2:
        return f"{hours} hours"
    minutes = max(1, int(span.total_seconds() // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# What `redact` hides, most specific first. Kubernetes object names are lowercase, so the
# generic token patterns (which need an upper-case letter, or are long hex) leave them alone.
_REDACTIONS: Sequence[tuple[re.Pattern[str], str]] = (
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(-----END [A-Z0-9 ]+-----|$)", re.DOTALL),
        "[redacted PEM]",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)([\"']?(?:[a-z-]*token|password|passwd|secret|client-key-data"
            r"|client-certificate-data|certificate-authority-data)[\"']?"
            r"\s*[:=]\s*)[\"']?[^\s\"',;}]+[\"']?"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), r"\1[redacted]@"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted token]"),
    (re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"), "[redacted token]"),  # bootstrap tokens
    (
        re.compile(
            r"(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_=-]*[A-Z])(?=[A-Za-z0-9+/_=-]*[0-9])"
            r"[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/_=-])"
        ),
        "[redacted]",
    ),
    (re.compile(r"\b[0-9a-f]{32,}\b"), "[redacted]"),
)


def redact(text: str) -> str:
    """`text` with anything that looks like a token, key, certificate or password replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text
