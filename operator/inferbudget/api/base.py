"""The base of every API model: camelCase on the wire, snake_case in Python, immutable values."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from inferbudget.api.markers import Cel


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    # Rules that relate several fields of this object; they become the object's x-kubernetes-validations.
    cel_rules: ClassVar[tuple[Cel, ...]] = ()

    def to_wire(self) -> dict[str, object]:
        """The object as the API server stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
