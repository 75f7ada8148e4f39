"""Offline validation of InferenceBudget objects with the API server's own rules.

The API server first refuses unknown fields (strict field validation), drops fields set to null and applies the
CRD's defaults, then checks the structural schema (types, enums, bounds), then evaluates the CEL rules
(x-kubernetes-validations) unless the schema check found a problem that blocks them (a wrong type, a value not
in an enum, a missing field, too long or too many). This module does the same, in that order, from the same
generated schema, and words each problem the way the API server does, so that ``inferbudget validate`` and
``kubectl apply`` agree. tests/e2e/test_fuzz.py holds it to that against a real API server.
"""

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from inferbudget.api import cel
from inferbudget.api.crd import GROUP, KIND, VERSION, render_crd

Schema = dict[str, Any]
API_VERSION = f"{GROUP}/{VERSION}"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_BLOCKING = "some validation rules were not checked because the object was invalid; correct the existing " \
            "errors to complete validation"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    blocks_rules: bool = False  # the API server skips the CEL rules after such a schema problem

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@cache
def root_schema() -> Schema:
    schema: Schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def apply_defaults(value: Any, schema: Schema) -> Any:
    """A copy of value with fields set to null dropped and the schema's defaults filled in, top-down like the
    API server (so `replicas: null` takes the default, and `name: null` is a missing field)."""
    value = copy.deepcopy(value)
    _default_in_place(value, schema)
    return value


