"""A site's client is built from the allow-listed fields alone: token, CA, client pair."""

from __future__ import annotations

import copy
import datetime
import tempfile
from pathlib import Path

import pytest
import urllib3
from federation_fixtures import NOW, client_user, kubeconfig

from govcloud.federation import credentials
from govcloud.k8s import clusters


def test_a_token_is_sent_as_a_bearer_header() -> None:
    endpoint = credentials.connection(kubeconfig({"token": "opaque-token"}))

    api = clusters.api_client_for(endpoint)

    assert api.configuration.auth_settings()["BearerToken"]["value"] == "Bearer opaque-token"
    assert api.configuration.host == "https://10.20.0.10:6443"


def test_no_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    endpoint = credentials.connection(kubeconfig({"token": "opaque-token"}))

    api = clusters.api_client_for(endpoint)

    assert type(api.rest_client.pool_manager) is urllib3.PoolManager


def test_the_client_pair_is_loaded_and_no_key_file_is_left_behind() -> None:
    user = client_user(NOW + datetime.timedelta(days=30))
    endpoint = credentials.connection(kubeconfig(copy.deepcopy(user)))
    before = set(Path(tempfile.gettempdir()).glob("govcloud-site-*"))

    context = clusters.tls_context(endpoint)

    assert context.verify_mode.name == "CERT_REQUIRED"
    assert context.cert_store_stats()["x509"] == 1  # the site's CA only, no system roots
    assert set(Path(tempfile.gettempdir()).glob("govcloud-site-*")) == before
