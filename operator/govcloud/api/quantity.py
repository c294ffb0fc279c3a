"""The one Kubernetes quantity grammar: the CRD pattern and the exact parser share its bounds."""

from __future__ import annotations

import re
from decimal import ROUND_UP, Context, Decimal, Inexact, InvalidOperation

# Bounds shared by the CRD schema and the parser: a quantity the CRD accepts always parses.
MAX_LENGTH = 64
MAX_EXPONENT_DIGITS = 3
# The largest amount a spec may ask for: the largest whose milli-value is an int64, as the API
# server's quota checks need (7Ei of an integer resource is refused as "must be an integer").
# Without a bound a tenant quota of 9e999 splits into amounts the API server writes back with
# a four-digit exponent, which no longer parse.
MAX_VALUE_TEXT = "9223372036854775"
MAX_VALUE = Decimal(MAX_VALUE_TEXT)

# Non-negative, as the CRD takes it: digits, optional fraction, a suffix or an exponent.
PATTERN = (
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    rf"(([KMGTPE]i)|[numkMGTPE]|([eE][-+]?[0-9]{{1,{MAX_EXPONENT_DIGITS}}}))?$"
)

_PARSE_RE = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>[KMGTPE]i|[numkMGTPE])"
    rf"|[eE](?P<exponent>[+-]?[0-9]{{1,{MAX_EXPONENT_DIGITS}}}))?$"
)
BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
DECIMAL_SUFFIXES = {
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
# Wide enough for any quantity the grammar admits; Inexact turns silent rounding into an error.
EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])
NANO_EXPONENT = -9
NANO = Decimal(1).scaleb(NANO_EXPONENT)
_ROUNDING = Context(prec=200, traps=[InvalidOperation])


class QuantityError(ValueError):
    """Raised for text that is not a Kubernetes quantity."""


def parse(text: str) -> Decimal:
    """Parse a quantity such as ``1500m``, ``8Gi``, ``1e3`` or ``.5`` to its exact value.

    As the API server does, a non-zero amount finer than 1n is rounded up (away from zero) to
    whole nanos: ``0.1n`` is ``1n``, so every parsed value formats back as a quantity.
    """
    match = _PARSE_RE.match(text.strip()) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 4, 8Gi)")
    number = Decimal(match["number"])
    if match["sign"] == "-":
        number = -number
    suffix, exponent = match["suffix"] or "", match["exponent"]
    if suffix in BINARY_SUFFIXES:
        return _whole_nanos(EXACT.multiply(number, Decimal(1024 ** BINARY_SUFFIXES[suffix])))
    power = int(exponent) if exponent is not None else DECIMAL_SUFFIXES[suffix]
    return _whole_nanos(number.scaleb(power, EXACT))


def within_bounds(value: Decimal) -> bool:
    """Whether a parsed amount is one a spec may ask for (see ``MAX_VALUE``)."""
    return abs(value) <= MAX_VALUE


def _whole_nanos(value: Decimal) -> Decimal:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < NANO_EXPONENT:
        return value.quantize(NANO, rounding=ROUND_UP, context=_ROUNDING)
    return value
