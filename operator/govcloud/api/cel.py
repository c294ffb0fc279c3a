"""CEL rules: declared beside the pydantic models, emitted as x-kubernetes-validations."""

from __future__ import annotations

import dataclasses
from typing import Any

VALIDATIONS_KEY = "x-kubernetes-validations"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One x-kubernetes-validations entry; `self` is the value of the schema node it sits on."""

    rule: str
    message: str
    message_expression: str | None = None
    reason: str | None = None
    field_path: str | None = None
    # Run the rule on create as well, with `oldSelf` an optional (absent on create). Root rules
    # use it to ratchet: the root changes with every status or finalizer write, so a plain
    # root rule would block those writes on an object stored before the rule existed.
    optional_old_self: bool = False

    def to_schema(self) -> dict[str, Any]:
        """The rule as it appears in the CRD, keys in the order the API documents them."""
        entry: dict[str, Any] = {"rule": self.rule, "message": self.message}
        optional = {
            "messageExpression": self.message_expression,
            "reason": self.reason,
            "fieldPath": self.field_path,
            "optionalOldSelf": self.optional_old_self or None,
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        return entry


def validations(*rules: Rule) -> dict[str, Any]:
    """The `json_schema_extra` that attaches `rules` to a pydantic field or model."""
    return {VALIDATIONS_KEY: [rule.to_schema() for rule in rules]}
