"""Kubernetes resource quantities: exact parsing to Decimal and canonical formatting back."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from govcloud.api import quantity as grammar

_BINARY_SUFFIXES = grammar.BINARY_SUFFIXES
_FRACTION_SUFFIXES = (("m", 3), ("u", 6), ("n", 9))
_EXACT = grammar.EXACT

# The grammar (and its bounds) is the API's, so whatever the CRD accepts parses here.
QuantityError = grammar.QuantityError
parse = grammar.parse


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
    binary suffix, or the digits would be longer than a quantity may be (then ``5e70``), so
    the result always parses back to the same value. Raises ``QuantityError`` for a value
    finer than 1n, or one that no quantity of the grammar's length can write exactly.
    """
    if value == value.to_integral_value():
        text = _whole_to_string(int(value), binary=binary)
    else:
        text = _fraction_to_string(value)
    if len(text) > grammar.MAX_LENGTH:
        raise QuantityError(f"{value} is too long to write as a Kubernetes quantity")
    return text


def _fraction_to_string(value: Decimal) -> str:
    for suffix, power in _FRACTION_SUFFIXES:
        scaled = value.scaleb(power, _EXACT)
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    raise QuantityError(f"{value} has more precision than a Kubernetes quantity (1n)")


def _whole_to_string(units: int, *, binary: bool) -> str:
    if binary and units != 0:
        for suffix, power in reversed(_BINARY_SUFFIXES.items()):
            factor = 1024**power
            if units % factor == 0 and len(str(units // factor)) < grammar.MAX_LENGTH - 1:
                return f"{units // factor}{suffix}"
    digits = str(units)
    if len(digits) <= grammar.MAX_LENGTH:
        return digits
    significant = digits.rstrip("0")
    exponent = str(len(digits) - len(significant))
    if len(exponent) > grammar.MAX_EXPONENT_DIGITS:
        raise QuantityError(f"a {len(digits)}-digit amount is too large for a quantity")
    return f"{significant}e{exponent}"


def is_binary(resource: str) -> bool:
    """Whether a resource is a byte count best written with binary suffixes (memory, storage)."""
    name = resource.rsplit("/", 1)[-1]
    return any(word in name for word in ("memory", "storage", "hugepages-"))


def equal(left: str, right: str) -> bool:
    """Whether two quantity strings denote the same value (``1000m`` == ``1``)."""
    return parse(left) == parse(right)
