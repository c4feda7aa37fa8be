"""Request bodies that a route validates itself, documented as the model they must match.

Some bodies are taken as plain JSON objects and validated by the service (a rule needs the
lifecycle model to be checked, and the 422 lists every problem with its location), so
FastAPI would document them as a bare ``object``. ``Annotated[dict[str, Any],
DocumentedAs(Rule)]`` keeps that validation and gives the OpenAPI document ``Rule``'s schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


class DocumentedAs:
    """An ``Annotated`` marker: the JSON schema of ``model``, the validation of the type."""

    def __init__(self, model: type[BaseModel], *, description: str | None = None) -> None:
        self.model = model
        self.description = description

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        documented: dict[str, Any] = dict(handler(self.model.__pydantic_core_schema__))
        documented["title"] = self.model.__name__
        if self.description is not None:
            documented["description"] = self.description
        return documented
