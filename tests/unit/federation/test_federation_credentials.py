"""Kubeconfig credentials: what they are, what is wrong with them, when they expire, redaction."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from federation_fixtures import (
    NOW,
    b64,
    certificate_pem,
    client_user,
    jwt,
    key_pem,
    kubeconfig,
    private_key,
)

from govcloud.federation import condition, credentials

DAY = datetime.timedelta(days=1)
WINDOW = datetime.timedelta(days=30)

VALID_USER = client_user(NOW + 365 * DAY)
TOKEN = jwt({"sub": "system:serviceaccount:govcloud-system:hub", "exp": 1_800_000_000})
SECRETS = (
    VALID_USER["client-certificate-data"],
    VALID_USER["client-key-data"],
    TOKEN,
    "s3cr3t-Passw0rd",
)


def good() -> dict[str, Any]:
    return kubeconfig(copy.deepcopy(VALID_USER))


def test_a_flattened_kubeconfig_with_a_client_certificate_is_usable() -> None:
    assert credentials.validate_kubeconfig(good()) == []


def test_a_kubeconfig_with_a_token_is_usable() -> None:
    assert credentials.validate_kubeconfig(kubeconfig({"token": TOKEN})) == []


def test_exec_and_auth_provider_users_are_refused_as_code_not_data() -> None:
    exec_user = kubeconfig({"exec": {"command": "sh", "args": ["-c", "id > /tmp/marker"]}})
    provider_user = kubeconfig({"auth-provider": {"name": "oidc"}})

    (exec_problem,) = credentials.validate_kubeconfig(exec_user)
    (provider_problem,) = credentials.validate_kubeconfig(provider_user)

    assert "uses an exec credential plugin, which the operator never runs" in exec_problem
    assert "uses an auth-provider plugin, which the operator never runs" in provider_problem
    with pytest.raises(credentials.KubeconfigError, match="exec credential plugin"):
        credentials.inspect(exec_user)
    with pytest.raises(credentials.KubeconfigError, match="exec credential plugin"):
        credentials.connection(exec_user)


def test_a_plugin_beside_a_usable_token_is_still_refused() -> None:
    config = kubeconfig({"token": TOKEN, "exec": {"command": "sh"}})

    assert any("exec credential plugin" in item for item in credentials.validate_kubeconfig(config))


def test_connection_holds_only_the_allow_listed_fields() -> None:
    config = good()
    config["users"][0]["user"]["extensions"] = [{"name": "x", "extension": {}}]

    found = credentials.connection(config)

    assert found.server == "https://10.20.0.10:6443"
    assert found.ca_pem is not None
    assert found.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert found.certificate_pem is not None
    assert found.key_pem is not None
    assert found.token is None
    assert "PRIVATE KEY" not in repr(found)


def test_connection_of_a_token_user_never_shows_the_token() -> None:
    found = credentials.connection(kubeconfig({"token": f" {TOKEN} "}))

    assert found.token == TOKEN
    assert TOKEN not in repr(found)


def _set_cluster(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["clusters"][0]["cluster"].update(fields)

    return change


def _drop_cluster(field: str) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["clusters"][0]["cluster"].pop(field)

    return change


def _set_user(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["users"][0]["user"].update(fields)

    return change


def _replace_user(user: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["users"][0]["user"] = user

    return change


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config.update(fields)

    return change


def _set_context(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        config["contexts"][0]["context"].update(fields)

    return change


def _drop_current_context(config: dict[str, Any]) -> None:
    config.pop("current-context")


OTHER_KEY = private_key()
NOT_PEM = b64(b"hello, this is not a certificate")

# (case id, change to a good kubeconfig, fragment of the one problem it causes)
PROBLEMS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no-current-context", _drop_current_context, "has no current-context; set current-context"),
    ("unknown-context", _set(**{"current-context": "wuhu"}), "context 'wuhu' is not among"),
    ("context-without-cluster", _set_context(cluster=""), "context 'feixi' names no cluster"),
    ("unknown-cluster", _set_context(cluster="x"), "uses cluster 'x', which is not among"),
    ("context-without-user", _set_context(user=None), "names no user, so it holds no credentials"),
    ("unknown-user", _set_context(user="x"), "uses user 'x', which is not among"),
    ("no-server", _drop_cluster("server"), "cluster 'feixi' has no server; set it"),
    ("blank-server", _set_cluster(server="  "), "cluster 'feixi' has no server"),
    ("http-server", _set_cluster(server="http://10.20.0.10:8080"), "is not https"),
    ("server-without-host", _set_cluster(server="https://"), "names no host"),
    ("server-bad-port", _set_cluster(server="https://host:99999"), "is not a valid URL"),
    (
        "server-with-password",
        _set_cluster(server="https://admin:s3cr3t-Passw0rd@10.20.0.10:6443"),
        "carries a user name or password in its URL",
    ),
    (
        "insecure",
        _set_cluster(**{"insecure-skip-tls-verify": True}),
        "sets insecure-skip-tls-verify",
    ),
    (
        "ca-file",
        _set_cluster(**{"certificate-authority": "/etc/ca.crt"}),
        "refers to a certificate-authority file, which the operator cannot read;"
        " embed it with `kubectl config view --raw --minify --flatten`",
    ),
    (
        "ca-not-base64",
        _set_cluster(**{"certificate-authority-data": "%%%not base64%%%"}),
        "certificate-authority-data is not valid base64",
    ),
    (
        "ca-not-pem",
        _set_cluster(**{"certificate-authority-data": NOT_PEM}),
        "certificate-authority-data does not hold a PEM certificate",
    ),
    (
        "client-certificate-file",
        _replace_user({"client-certificate": "/a.crt", "client-key-data": "x"}),
        "refers to a client-certificate file",
    ),
    (
        "token-file",
        _replace_user({"tokenFile": "/var/run/token"}),
        "refers to a tokenFile file",
    ),
    (
        "basic-auth",
        _replace_user({"username": "admin", "password": "s3cr3t-Passw0rd"}),
        "uses a user name and password (basic auth)",
    ),
    (
        "client-key-file",
        _replace_user({"client-certificate-data": "x", "client-key": "/a.key"}),
        "refers to a client-key file",
    ),
    ("exec", _replace_user({"exec": {"command": "sh"}}), "uses an exec credential plugin"),
    ("auth-provider", _replace_user({"auth-provider": {"name": "gcp"}}), "auth-provider plugin"),
    (
        "impersonation",
        _set_user(**{"as": "system:admin", "as-groups": ["system:masters"]}),
        "asks to impersonate another user (as, as-groups)",
    ),
    ("impersonate-uid", _set_user(**{"as-uid": "0"}), "asks to impersonate another user"),
    ("proxy", _set_cluster(**{"proxy-url": "socks5://10.0.0.1:1080"}), "sets proxy-url"),
    (
        "insecure-as-string",
        _set_cluster(**{"insecure-skip-tls-verify": "true"}),
        "sets insecure-skip-tls-verify",
    ),
    (
        "unknown-cluster-field",
        _set_cluster(**{"tls-server-name": "other.example"}),
        "has the field 'tls-server-name', which the operator does not use",
    ),
    (
        "unknown-user-field",
        _set_user(**{"client-certificate-path": "/x"}),
        "has the field 'client-certificate-path', which the operator does not use",
    ),
    (
        "odd-field-name-not-quoted",
        _set_user(**{"s3cr3t-Passw0rd and more": 1}),
        "has the field with an unusual name",
    ),
    ("no-credentials", _replace_user({}), "holds no credentials; add client-certificate-data"),
    ("empty-token", _replace_user({"token": ""}), "user 'hub' has an empty token"),
    (
        "certificate-without-key",
        _replace_user({"client-certificate-data": VALID_USER["client-certificate-data"]}),
        "has client-certificate-data but no client-key-data",
    ),
    (
        "key-without-certificate",
        _replace_user({"client-key-data": VALID_USER["client-key-data"]}),
        "has client-key-data but no client-certificate-data",
    ),
    (
        "certificate-not-base64",
        _set_user(**{"client-certificate-data": "-----BEGIN CERTIFICATE----- oops"}),
        "client-certificate-data is not valid base64",
    ),
    (
        "certificate-not-pem",
        _set_user(**{"client-certificate-data": NOT_PEM}),
        "client-certificate-data does not hold a PEM certificate",
    ),
    (
        "key-not-pem",
        _set_user(**{"client-key-data": NOT_PEM}),
        "client-key-data does not hold a PEM private key",
    ),
    (
        "key-of-another-certificate",
        _set_user(**{"client-key-data": b64(key_pem(OTHER_KEY))}),
        "client-key-data is not the key of its client-certificate-data",
    ),
]


@pytest.mark.parametrize(
    ("change", "problem"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS]
)
def test_each_problem_is_named_once_and_never_echoes_secret_material(
    change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    config = good()
    change(config)

    problems = credentials.validate_kubeconfig(config)

    assert len(problems) == 1, problems
    assert problem in problems[0]
    for secret in SECRETS:
        assert secret not in problems[0]


@pytest.mark.parametrize("data", [None, "just a string", ["a", "list"], 42])
def test_a_document_that_is_not_a_mapping_is_one_problem(data: object) -> None:
    assert credentials.validate_kubeconfig(data) == [
        "the kubeconfig is not a YAML mapping with clusters, users and contexts"
    ]


def test_malformed_entries_are_skipped_not_crashed_on() -> None:
    config = good()
    config["clusters"].insert(0, "garbage")
    config["users"].append({"name": 7})
    config["contexts"] = [{"name": "feixi", "context": "garbage"}]

    problems = credentials.validate_kubeconfig(config)

    assert problems == [
        "context 'feixi' names no cluster",
        "context 'feixi' names no user, so it holds no credentials",
    ]


def test_the_context_argument_overrides_current_context() -> None:
    config = good()
    config["current-context"] = "missing"

    assert credentials.validate_kubeconfig(config, context="feixi") == []
    assert "context 'missing'" in credentials.validate_kubeconfig(config)[0]


def test_several_problems_are_all_reported() -> None:
    config = kubeconfig({}, cluster={"server": "http://x", "insecure-skip-tls-verify": True})

    problems = credentials.validate_kubeconfig(config)

    assert len(problems) == 3
    assert "is not https" in problems[0]
    assert "insecure-skip-tls-verify" in problems[1]
    assert "holds no credentials" in problems[2]


def test_a_ca_bundle_of_several_certificates_is_accepted() -> None:
    bundle = certificate_pem(private_key(), NOW + DAY) + certificate_pem(private_key(), NOW + DAY)
    config = good()
    config["clusters"][0]["cluster"]["certificate-authority-data"] = b64(bundle)

    assert credentials.validate_kubeconfig(config) == []


def test_a_kubeconfig_without_a_ca_uses_the_system_roots_and_is_accepted() -> None:
    config = kubeconfig(copy.deepcopy(VALID_USER), cluster={"server": "https://k8s.gov.cn"})

    assert credentials.validate_kubeconfig(config) == []


# parse_kubeconfig: YAML errors say where, never what.


def test_parse_returns_the_mapping() -> None:
    assert credentials.parse_kubeconfig("apiVersion: v1\nclusters: []\n") == {
        "apiVersion": "v1",
        "clusters": [],
    }


def test_a_yaml_error_says_where_but_not_the_line_itself() -> None:
    text = f"users:\n- name: hub\n  user:\n    token: {TOKEN}\n  : [unclosed\n"

    with pytest.raises(credentials.KubeconfigError) as raised:
        credentials.parse_kubeconfig(text)

    assert str(raised.value).startswith("the kubeconfig is not valid YAML (line")
    assert TOKEN not in str(raised.value)
    assert raised.value.__cause__ is None


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text", b"\xff\xfe\x00"])
def test_parse_refuses_what_is_not_a_mapping(text: str | bytes) -> None:
    with pytest.raises(credentials.KubeconfigError, match="not"):
        credentials.parse_kubeconfig(text)


# inspect: which credential, and when it expires.


def test_a_client_certificate_is_found_with_its_expiry_and_subject() -> None:
    not_after = datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    found = credentials.inspect(kubeconfig(client_user(not_after)))

    assert found.kind is credentials.CredentialKind.CLIENT_CERTIFICATE
    assert found.expires_at == not_after
    assert found.subject == "O=govcloud,CN=govcloud-hub"
    assert found.describe() == "client certificate O=govcloud,CN=govcloud-hub"


@pytest.mark.parametrize(
    ("claims", "expires_at", "subject", "note"),
    [
        (
            {"sub": "system:serviceaccount:govcloud-system:hub", "exp": 1_800_000_000},
            datetime.datetime.fromtimestamp(1_800_000_000, datetime.UTC),
            "system:serviceaccount:govcloud-system:hub",
            "",
        ),
        (
            {"exp": 1_800_000_000.5},
            datetime.datetime.fromtimestamp(1_800_000_000.5, datetime.UTC),
            None,
            "",
        ),
        ({"sub": "legacy"}, None, "legacy", "has no exp claim"),
        ({"exp": "tomorrow"}, None, None, "has no exp claim"),
        ({"exp": True}, None, None, "has no exp claim"),
        ({"exp": 10**20}, None, None, "exp claim is invalid"),
    ],
    ids=["sa-token", "fractional-exp", "no-exp", "string-exp", "bool-exp", "huge-exp"],
)
def test_a_jwt_bearer_token_expires_at_its_exp_claim(
    claims: dict[str, Any], expires_at: datetime.datetime | None, subject: str | None, note: str
) -> None:
    found = credentials.inspect(kubeconfig({"token": jwt(claims)}))

    assert found.kind is credentials.CredentialKind.BEARER_TOKEN
    assert found.expires_at == expires_at
    assert found.subject == subject
    assert note in found.note


@pytest.mark.parametrize(
    "token",
    [
        "abcdef.0123456789abcdef",  # bootstrap token
        "sha256~opaque",
        "a.b.c",  # three parts, but not base64 JSON
        jwt({"exp": 1}, header={"typ": "JWT"}),  # no alg: not a JWS header
        jwt({"exp": 1}).rsplit(".", 1)[0] + ".x.y",  # four parts
    ],
)
def test_an_opaque_token_has_an_unknown_expiry(token: str) -> None:
    found = credentials.inspect(kubeconfig({"token": token}))

    assert found.kind is credentials.CredentialKind.BEARER_TOKEN
    assert found.expires_at is None
    assert "opaque token" in found.note


def test_with_both_a_certificate_and_a_token_the_first_to_expire_is_reported() -> None:
    user = client_user(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
    user["token"] = jwt(
        {"exp": int(datetime.datetime(2029, 1, 1, tzinfo=datetime.UTC).timestamp())}
    )

    found = credentials.inspect(kubeconfig(user))

    assert found.kind is credentials.CredentialKind.BEARER_TOKEN
    assert found.expires_at == datetime.datetime(2029, 1, 1, tzinfo=datetime.UTC)


def test_with_a_certificate_and_an_opaque_token_the_dated_certificate_is_reported() -> None:
    user = client_user(NOW + DAY)
    user["token"] = "opaque"

    found = credentials.inspect(kubeconfig(user))

    assert found.kind is credentials.CredentialKind.CLIENT_CERTIFICATE


def test_inspect_refuses_an_unusable_kubeconfig_with_every_problem() -> None:
    config = kubeconfig({"token": ""}, cluster={"server": "http://x"})

    with pytest.raises(credentials.KubeconfigError) as raised:
        credentials.inspect(config)

    assert "is not https" in str(raised.value)
    assert "empty token" in str(raised.value)


def test_an_expired_certificate_is_still_read_so_its_expiry_can_be_reported() -> None:
    found = credentials.inspect(kubeconfig(client_user(NOW - DAY)))

    assert found.expires_at == NOW - DAY


# expiry_verdict: CredentialExpiring, and CredentialsValid=False once expired.


@pytest.mark.parametrize(
    ("expires_at", "status", "reason", "fragment", "invalid"),
    [
        (NOW + 400 * DAY, condition.FALSE, "NotExpiringSoon", "in 400 days", False),
        (NOW + 31 * DAY, condition.FALSE, "NotExpiringSoon", "in 31 days", False),
        (
            NOW + 30 * DAY,
            condition.TRUE,
            "ExpiresSoon",
            "in 30 days (warning window 30 days)",
            False,
        ),
        (NOW + 5 * DAY, condition.TRUE, "ExpiresSoon", "in 5 days", False),
        (NOW + datetime.timedelta(hours=30), condition.TRUE, "ExpiresSoon", "in 30 hours", False),
        (NOW + datetime.timedelta(minutes=1), condition.TRUE, "ExpiresSoon", "in 1 minute", False),
        (NOW + datetime.timedelta(seconds=5), condition.TRUE, "ExpiresSoon", "in 1 minute", False),
        (NOW, condition.TRUE, "Expired", "expired at 2026-03-01T12:00:00Z", True),
        (NOW - 3 * DAY, condition.TRUE, "Expired", "expired at 2026-02-26T12:00:00Z", True),
    ],
    ids=["far", "just-outside", "at-window", "days", "hours", "minute", "seconds", "now", "past"],
)
def test_expiry_verdict(
    expires_at: datetime.datetime, status: str, reason: str, fragment: str, invalid: bool
) -> None:
    verdict = credentials.expiry_verdict(expires_at, NOW, WINDOW)

    assert verdict.expiring.type == condition.CREDENTIAL_EXPIRING
    assert (verdict.expiring.status, verdict.expiring.reason) == (status, reason)
    assert fragment in verdict.expiring.message
    if invalid:
        assert verdict.invalid == condition.Condition(
            condition.CREDENTIALS_VALID, condition.FALSE, "Expired", verdict.expiring.message
        )
        assert "kubeconfig Secret" in verdict.invalid.message
    else:
        assert verdict.invalid is None


def test_an_unknown_expiry_is_unknown_and_says_why() -> None:
    verdict = credentials.expiry_verdict(
        None, NOW, WINDOW, what="the exec credential plugin", unknown_because="plugins"
    )

    assert verdict.expiring == condition.Condition(
        condition.CREDENTIAL_EXPIRING,
        condition.UNKNOWN,
        "ExpiryUnknown",
        "the expiry of the exec credential plugin cannot be read: plugins",
    )
    assert verdict.invalid is None


def test_verdict_names_the_credential_found() -> None:
    found = credentials.inspect(kubeconfig(client_user(NOW + 10 * DAY)))

    verdict = credentials.verdict(found, NOW, WINDOW)

    assert verdict.expiring.message.startswith(
        "the client certificate O=govcloud,CN=govcloud-hub expires at"
    )


def test_expiry_is_compared_across_time_zones() -> None:
    beijing = datetime.timezone(datetime.timedelta(hours=8))
    expires_at = datetime.datetime(2026, 3, 1, 21, 0, tzinfo=beijing)  # 13:00 UTC

    verdict = credentials.expiry_verdict(expires_at, NOW, WINDOW)

    assert verdict.expiring.reason == "ExpiresSoon"
    assert "2026-03-01T13:00:00Z" in verdict.expiring.message


# redact: the last line of defence for text from elsewhere.


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (f"header Authorization: Bearer {TOKEN}", "Bearer [redacted]", TOKEN),
        (f"the token is {TOKEN} sadly", "the token is [redacted token] sadly", TOKEN),
        ("token: 0123456789abcdef0123", "token: [redacted]", "0123456789abcdef0123"),
        ('{"token": "opaque-value"}', '"token": [redacted]', "opaque-value"),
        ("password=s3cr3t-Passw0rd&x", "password=[redacted]", "s3cr3t-Passw0rd"),
        ("https://admin:pw@10.0.0.1:6443/readyz", "https://[redacted]@10.0.0.1:6443/readyz", "pw"),
        ("Basic YWRtaW46cHc=", "Basic [redacted]", "YWRtaW46cHc="),
        ("bootstrap abcdef.0123456789abcdef", "bootstrap [redacted token]", "0123456789abcdef"),
        ("sha " + "ab" * 32, "sha [redacted]", "ab" * 32),
        (
            f"client-key-data: {VALID_USER['client-key-data']}",
            "client-key-data: [redacted]",
            VALID_USER["client-key-data"],
        ),
        (
            f"blob {VALID_USER['client-certificate-data']} end",
            "blob [redacted] end",
            VALID_USER["client-certificate-data"],
        ),
    ],
    ids=[
        "bearer-header",
        "jwt",
        "token-field",
        "json-token",
        "password",
        "url-userinfo",
        "basic",
        "bootstrap",
        "hex",
        "key-data",
        "base64-blob",
    ],
)
def test_redact_hides_secret_material(text: str, kept: str, gone: str) -> None:
    redacted = credentials.redact(text)

    assert kept in redacted
    assert gone not in redacted


def test_redact_hides_pem_blocks_whole_even_when_cut_off() -> None:
    pem = key_pem(private_key()).decode()

    assert credentials.redact(f"got {pem.strip()} back") == "got [redacted PEM] back"
    assert credentials.redact(f"got {pem[:80]}") == "got [redacted PEM]"


@pytest.mark.parametrize(
    "text",
    [
        'Get "https://10.20.0.10:6443/readyz?timeout=5s": dial tcp 10.20.0.10:6443: connect:'
        " connection refused",
        "x509: certificate signed by unknown authority",
        "Secret govcloud-system/feixi-kubeconfig has no key 'kubeconfig'",
        "namespace finance-payroll-archive-2024-records-long-name is Active",
        "the sub-center 肥西县政务云分中心 answers and is ready (Kubernetes v1.36.3)",
        "kubeconfigSecretRef.name must be a Secret name",
        "HTTPSConnectionPool(host='10.0.0.1', port=6443): Read timed out. (read timeout=5)",
    ],
)
def test_redact_leaves_ordinary_messages_alone(text: str) -> None:
    assert credentials.redact(text) == text
