"""Generates the InferenceBudget CRD from the models, so the API server and the operator share one source.

``python -m inferbudget.api.crd > crds/inferbudget.io_inferencebudgets.yaml`` (``make crd``) writes it; a
unit test fails when the file and the models drift apart.
"""

import sys
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
import yaml
from pydantic.fields import FieldInfo

from inferbudget.api.base import ApiModel
from inferbudget.api.markers import Cel, OpenAPI
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import InferenceBudgetStatus

GROUP = "inferbudget.io"
VERSION = "v1alpha1"
KIND = "InferenceBudget"
PLURAL = "inferencebudgets"
SHORT_NAMES = ["ib", "ibudget"]
HEADER = "# Generated from operator/inferbudget/api by `make crd`. Do not edit by hand.\n"

Schema = dict[str, Any]
_SCALARS: dict[Any, Schema] = {str: {"type": "string"}, int: {"type": "integer"},
                               float: {"type": "number"}, bool: {"type": "boolean"}}


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unions other than Optional have no structural schema: {annotation}")
        return members[0]
    return annotation


def _apply_metadata(schema: Schema, metadata: list[Any]) -> Schema:
    """Turns pydantic/annotated-types constraints and our markers into OpenAPI keywords."""
    length_keyword = {"string": "Length", "array": "Items", "object": "Properties"}.get(schema["type"], "")
    for item in metadata:
        if isinstance(item, Cel):
            schema.setdefault("x-kubernetes-validations", []).append(item.as_schema())
        elif isinstance(item, OpenAPI):
            schema.update(item.keywords)
        elif isinstance(item, at.Ge):
            schema["minimum"] = item.ge
        elif isinstance(item, at.Gt):
            schema.update(minimum=item.gt, exclusiveMinimum=True)
        elif isinstance(item, at.Le):
            schema["maximum"] = item.le
        elif isinstance(item, at.Lt):
            schema.update(maximum=item.lt, exclusiveMaximum=True)
        elif isinstance(item, at.MaxLen) and length_keyword:
            schema[f"max{length_keyword}"] = item.max_length
        elif isinstance(item, at.MinLen) and length_keyword:
            schema[f"min{length_keyword}"] = item.min_length
        else:
            raise TypeError(f"no OpenAPI equivalent for constraint {item!r}")
    return schema


def type_schema(annotation: Any) -> Schema:
    """The structural schema of a Python type used in the models."""
    annotation = _strip_optional(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return _apply_metadata(type_schema(args[0]), list(args[1:]))
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])}
    if origin is dict:
        if args[1] is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": type_schema(args[1]), **_key_rules(args[0])}
    if isinstance(annotation, type) and issubclass(annotation, ApiModel):
        return model_schema(annotation)
    if annotation in _SCALARS:
        return dict(_SCALARS[annotation])
    raise TypeError(f"no structural schema for {annotation!r}")


def _key_rules(key: Any) -> Schema:
    """Map keys have no OpenAPI keywords of their own: a length limit on them becomes a CEL rule on the map,
    or the API server would accept maps the models refuse."""
    if get_origin(key) is not typing.Annotated:
        return {}
    limits = [item.max_length for item in get_args(key)[1:] if isinstance(item, at.MaxLen)]
    if len(limits) != len(get_args(key)) - 1:
        raise TypeError(f"no CEL rule for map key constraints {key!r}")
    rule = Cel(f"self.all(key, key.size() <= {limits[0]})", f"names must be at most {limits[0]} characters long")
    return {"x-kubernetes-validations": [rule.as_schema()]}


def _default(field: FieldInfo) -> Any:
    """The CRD default of a field: plain defaults, and for nested objects whose fields all default, the object
    with those defaults spelled out (the API server checks a default against the CEL rules as it is)."""
    if field.default_factory is not None:
        factory = field.default_factory
        if isinstance(factory, type) and issubclass(factory, ApiModel):
            return factory().to_wire()
        return None
    if field.is_required() or field.default is None:
        return None
    return field.default


def field_schema(field: FieldInfo) -> Schema:
    schema = _apply_metadata(type_schema(field.annotation), list(field.metadata))
    inner = _strip_optional(field.annotation)
    model_doc = inner.__doc__ if isinstance(inner, type) and issubclass(inner, ApiModel) else None
    description = " ".join(part.strip() for part in (field.description, model_doc) if part)
    if description:
        schema["description"] = " ".join(description.split())
    default = _default(field)
    if default is not None:
        schema["default"] = default
    return schema


def model_schema(model: type[ApiModel]) -> Schema:
    properties: Schema = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        properties[key] = field_schema(field)
        if field.is_required():
            required.append(key)
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if model.cel_rules:
        schema["x-kubernetes-validations"] = [rule.as_schema() for rule in model.cel_rules]
    return schema


def _column(name: str, json_path: str, kind: str = "string", description: str = "",
            priority: int = 0) -> Schema:
    column: Schema = {"name": name, "type": kind, "jsonPath": json_path}
    if description:
        column["description"] = description
    if priority:
        column["priority"] = priority
    return column


PRINTER_COLUMNS = [
    _column("Variant", ".status.observed.variant", description="Variant running now"),
    _column("Replicas", ".status.observed.replicas", "integer", "Desired replicas"),
    _column("Latency", ".status.observed.latency", description="Observed latency / budget"),
    _column("Memory", ".status.observed.memory", description="Memory per replica / budget"),
    _column("Cost/h", ".status.observed.cost", description="Cost per hour / ceiling"),
    _column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
    _column("Age", ".metadata.creationTimestamp", "date"),
    _column("Mode", ".spec.mode", priority=1),
    _column("Reason", ".status.lastDecision.reason", description="Reason of the last decision", priority=1),
]


def render_crd() -> Schema:
    spec = model_schema(InferenceBudgetSpec)
    spec["description"] = " ".join((InferenceBudgetSpec.__doc__ or "").split())
    status = model_schema(InferenceBudgetStatus)
    status["description"] = "Observed state, written by the operator."
    root: Schema = {
        "type": "object",
        "description": "InferenceBudget keeps one served model within latency, memory and cost budgets by "
        "scaling its workload and swapping in cheaper variants (quantized, pruned, distilled).",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {"kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL,
                      "singular": KIND.lower(), "shortNames": SHORT_NAMES, "categories": ["inferbudget"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": PRINTER_COLUMNS,
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


def crd_yaml() -> str:
    return HEADER + yaml.safe_dump(render_crd(), sort_keys=False, width=120, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
