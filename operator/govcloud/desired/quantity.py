"""Kubernetes resource quantities: exact parsing to Decimal and canonical formatting back."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact, InvalidOperation

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_FRACTION_SUFFIXES = (("m", 3), ("u", 6), ("n", 9))

_QUANTITY_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]{1,3}))?$"
)
# Wide enough for any quantity the API server accepts; Inexact turns silent rounding into an error.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])
_MAX_LENGTH = 64


class QuantityError(ValueError):
    """Raised for text that is not a Kubernetes quantity (or has more precision than 1n)."""


def parse(text: str) -> Decimal:
    """Parse a quantity such as ``1500m``, ``8Gi``, ``1e3`` or ``.5`` to its exact value."""
    match = _QUANTITY_RE.match(text.strip()) if len(text) <= _MAX_LENGTH else None
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 4, 8Gi)")
    number = Decimal(match["number"])
    if match["sign"] == "-":
        number = -number
    suffix, exponent = match["suffix"] or "", match["exponent"]
    if suffix in _BINARY_SUFFIXES:
        return _EXACT.multiply(number, Decimal(1024 ** _BINARY_SUFFIXES[suffix]))
    power = int(exponent) if exponent is not None else _DECIMAL_SUFFIXES[suffix]
    return number.scaleb(power, _EXACT)


def to_milli(value: str | Decimal, *, round_up: bool = False) -> int:
    """Return ``value`` in integer thousandths, rounded down (or up with ``round_up``)."""
    exact = parse(value) if isinstance(value, str) else value
    rounding = ROUND_CEILING if round_up else ROUND_FLOOR
    return int(exact.scaleb(3, _EXACT).to_integral_value(rounding=rounding))


def from_milli(milli: int, *, binary: bool = False) -> str:
    """Format an integer number of thousandths canonically (see ``to_string``)."""
    return to_string(Decimal(milli).scaleb(-3, _EXACT), binary=binary)


def to_string(value: Decimal, *, binary: bool = False) -> str:
    """Format exactly: ``2``, ``1500m``, ``250u``; whole multiples of 1024 as ``8Gi`` if ``binary``.

    Whole numbers are written in plain digits unless ``binary`` asks for the largest exact
    binary suffix, so the result always parses back to the same value.
    """
    if value == value.to_integral_value():
        return _whole_to_string(int(value), binary=binary)
    for suffix, power in _FRACTION_SUFFIXES:
        scaled = value.scaleb(power, _EXACT)
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    raise QuantityError(f"{value} has more precision than a Kubernetes quantity (1n)")


def _whole_to_string(units: int, *, binary: bool) -> str:
    if binary and units != 0:
        for suffix, power in reversed(_BINARY_SUFFIXES.items()):
            factor = 1024**power
            if units % factor == 0:
                return f"{units // factor}{suffix}"
    return str(units)


def is_binary(resource: str) -> bool:
    """Whether a resource is a byte count best written with binary suffixes (memory, storage)."""
    name = resource.rsplit("/", 1)[-1]
    return any(word in name for word in ("memory", "storage", "hugepages-"))


def equal(left: str, right: str) -> bool:
    """Whether two quantity strings denote the same value (``1000m`` == ``1``)."""
    return parse(left) == parse(right)
