"""Kubernetes quantity parsing and formatting is exact."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from govcloud.desired import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", "0"),
        ("2", "2"),
        ("1500m", "1.5"),
        ("0.5", "0.5"),
        (".5", "0.5"),
        ("1.", "1"),
        ("+3", "3"),
        ("-2", "-2"),
        ("5n", "0.000000005"),
        ("250u", "0.00025"),
        ("1k", "1000"),
        ("2M", "2000000"),
        ("3G", "3000000000"),
        ("1T", "1e12"),
        ("1P", "1e15"),
        ("1E", "1e18"),
        ("1Ki", "1024"),
        ("1.5Gi", "1610612736"),
        ("8Gi", "8589934592"),
        ("1Ti", str(1024**4)),
        ("1Pi", str(1024**5)),
        ("2Ei", str(2 * 1024**6)),
        ("1e3", "1000"),
        ("1E3", "1000"),
        ("15e-1", "1.5"),
        ("123456789012345678901234567890Ei", str(123456789012345678901234567890 * 1024**6)),
    ],
)
def test_parse_is_exact(text: str, value: str) -> None:
    assert quantity.parse(text) == Decimal(value)


@pytest.mark.parametrize(
    "text", ["", "m", "1.2.3", "1Kb", "1 Gi", "1ki", "Gi", "1e", "0x10", "1e1234", "--1", "1mi"]
)
def test_parse_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(quantity.QuantityError, match="not a Kubernetes quantity"):
        quantity.parse(text)


@pytest.mark.parametrize(
    ("text", "down", "up"),
    [("1", 1000, 1000), ("1500m", 1500, 1500), ("1n", 0, 1), ("1.0005", 1000, 1001), ("0", 0, 0)],
)
def test_to_milli_rounds_in_the_requested_direction(text: str, down: int, up: int) -> None:
    assert quantity.to_milli(text) == down
    assert quantity.to_milli(text, round_up=True) == up


@pytest.mark.parametrize(
    ("milli", "binary", "text"),
    [
        (0, False, "0"),
        (0, True, "0"),
        (1500, False, "1500m"),
        (2000, False, "2"),
        (1, False, "1m"),
        (1024 * 1000, True, "1Ki"),
        (1024 * 1000, False, "1024"),
        (1536 * 1024 * 1024 * 1000, True, "1536Mi"),
        (8 * 1024**3 * 1000, True, "8Gi"),
        (1000 * 1000, True, "1000"),
        (1500, True, "1500m"),
        (-2000, False, "-2"),
    ],
)
def test_from_milli_is_canonical(milli: int, binary: bool, text: str) -> None:
    assert quantity.from_milli(milli, binary=binary) == text


@pytest.mark.parametrize(
    ("value", "text"), [("0.000001", "1u"), ("0.000000002", "2n"), ("0.25", "250m")]
)
def test_to_string_uses_the_coarsest_exact_fraction_suffix(value: str, text: str) -> None:
    assert quantity.to_string(Decimal(value)) == text


def test_to_string_refuses_precision_below_a_nano() -> None:
    with pytest.raises(quantity.QuantityError, match="precision"):
        quantity.to_string(Decimal("0.0000000001"))


@pytest.mark.parametrize("seed", range(20))
def test_formatting_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        milli = rng.choice([rng.randrange(10**4), rng.randrange(10**18), rng.randrange(4) << 40])
        binary = rng.random() < 0.5
        assert quantity.to_milli(quantity.from_milli(milli, binary=binary)) == milli


@pytest.mark.parametrize(
    ("resource", "binary"),
    [
        ("requests.memory", True),
        ("limits.memory", True),
        ("memory", True),
        ("requests.storage", True),
        ("requests.ephemeral-storage", True),
        ("gold.storageclass.storage.k8s.io/requests.storage", True),
        ("requests.hugepages-2Mi", True),
        ("requests.cpu", False),
        ("pods", False),
        ("count/pods", False),
        ("gold.storageclass.storage.k8s.io/persistentvolumeclaims", False),
        ("requests.nvidia.com/gpu", False),
    ],
)
def test_is_binary_marks_byte_counts(resource: str, binary: bool) -> None:
    assert quantity.is_binary(resource) is binary


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [("1000m", "1", True), ("1Ki", "1024", True), ("1k", "1Ki", False), ("1e3", "1k", True)],
)
def test_equal_compares_values(left: str, right: str, same: bool) -> None:
    assert quantity.equal(left, right) is same
