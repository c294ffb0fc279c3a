"""Test material for the federation unit tests: certificates, JWTs and kubeconfigs made here."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)

Kubeconfig = dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """An (unsigned-looking) JWT: header.payload.signature, each base64url without padding."""
    head = header if header is not None else {"alg": "RS256", "kid": "k1"}
    return ".".join(
        [b64url(json.dumps(head).encode()), b64url(json.dumps(claims).encode()), b64url(b"sig")]
    )


def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_pem(
    key: ec.EllipticCurvePrivateKey,
    not_after: datetime.datetime,
    common_name: str = "govcloud-hub",
    organization: str = "govcloud",
) -> bytes:
    """A self-signed certificate for `key`, valid from a year before NOW until `not_after`."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def kubeconfig(
    user: dict[str, Any],
    *,
    cluster: dict[str, Any] | None = None,
    current_context: str | None = "feixi",
) -> Kubeconfig:
    """A kubeconfig with one cluster, one user and one context named feixi."""
    config: Kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "feixi",
                "cluster": cluster
                if cluster is not None
                else {"server": "https://10.20.0.10:6443", "certificate-authority-data": CA_DATA},
            }
        ],
        "users": [{"name": "hub", "user": user}],
        "contexts": [{"name": "feixi", "context": {"cluster": "feixi", "user": "hub"}}],
    }
    if current_context is not None:
        config["current-context"] = current_context
    return config


_CA_KEY = private_key()
CA_DATA = b64(certificate_pem(_CA_KEY, NOW + datetime.timedelta(days=3650), "feixi-ca"))


def client_user(not_after: datetime.datetime) -> dict[str, Any]:
    """A kubeconfig user entry: a client certificate (and its key) valid until `not_after`."""
    key = private_key()
    return {
        "client-certificate-data": b64(certificate_pem(key, not_after)),
        "client-key-data": b64(key_pem(key)),
    }
