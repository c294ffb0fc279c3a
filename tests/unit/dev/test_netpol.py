"""Reading cyclonus's probe tables: rows are sources, columns destinations, one block per port."""

from __future__ import annotations

import pytest

from govcloud.dev import netpol

TABLE = """\
{title}:
+----------------+--------+--------+
|                | A1/WEB | B1/WEB |
+----------------+--------+--------+
| a1/web         | .      | {ab}      |
| b1/web         | X      | .      |
+----------------+--------+--------+
"""


def block(ab: str = ".") -> str:
    return "\n".join(TABLE.format(title=title, ab=ab) for title in netpol.DIRECTIONS)


def test_each_port_gets_its_ingress_egress_and_combined_tables_in_order() -> None:
    blocks = netpol._blocks(block() + "\n\n" + block(ab="N"))
    assert len(blocks) == 2
    ingress, egress, combined = blocks[0]
    assert combined == {
        ("a1/web", "a1/web"): ".",
        ("a1/web", "b1/web"): ".",
        ("b1/web", "a1/web"): "X",
        ("b1/web", "b1/web"): ".",
    }
    assert ingress == egress == combined
    assert blocks[1][2][("a1/web", "b1/web")] == netpol.NOT_SERVED


def test_a_table_answers_by_source_and_destination() -> None:
    _, egress, combined = netpol._blocks(block())[0]
    table = netpol.Table(netpol.Port(80), combined, egress, combined)
    assert table.allowed("a1/web", "b1/web")
    assert not table.allowed("b1/web", "a1/web")
    assert table.reachable_from("b1/web") == {"b1/web"}


def test_output_that_is_not_whole_blocks_is_an_error() -> None:
    with pytest.raises(netpol.EngineError, match="not threes"):
        netpol._blocks(TABLE.format(title="Ingress", ab="."))
