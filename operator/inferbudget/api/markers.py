"""Annotations that carry API-server validation on the models, so the CRD is generated from them.

A model field written as ``Annotated[str, Cel("isQuantity(self)", "must be a quantity such as 24Gi")]``
gets that CEL rule in the CRD (``x-kubernetes-validations``); ``OpenAPI(format="uri")`` adds schema keywords
that pydantic has no words for. Rules that span several fields of a model go in its ``cel_rules`` class
variable. The rules are evaluated by the API server and, identically, by ``inferbudget validate``.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cel:
    """One ``x-kubernetes-validations`` rule: a CEL expression over ``self`` that must hold."""

    rule: str
    message: str
    field_path: str | None = None  # where the API server reports it, relative to the node (".min")

    def as_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


@dataclass(frozen=True)
class OpenAPI:
    """Extra OpenAPI keywords for a field's schema (format, maxLength on map keys, list markers...)."""

    items: tuple[tuple[str, Any], ...]  # a tuple, not a dict, so that Annotated[...] stays hashable

    def __init__(self, **keywords: Any) -> None:
        object.__setattr__(self, "items", tuple(keywords.items()))

    @property
    def keywords(self) -> dict[str, Any]:
        return dict(self.items)
