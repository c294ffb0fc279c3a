"""e2e fixtures: the cluster under test (any cluster via GOVCLOUD_E2E_KUBECONFIG, else a fresh
local control plane with the chart installed) and one onboarded example per scenario."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import harness
from govcloud.dev import testing

LAST = "e2e_last"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{LAST}: runs after every scenario (checks over the whole run)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scenarios first, in file order; checks marked e2e_last after all of them."""
    items.sort(key=lambda item: item.get_closest_marker(LAST) is not None)


@pytest.fixture(scope="session")
def cloud() -> Iterator[harness.Cloud]:
    started = harness.start()
    yield started
    harness.stop(started)


@pytest.fixture(scope="session")
def kubectl(cloud: harness.Cloud) -> testing.Kubectl:
    return cloud.kubectl


Onboard = Callable[[str], dict[str, object]]


@pytest.fixture(scope="module")
def onboard(cloud: harness.Cloud) -> Iterator[Onboard]:
    """Onboards examples/<file> as shipped; offboards them (and their kept namespaces) after
    the module, so every scenario starts from a clean cluster."""
    names: list[str] = []

    def onboard_example(file_name: str) -> dict[str, object]:
        manifest = cloud.example(file_name)
        names.append(manifest["metadata"]["name"])
        return cloud.onboard(manifest)

    yield onboard_example
    for name in reversed(names):
        cloud.offboard(name)
