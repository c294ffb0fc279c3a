"""Quantities: every one the CRD grammar takes parses in Python and formats back exactly."""

from __future__ import annotations

import re
from decimal import Decimal

import _strategies as gen
from hypothesis import given, settings

from govcloud.api import quantity as grammar
from govcloud.desired import quantity

PROPERTY = settings(max_examples=300, derandomize=True, database=None, deadline=None)


@PROPERTY
@given(gen.grammar_quantities)
def test_every_quantity_the_crd_pattern_takes_parses(text: str) -> None:
    assert re.match(grammar.PATTERN, text)
    assert quantity.parse(text) >= 0


@PROPERTY
@given(gen.grammar_quantities)
def test_a_parsed_quantity_formats_back_to_the_same_value(text: str) -> None:
    value = quantity.parse(text)
    for binary in (False, True):
        assert quantity.parse(quantity.to_string(value, binary=binary)) == value


@PROPERTY
@given(gen.grammar_quantities)
def test_a_parsed_quantity_is_whole_nanos_as_the_api_server_keeps_it(text: str) -> None:
    value = quantity.parse(text)
    assert value.scaleb(9) == value.scaleb(9).to_integral_value()
    assert value == 0 or value >= Decimal("1e-9")
