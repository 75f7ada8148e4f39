"""CEL rules of the CRD evaluated in Python (cel-python), with the Kubernetes extensions they use.

Values are converted by their schema, as the API server does: a `number` field is a double in CEL even when
written as 1, so `v.quality >= 0.9` compares like types; an `integer` field written as 2.0 passes the schema but
cannot be read by a rule. A rule that cannot be evaluated (that, or quantity("abc")) is an error, reported
apart from a rule that is false, as the API server does. The Kubernetes quantity library (isQuantity,
quantity, isGreaterThan, isLessThan, compareTo) is provided on top of the standard CEL functions.
"""

from decimal import Decimal
from functools import cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from inferbudget.api.quantity import QuantityError, is_quantity, parse_quantity

Schema = dict[str, Any]


# What the API server says when quantity() is given something else.
_QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


class CelQuantity:
    """A quantity value inside CEL (what Kubernetes' quantity() returns)."""

    def __init__(self, value: Decimal) -> None:
        self.value = value


def _quantity(text: celtypes.StringType) -> CelQuantity | CELEvalError:
    try:
        return CelQuantity(parse_quantity(str(text)))
    except QuantityError:
        return CELEvalError(_QUANTITY_FORMAT)


def _compare(left: CelQuantity, right: CelQuantity) -> int:
    return (left.value > right.value) - (left.value < right.value)


_FUNCTIONS: dict[str, Any] = {
    "isQuantity": lambda text: celtypes.BoolType(is_quantity(str(text))),
    "quantity": _quantity,
    "compareTo": lambda left, right: celtypes.IntType(_compare(left, right)),
    "isGreaterThan": lambda left, right: celtypes.BoolType(_compare(left, right) > 0),
    "isLessThan": lambda left, right: celtypes.BoolType(_compare(left, right) < 0),
}
_ENVIRONMENT = celpy.Environment()


@cache
def _program(rule: str) -> celpy.Runner:
    return _ENVIRONMENT.program(_ENVIRONMENT.compile(rule), functions=_FUNCTIONS)


class RuleError(Exception):
    """A rule that could not be evaluated; the message is the API server's words for why."""


_FLOAT_AS_INT = "invalid data, expected int, got float64"


def to_cel(value: Any, schema: Schema) -> Any:
    """A JSON value as a CEL value of the type its schema declares."""
    kind = schema.get("type")
    if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        return json_to_cel(value)
    if kind == "object" and isinstance(value, dict):
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        entry_schema = extra if isinstance(extra, dict) else {}
        return celtypes.MapType({
            celtypes.StringType(key): to_cel(item, properties.get(key, entry_schema))
            for key, item in value.items()
        })
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(item, schema.get("items", {})) for item in value])
    if kind == "number" and isinstance(value, int | float):
        return celtypes.DoubleType(value)
    if kind == "integer" and isinstance(value, float):
        return CELEvalError(_FLOAT_AS_INT)  # an error value: whatever reads it fails
    return json_to_cel(value)


def holds(rule: str, value: Any, schema: Schema) -> bool:
    """Whether the rule is true for value; RuleError when it cannot be evaluated."""
    try:
        result = _program(rule).evaluate({"self": to_cel(value, schema)})
    except (CELEvalError, TypeError, ValueError) as error:
        raise RuleError(_reason(error)) from error
    if isinstance(result, CELEvalError):
        raise RuleError(_reason(result))
    return bool(result)


def _reason(error: Exception) -> str:
    """The first line of an evaluation error (celpy's carry the original message first)."""
    return str(error.args[0]) if error.args else type(error).__name__
