"""crdgen: structural CRDs from the models, crds/ up to date, every CEL rule present."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import tenant_cases
import yaml

from govcloud.api import cel, crdgen, registry
from govcloud.api.v1alpha1 import _base, cloudtenant

REPO = pathlib.Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"

# Short names of the built-in kinds of Kubernetes 1.36 (kubectl api-resources).
BUILTIN_SHORT_NAMES = frozenset(
    {
        "cm", "cs", "csr", "crd", "crds", "cj", "deploy", "ds", "ep", "ev", "hpa", "ing",
        "ip", "limits", "netpol", "no", "ns", "pc", "pdb", "po", "psp", "pv", "pvc", "quota",
        "rc", "rs", "sa", "sc", "sts", "svc", "vac",
    }
)  # fmt: skip

Schema = dict[str, Any]


def cloudtenant_crd() -> Schema:
    return crdgen.crd(registry.CLOUDTENANT)


def root(crd: Schema) -> Schema:
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def node_at(schema: Schema, path: str) -> Schema:
    """The schema node at a dotted path: `a.b` properties, `a[]` items, `a.*` map values."""
    node = schema
    for part in filter(None, path.split(".")):
        name, items = part.removesuffix("[]"), part.endswith("[]")
        node = node["additionalProperties"] if name == "*" else node["properties"][name]
        if items:
            node = node["items"]
    return node


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}.*")


def messages_at(schema: Schema, path: str) -> list[str]:
    return [rule["message"] for rule in node_at(schema, path).get(cel.VALIDATIONS_KEY, [])]


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drift([CRDS]) == [], "run `python -m govcloud.api.crdgen`"


def test_every_registered_kind_has_a_file_name_from_its_plural() -> None:
    assert sorted(crdgen.expected_files()) == sorted(
        f"{kind.plural}.govcloud.io.yaml" for kind in registry.KINDS
    )


def test_output_is_deterministic_and_parses_back_to_the_crd() -> None:
    text = crdgen.render(registry.CLOUDTENANT)

    assert text == crdgen.render(registry.CLOUDTENANT)
    assert text.startswith(crdgen.HEADER)
    assert yaml.safe_load(text) == cloudtenant_crd()
    assert "等保" in text  # unicode is written as is, not escaped


@pytest.mark.parametrize("kind", registry.KINDS, ids=lambda kind: kind.kind)
def test_schema_is_structural(kind: registry.Kind) -> None:
    for path, node in walk(root(crdgen.crd(kind))):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert node.get("type") != "null", path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node, path
            assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}


@pytest.mark.parametrize("kind", registry.KINDS, ids=lambda kind: kind.kind)
def test_every_spec_list_map_and_validated_string_is_bounded(kind: registry.Kind) -> None:
    """CEL cost is estimated from these bounds; without them the API server refuses the CRD."""
    for path, node in walk(node_at(root(crdgen.crd(kind)), "spec"), "spec"):
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if "additionalProperties" in node:
            assert "maxProperties" in node, path
        if cel.VALIDATIONS_KEY in node and node.get("type") == "string":
            assert "maxLength" in node, path


@pytest.mark.parametrize("kind", registry.KINDS, ids=lambda kind: kind.kind)
def test_crd_serves_one_storage_version_with_status_subresource(kind: registry.Kind) -> None:
    crd = crdgen.crd(kind)
    (version,) = crd["spec"]["versions"]

    assert crd["metadata"]["name"] == f"{kind.plural}.govcloud.io"
    assert crd["spec"]["group"] == "govcloud.io"
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["govcloud"]
    assert root(crd)["required"] == ["spec"]


@pytest.mark.parametrize("kind", registry.KINDS, ids=lambda kind: kind.kind)
def test_short_names_do_not_clash_with_builtins(kind: registry.Kind) -> None:
    assert kind.short_names
    assert not BUILTIN_SHORT_NAMES & set(kind.short_names)


def test_short_names_are_unique_across_kinds() -> None:
    names = [name for kind in registry.KINDS for name in (*kind.short_names, kind.singular)]

    assert len(names) == len(set(names))


@pytest.mark.parametrize("kind", registry.KINDS, ids=lambda kind: kind.kind)
def test_printer_columns_point_at_schema_fields(kind: registry.Kind) -> None:
    crd = crdgen.crd(kind)
    for column in kind.printer_columns:
        if column.json_path.startswith(".metadata."):
            continue
        # A JSONPath filter (`conditions[?(@.type=="Ready")]`) selects items of a list.
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column.json_path)
        node = node_at(root(crd), path)
        if column.type == "date":  # a timestamp string, shown by kubectl as an age
            assert (node["type"], node.get("format")) == ("string", "date-time"), column.name
            continue
        assert node["type"] == column.type, column.name


def test_cloudtenant_crd_names_and_columns() -> None:
    crd = cloudtenant_crd()
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]

    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["ct", "govtenant"]
    assert columns[:9] == [
        "Display", "Tier", "Level", "Namespaces", "CPU", "Memory", "Phase", "Charge", "Age"
    ]  # fmt: skip


def test_quantities_accept_integers_and_strings() -> None:
    quantity = node_at(root(cloudtenant_crd()), "spec.quota.*")

    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["pattern"] == _base.QUANTITY_PATTERN
    assert quantity["minimum"] == 0


def test_wire_names_are_camel_case() -> None:
    spec = node_at(root(cloudtenant_crd()), "spec")

    assert {"displayName", "securityLevel", "limitRange", "deletionPolicy"} <= set(
        spec["properties"]
    )
    assert "serviceAccounts" in spec["properties"]["admins"]["properties"]
    assert "display_name" not in spec["properties"]


def test_defaults_are_kept() -> None:
    schema = root(cloudtenant_crd())

    assert node_at(schema, "spec.deletionPolicy")["default"] == "Retain"
    assert node_at(schema, "spec.network.isolated")["default"] is True
    assert node_at(schema, "spec.classified")["default"] is False


def test_unknown_tier_is_refused_by_the_enum() -> None:
    tier = node_at(root(cloudtenant_crd()), "spec.unit.tier")

    assert tier["enum"] == ["city", "county", "devzone"]


def test_status_has_the_printer_column_fields() -> None:
    status = node_at(root(cloudtenant_crd()), "status")

    assert status["properties"]["namespaceCount"]["type"] == "integer"
    assert set(status["properties"]["usage"]["properties"]) == {"cpu", "memory"}
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


@pytest.mark.parametrize("case", tenant_cases.CEL_CASES, ids=lambda case: case.id)
def test_each_bad_input_has_a_cel_rule_with_its_message(case: tenant_cases.BadCase) -> None:
    messages = messages_at(root(cloudtenant_crd()), case.rule_at)

    assert any(case.message in message for message in messages), messages


def _ratcheted_root_rules() -> list[dict[str, Any]]:
    """The root rules but the transition rule on placement (it runs on updates only)."""
    frozen = cloudtenant.PLACEMENT_FROZEN.to_schema()
    return [rule for rule in root(cloudtenant_crd())[cel.VALIDATIONS_KEY] if rule != frozen]


def test_placement_freezes_by_a_transition_rule_on_the_root() -> None:
    rules = root(cloudtenant_crd())[cel.VALIDATIONS_KEY]

    assert cloudtenant.PLACEMENT_FROZEN.to_schema() in rules
    assert "optionalOldSelf" not in cloudtenant.PLACEMENT_FROZEN.to_schema()


def test_root_rules_use_the_tenant_name() -> None:
    rules = _ratcheted_root_rules()

    assert rules
    assert all("self.metadata.name" in rule["rule"] for rule in rules)


def test_root_rules_ratchet_so_stored_tenants_stay_writable() -> None:
    """Every status or finalizer write changes the root: a root rule judges only what changed."""
    rules = _ratcheted_root_rules()

    assert all(rule.get("optionalOldSelf") is True for rule in rules)
    assert all(
        rule["rule"].startswith(("oldSelf.hasValue()", "(oldSelf.hasValue()")) for rule in rules
    )


class _Union(pydantic.BaseModel):
    value: int | str


class _Set(pydantic.BaseModel):
    value: set[str]


class _Positive(pydantic.BaseModel):
    value: float = pydantic.Field(gt=0)


@pytest.mark.parametrize("model", [_Union, _Set], ids=["union", "set"])
def test_models_that_cannot_be_structural_are_refused(model: type[pydantic.BaseModel]) -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural_schema(model)


def test_exclusive_bounds_become_openapi_v3_flags() -> None:
    schema = crdgen.structural_schema(_Positive)

    assert schema["properties"]["value"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = crdgen.main(list(argv))
    return code, capsys.readouterr().err


def test_check_fails_on_missing_files_and_names_them(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(capsys, "--check", "--out", str(tmp_path))

    assert code == 1
    assert f"{tmp_path / 'cloudtenants.govcloud.io.yaml'}: missing" in err


def test_check_passes_after_generating_into_every_out_dir(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = [str(tmp_path / "crds"), str(tmp_path / "chart" / "crds")]

    assert run(capsys, "--out", dirs[0], "--out", dirs[1])[0] == 0
    assert run(capsys, "--check", "--out", dirs[0], "--out", dirs[1]) == (0, "")


def test_check_reports_edited_and_stale_files(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crdgen.write([tmp_path])
    edited = tmp_path / "cloudtenants.govcloud.io.yaml"
    edited.write_text(edited.read_text(encoding="utf-8") + "# hand edit\n", encoding="utf-8")
    stale = tmp_path / "oldkinds.govcloud.io.yaml"
    stale.write_text(crdgen.HEADER, encoding="utf-8")

    code, err = run(capsys, "--check", "--out", str(tmp_path))

    assert code == 1
    assert f"{edited}: differs from the models" in err
    assert f"{stale}: no registered kind" in err


def test_write_repairs_drift_and_removes_stale_generated_files(tmp_path: pathlib.Path) -> None:
    stale = tmp_path / "oldkinds.govcloud.io.yaml"
    stale.write_text(crdgen.HEADER, encoding="utf-8")
    handwritten = tmp_path / "other.yaml"
    handwritten.write_text("kind: Other\n", encoding="utf-8")

    crdgen.write([tmp_path])

    assert not stale.exists()
    assert handwritten.exists()
    assert crdgen.drift([tmp_path]) == []
