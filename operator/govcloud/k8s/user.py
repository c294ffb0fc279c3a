"""A connection to the API server as a person: their kubeconfig and context, kubectl-style
impersonation (--as, --as-group, --as-uid), and every refusal handed back as it was given.

Used by the kubectl plugin (govcloud.cli). Unlike govcloud.k8s.client (the operator's
connection) nothing here retries a refusal, falls back to another identity or reads a
credential of the operator's: what the user may not do, the plugin does not do.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import config as k8s_config
from kubernetes.client import Configuration
from kubernetes.client import rest as k8s_rest

from govcloud import __version__

USER_AGENT = f"kubectl-govcloud/{__version__}"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"

Manifest = dict[str, Any]


class RefusedError(RuntimeError):
    """The API server refused or failed a request; `status` is the HTTP code (0: unreachable)."""

    def __init__(
        self,
        message: str,
        status: int = 0,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = dict(details or {})

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def by_admission(self) -> bool:
        """RefusedError by an admission policy or webhook (not by RBAC)."""
        return "denied request" in self.message or "admission webhook" in self.message


class ConfigError(RuntimeError):
    """No usable kubeconfig, context or flags."""


def path(
    group: str,
    version: str,
    plural: str,
    name: str | None = None,
    namespace: str | None = None,
) -> str:
    """The REST path of a collection or of one object (group "" is the core group)."""
    parts = ["/api", version] if not group else ["/apis", group, version]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    return "/".join(parts)


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """What kubectl would use: the file (or $KUBECONFIG, ~/.kube/config) and the context;
    in-cluster only when neither is named and no kubeconfig exists."""
    configuration = Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=kubeconfig,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (k8s_config.ConfigException, OSError) as error:
        if kubeconfig or context:
            raise ConfigError(f"cannot use the kubeconfig: {error}") from error
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            raise ConfigError(
                f"no kubeconfig found ({error}); pass --kubeconfig or set KUBECONFIG"
            ) from error
    return configuration


class UserClient:
    """JSON over the API server's REST paths, with the user's own credentials."""

    def __init__(
        self,
        configuration: Configuration,
        as_user: str | None = None,
        as_groups: Sequence[str] = (),
        as_uid: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if (as_groups or as_uid) and not as_user:
            raise ConfigError("--as-group and --as-uid need --as (the user to impersonate)")
        self.configuration = configuration
        self.as_user = as_user
        self.as_groups = tuple(as_groups)
        self.as_uid = as_uid
        self.timeout = timeout
        self._pool = k8s_rest.RESTClientObject(configuration).pool_manager

    @property
    def server(self) -> str:
        return str(self.configuration.host).rstrip("/")

    def _headers(self, content_type: str | None) -> urllib3.HTTPHeaderDict:
        headers = urllib3.HTTPHeaderDict()
        headers["Accept"] = JSON
        headers["User-Agent"] = USER_AGENT
        if content_type:
            headers["Content-Type"] = content_type
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        if self.configuration.username and self.configuration.password:
            headers["Authorization"] = self.configuration.get_basic_auth_token()
        if self.as_user:
            headers["Impersonate-User"] = self.as_user
            for group in self.as_groups:  # one header per group, as kubectl sends them
                headers.add("Impersonate-Group", group)
            if self.as_uid:
                headers["Impersonate-Uid"] = self.as_uid
        return headers

    def request(
        self,
        method: str,
        url_path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Any:
        url = self.server + url_path + (f"?{urlencode(dict(query))}" if query else "")
        payload = None if body is None else json.dumps(body).encode()
        try:
            response = self._pool.request(
                method,
                url,
                body=payload,
                headers=self._headers(content_type or (JSON if payload is not None else None)),
                timeout=urllib3.Timeout(total=self.timeout),
                retries=False,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as error:
            raise RefusedError(f"cannot reach the API server at {self.server}: {error}") from error
        data = response.data or b""
        if response.status >= 400:
            raise _refusal(response.status, data)
        return json.loads(data) if data else {}

    # -- verbs -------------------------------------------------------------------------------

    def get(self, url_path: str) -> Manifest | None:
        """The object, or None when it does not exist (any other refusal is raised)."""
        try:
            return dict(self.request("GET", url_path))
        except RefusedError as error:
            if error.status == 404:
                return None
            raise

    def list(self, url_path: str, **query: str) -> list[Manifest]:
        found = self.request("GET", url_path, query=query or None)
        return [dict(item) for item in found.get("items") or []]

    def create(self, url_path: str, body: Manifest) -> Manifest:
        return dict(self.request("POST", url_path, body=body))

    def patch_merge(self, url_path: str, body: Manifest) -> Manifest:
        return dict(self.request("PATCH", url_path, body=body, content_type=MERGE_PATCH))

    # -- who am I, what may I ------------------------------------------------------------------

    def user_info(self) -> dict[str, Any]:
        """SelfSubjectReview: the username and groups the API server sees for this request."""
        review = self.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return dict((review.get("status") or {}).get("userInfo") or {})

    def may(
        self,
        verb: str,
        group: str,
        resource: str,
        name: str | None = None,
        namespace: str | None = None,
    ) -> bool:
        """SelfSubjectAccessReview: may I `verb` the resource (cluster-wide when no namespace)?"""
        attributes = {"verb": verb, "group": group, "resource": resource}
        if name:
            attributes["name"] = name
        if namespace:
            attributes["namespace"] = namespace
        review = self.create(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    def rules(self, namespace: str = "default") -> tuple[builtins.list[dict[str, Any]], bool]:
        """SelfSubjectRulesReview: the rules that apply to me in `namespace` (cluster-wide
        grants included), and whether the list is incomplete (an authorizer that cannot list)."""
        review = self.create(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectRulesReview",
                "spec": {"namespace": namespace},
            },
        )
        status = review.get("status") or {}
        return [dict(rule) for rule in status.get("resourceRules") or []], bool(
            status.get("incomplete")
        )


def _refusal(status: int, data: bytes) -> RefusedError:
    text = data.decode(errors="replace")
    try:
        decoded = json.loads(text)
    except ValueError:
        return RefusedError(one_line(text) or f"HTTP {status}", status)
    if not isinstance(decoded, dict):
        return RefusedError(one_line(text), status)
    return RefusedError(
        one_line(str(decoded.get("message") or text)),
        status,
        str(decoded.get("reason") or ""),
        decoded.get("details") or {},
    )


def one_line(text: str) -> str:
    """Whitespace (newlines of a folded policy message included) collapsed to single spaces."""
    return re.sub(r"\s+", " ", text).strip()