def _default_in_place(value: Any, schema: Schema) -> None:
    if isinstance(value, dict):
        nullable = {key for key, sub in schema.get("properties", {}).items() if sub.get("nullable")}
        for key in [key for key, item in value.items() if item is None and key not in nullable]:
            del value[key]
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _default_in_place(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default_in_place(item, extra)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default_in_place(item, schema["items"])


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _number(value: float | int | Decimal) -> str:
    """Numbers as Go's %v prints a float64: 1 not 1.0, 0.5 as is."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def _type_matches(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":  # as Go decodes JSON: int64, or a float64 that is a whole number within 2**53
        if isinstance(value, float):
            return value.is_integer() and abs(value) < 2**53
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer" if isinstance(value, int) and -(2**63) <= value < 2**63 else "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(type(value), "unknown")


def schema_problems(value: Any, schema: Schema, path: str) -> Iterator[Problem]:
    """Structural-schema problems of value at path (a path like spec.variants[0].quality)."""
    kind = schema.get("type")
    if value is None and schema.get("nullable"):
        return
    if kind and not _type_matches(value, kind):
        yield Problem(path, f'Invalid value: "{_json_type(value)}": {path} in body must be of type {kind}: '
                            f'"{_json_type(value)}"', blocks_rules=True)
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        yield Problem(path, f'Unsupported value: "{value}": supported values: {allowed}', blocks_rules=True)
    yield from _bound_problems(value, schema, path)
    if isinstance(value, dict):
        yield from _object_problems(value, schema, path)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from schema_problems(item, schema["items"], f"{path}[{index}]")


def _bound_problems(value: Any, schema: Schema, path: str) -> Iterator[Problem]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            low, exclusive = schema["minimum"], schema.get("exclusiveMinimum", False)
            if value < low or (exclusive and value == low):
                relation = "greater than" if exclusive else "greater than or equal to"
                yield Problem(path, f"{path} in body should be {relation} {_number(low)}")
        if "maximum" in schema:
            high, exclusive = schema["maximum"], schema.get("exclusiveMaximum", False)
            if value > high or (exclusive and value == high):
                relation = "less than" if exclusive else "less than or equal to"
                yield Problem(path, f"{path} in body should be {relation} {_number(high)}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield Problem(path, f"Too long: may not be more than {schema['maxLength']} bytes", blocks_rules=True)
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield Problem(path, f"{path} in body should be at least {schema['minLength']} chars long")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield Problem(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                          blocks_rules=True)
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield Problem(path, f"{path} in body should have at least {schema['minItems']} items")
    if isinstance(value, dict) and "maxProperties" in schema and len(value) > schema["maxProperties"]:
        yield Problem(path, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                      blocks_rules=True)


def _object_problems(value: dict[str, Any], schema: Schema, path: str) -> Iterator[Problem]:
    properties: Schema = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            yield Problem(_child(path, key), "Required value", blocks_rules=True)
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        child = _child(path, key)
        if key in properties:
            yield from schema_problems(item, properties[key], child)
        elif isinstance(extra, dict):  # the schema check names a map entry limits.cpu, a CEL rule limits[cpu]
            yield from schema_problems(item, extra, child)


def unknown_fields(value: Any, schema: Schema, path: str) -> Iterator[Problem]:
    """Fields the schema does not declare: with strict field validation the API server refuses to decode
    the object at all, so these are reported alone."""
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], f"{path}[{index}]")
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            yield from unknown_fields(item, properties[key], _child(path, key))
        elif isinstance(extra, dict):
            yield from unknown_fields(item, extra, f"{path}[{key}]")
        else:
            yield Problem(_child(path, key), f'strict decoding error: unknown field "{_child(path, key)}"')


def cel_problems(value: Any, schema: Schema, path: str) -> Iterator[Problem]:
    """Problems from the x-kubernetes-validations rules, innermost first like the API server."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                yield from cel_problems(item, properties[key], _child(path, key))
            elif isinstance(extra, dict):
                yield from cel_problems(item, extra, f"{path}[{key}]")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from cel_problems(item, schema["items"], f"{path}[{index}]")
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            if not cel.holds(rule["rule"], value, schema):
                yield Problem(path + rule.get("fieldPath", ""), rule["message"])
        except cel.RuleError as error:  # reported where the rule is, not at its fieldPath
            yield Problem(path, f'Invalid value: "object": {error} evaluating rule: {rule["message"]}')


# ObjectMeta's fields: metadata is decoded strictly too (`lables:` is refused, not ignored).
_METADATA_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields"})


def _unknown_metadata(metadata: Any) -> Iterator[Problem]:
    for key in metadata if isinstance(metadata, dict) else ():
        if key not in _METADATA_FIELDS:
            yield Problem(f"metadata.{key}", f'strict decoding error: unknown field "metadata.{key}"')


def _metadata_problems(manifest: dict[str, Any]) -> Iterator[Problem]:
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        yield Problem("metadata.name", "Required value: name or generateName is required")
        return
    name = metadata.get("name")
    if isinstance(name, str) and (len(name) > 253 or not _DNS_SUBDOMAIN.match(name)):
        yield Problem("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                                       "consist of lower case alphanumeric characters, '-' or '.'")
    for field in ("labels", "annotations"):
        entries = metadata.get(field)
        for key, item in entries.items() if isinstance(entries, dict) else ():
            if not _qualified_name(str(key).lower() if field == "annotations" else str(key)):  # as Kubernetes
                yield Problem(f"metadata.{field}", f'Invalid value: "{key}": a key must be a name of up to 63 '
                              "alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric "
                              "character, optionally prefixed by a DNS subdomain and '/' (e.g. example.com/MyName)")
            elif field == "labels" and isinstance(item, str) and item and not (
                    len(item) <= 63 and _LABEL_NAME.match(item)):
                yield Problem("metadata.labels", f'Invalid value: "{item}": a valid label must be an empty string '
                              "or up to 63 alphanumeric characters, '-', '_' or '.', starting and ending with an "
                              "alphanumeric character")


def _qualified_name(key: str) -> bool:
    """A label or annotation key: name, or prefix/name with a DNS subdomain prefix (Kubernetes' rule)."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _type_meta_problems(manifest: dict[str, Any]) -> Iterator[Problem]:
    """The API server reads apiVersion and kind first with Go's case-insensitive JSON decoding, so `kind`
    spelled KIND or `apiversion` is read as them too, and fails the request when it is not a string (as a
    string it is just an unknown field)."""
    for key, value in manifest.items():
        for field in ("apiVersion", "kind"):
            if key != field and key.lower() == field.lower() and not isinstance(value, str):
                yield Problem(field, f"couldn't get version/kind; json parse error: cannot unmarshal "
                                     f"{_json_type(value)} into Go struct field .{field} of type string")


def validate_manifest(manifest: dict[str, Any]) -> list[Problem]:
    """Every problem the API server would report creating this InferenceBudget (none: it is accepted)."""
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        return [Problem("apiVersion", f"expected apiVersion: {API_VERSION} and kind: {KIND}")]
    unreadable = list(_type_meta_problems(manifest))
    if unreadable:
        return unreadable
    schema = root_schema()
    undeclared = [*_unknown_metadata(manifest.get("metadata")),
                  *unknown_fields({k: v for k, v in manifest.items() if k != "metadata"}, schema, "")]
    if undeclared:
        return undeclared
    defaulted = apply_defaults(manifest, schema)
    problems = list(_metadata_problems(defaulted))
    # The status subresource drops a status sent with the object, once decoded (unknown fields in it count).
    body = {key: item for key, item in defaulted.items() if key not in ("metadata", "status")}
    structural = list(schema_problems(body, schema, ""))
    if any(problem.blocks_rules for problem in structural):
        return [*problems, *structural, Problem("<nil>", _BLOCKING)]
    return [*problems, *structural, *cel_problems(body, schema, "")]
