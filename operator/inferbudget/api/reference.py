"""Writes docs/reference.md, the full InferenceBudget reference, from the CRD schema (`make docs`).

The CRD is itself generated from the models, so the reference, `kubectl explain` and the API server all say
the same thing; a unit test fails when docs/reference.md is out of date.
"""

import json
import sys
from typing import Any

from inferbudget.api.crd import GROUP, KIND, VERSION, render_crd

Schema = dict[str, Any]


def _type(schema: Schema) -> str:
    kind = schema.get("type", "any")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map[string]{_type(schema['additionalProperties'])}"
    return str(kind)


def _constraints(schema: Schema) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{value}`" for value in schema["enum"]))
    if "minimum" in schema:
        parts.append(f"{'>' if schema.get('exclusiveMinimum') else '>='} {schema['minimum']}")
    if "maximum" in schema:
        parts.append(f"{'<' if schema.get('exclusiveMaximum') else '<='} {schema['maximum']}")
    for keyword, text in (("maxLength", "at most {} characters"), ("minItems", "at least {} items"),
                          ("maxItems", "at most {} items"), ("maxProperties", "at most {} entries")):
        if keyword in schema:
            parts.append(text.format(schema[keyword]))
    if "default" in schema and not isinstance(schema["default"], dict):
        parts.append(f"default `{json.dumps(schema['default'])}`")
    return "; ".join(parts)


def _rows(schema: Schema, path: str, required: set[str]) -> list[str]:
    rows = []
    for name, child in schema.get("properties", {}).items():
        field_path = f"{path}.{name}" if path else name
        description = _cell(child.get("description", ""))
        needed = "yes" if name in required else ""
        rows.append(f"| `{field_path}` | {_type(child)} | {needed} | {description} | {_constraints(child)} |")
        nested, suffix = (child.get("items", child), "[]") if child.get("type") == "array" else (child, "")
        if isinstance(nested.get("additionalProperties"), dict):
            nested, suffix = nested["additionalProperties"], suffix + "[key]"  # a map: its values' fields
        rows += _rows(nested, field_path + suffix, set(nested.get("required", [])))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rules(schema: Schema, path: str) -> list[str]:
    found = [f"| `{path or '.'}` | {_cell(rule['message'])} | `{_cell(rule['rule'])}` |"
             for rule in schema.get("x-kubernetes-validations", [])]
    for name, child in schema.get("properties", {}).items():
        found += _rules(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        found += _rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _rules(schema["additionalProperties"], f"{path}[key]")
    return found


def render_reference() -> str:
    root: Schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec, status = root["properties"]["spec"], root["properties"]["status"]
    header = "| field | type | required | description | constraints |\n|---|---|---|---|---|"
    return "\n".join([
        f"# {KIND} reference ({GROUP}/{VERSION})",
        "",
        "Generated from the CRD schema by `make docs`; do not edit by hand. `kubectl explain "
        "inferencebudget.spec` shows the same descriptions.",
        "",
        root["description"],
        "",
        "## spec",
        "",
        header,
        *_rows(spec, "spec", set(spec.get("required", []))),
        "",
        "## Validation rules",
        "",
        "Checked by the API server (CEL) and by `inferbudget validate`, with these messages:",
        "",
        "| where | message | rule |\n|---|---|---|",
        *_rules(spec, "spec"),
        "",
        "## status",
        "",
        "Written by the operator; everything it needs to resume after a restart is here.",
        "",
        header,
        *_rows(status, "status", set()),
        "",
    ])


if __name__ == "__main__":
    sys.stdout.write(render_reference())
