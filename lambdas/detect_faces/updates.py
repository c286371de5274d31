"""DynamoDB UpdateItem arguments built from plain values: SET, REMOVE and ADD clauses, a condition, and only the
placeholders the expression and the condition mention (several of our attributes are DynamoDB reserved words, so
every name goes through a placeholder)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# An item as DynamoDB's API carries it: {"name": {"S": "..."}}. decode_item reads one into Python values (str, int,
# Decimal, set, bytes, list, dict: any of them, hence dict[str, Any]).
Item = dict[str, "AttributeValueTypeDef"]


def serialize(item: Mapping[str, object]) -> Item:
    """Python values as DynamoDB attribute values; None values are left out."""
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def decode_item(item: Mapping[str, AttributeValueTypeDef]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


@dataclass(frozen=True)
class IfNotExists:
    """A SET value written only when the attribute has none: `#a = if_not_exists(#a, :v)`."""

    value: object


class UpdateArgs(TypedDict):
    """UpdateItem's expression arguments, as update_args builds them."""

    UpdateExpression: str
    ExpressionAttributeNames: dict[str, str]
    ExpressionAttributeValues: Item
    ConditionExpression: NotRequired[str]
    ReturnValuesOnConditionCheckFailure: NotRequired[Literal["ALL_OLD", "NONE"]]


def update_args(
    names: Mapping[str, str],
    set_values: Mapping[str, object],
    remove: list[str],
    condition: str,
    condition_values: Mapping[str, object],
    *,
    add: Mapping[str, object] | None = None,
) -> UpdateArgs:
    names = dict(names)
    values = dict(condition_values)
    sets: list[str] = []
    removes: list[str] = []
    adds: list[str] = []
    for i, (attr, value) in enumerate(set_values.items()):
        if value is None:
            remove = [*remove, attr]
            continue
        names[f"#s{i}"] = attr
        if isinstance(value, IfNotExists):
            values[f":s{i}"] = value.value
            sets.append(f"#s{i} = if_not_exists(#s{i}, :s{i})")
        else:
            values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
    for i, attr in enumerate(dict.fromkeys(remove)):
        names[f"#r{i}"] = attr
        removes.append(f"#r{i}")
    for i, (attr, value) in enumerate((add or {}).items()):
        names[f"#a{i}"] = attr
        values[f":a{i}"] = value
        adds.append(f"#a{i} :a{i}")
    expression = (
        ("SET " + ", ".join(sets) if sets else "")
        + (" REMOVE " + ", ".join(removes) if removes else "")
        + (" ADD " + ", ".join(adds) if adds else "")
    )
    text = f"{expression} {condition}"
    args: UpdateArgs = {
        "UpdateExpression": expression.strip(),
        "ExpressionAttributeNames": {n: a for n, a in names.items() if mentions(text, n)},
        "ExpressionAttributeValues": serialize({n: v for n, v in values.items() if mentions(text, n)}),
    }
    if condition:
        args["ConditionExpression"] = condition
    return args


def mentions(text: str, placeholder: str) -> bool:
    return re.search(re.escape(placeholder) + r"(?![A-Za-z0-9_])", text) is not None
