"""The one Kubernetes quantity grammar: the CRD pattern and the exact parser share its bounds."""

from __future__ import annotations

import re
from decimal import Context, Decimal, Inexact, InvalidOperation

# Bounds shared by the CRD schema and the parser: a quantity the CRD accepts always parses.
MAX_LENGTH = 64
MAX_EXPONENT_DIGITS = 3

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


class QuantityError(ValueError):
    """Raised for text that is not a Kubernetes quantity (or has more precision than 1n)."""


def parse(text: str) -> Decimal:
    """Parse a quantity such as ``1500m``, ``8Gi``, ``1e3`` or ``.5`` to its exact value."""
    match = _PARSE_RE.match(text.strip()) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 4, 8Gi)")
    number = Decimal(match["number"])
    if match["sign"] == "-":
        number = -number
    suffix, exponent = match["suffix"] or "", match["exponent"]
    if suffix in BINARY_SUFFIXES:
        return EXACT.multiply(number, Decimal(1024 ** BINARY_SUFFIXES[suffix]))
    power = int(exponent) if exponent is not None else DECIMAL_SUFFIXES[suffix]
    return number.scaleb(power, EXACT)
