"""Rejections as values, and pydantic errors turned into short, user-facing sentences.

A rejected message is never an exception: :class:`Rejection` is what the HTTP layer renders
as Segment's ``{"code", "message"}`` and what goes to ``clm.dead-letters`` as the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

#: The message is not valid per the Tracking API (missing ids, bad types, bad dates…).
INVALID_MESSAGE: Final = "invalid_message"
#: A known E-commerce Spec event whose properties break the spec (price not a number…).
INVALID_EVENT_PROPERTIES: Final = "invalid_event_properties"
#: One message is over :data:`~services.ingest.tracking.validate.MAX_MESSAGE_BYTES`.
MESSAGE_TOO_LARGE: Final = "message_too_large"
#: A batch record is over :data:`~services.ingest.tracking.validate.MAX_BATCH_BYTES`.
BATCH_TOO_LARGE: Final = "batch_too_large"
#: The batch body itself is malformed (``batch`` not a list, bad batch ``sentAt``…).
INVALID_BATCH: Final = "invalid_batch"
#: A Kafka record that is not JSON at all.
INVALID_JSON: Final = "invalid_json"

#: ``PydanticCustomError`` type of our own validators; their text follows the field name.
CUSTOM_ERROR: Final = "clm"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a machine ``code`` and a one-line ``message`` for people.

    ``errors`` lists every problem found, one sentence each (``message`` names the first);
    it is what the rejected-input store keeps, and is left out of comparisons.
    """

    code: str
    message: str
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def invalid(cls, code: str, exc: ValidationError, *, root: str = "") -> Rejection:
        """The rejection of a message that failed model validation."""
        return cls(code, describe(exc, root=root), tuple(sentences(exc, root=root)))

    def as_dict(self) -> dict[str, str]:
        """Segment's error body shape."""
        return {"code": self.code, "message": self.message}


class InvalidBody(ValueError):
    """A whole request/record body is unusable (not one of its messages): answer 400."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


def field_error(template: str, **context: Any) -> PydanticCustomError:
    """An error for a field; ``template`` reads after the field's name ("must be …")."""
    return PydanticCustomError(CUSTOM_ERROR, template, context)


def show(value: object) -> str:
    """A short rendering of a rejected input for a message (strings quoted, JSON names)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def path(loc: tuple[int | str, ...], root: str = "") -> str:
    """``("products", 2, "price")`` → ``properties.products[2].price`` (with ``root``)."""
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


_TEMPLATES: Final[dict[str, str]] = {
    "missing": "is required",
    "dict_type": "must be an object, got {got}",
    "model_type": "must be an object, got {got}",
    "model_attributes_type": "must be an object, got {got}",
    "list_type": "must be a list, got {got}",
    "string_type": "must be a string, got {got}",
    "float_type": "must be a number, got {got}",
    "int_type": "must be an integer, got {got}",
    "int_from_float": "must be an integer, got {got}",
    "finite_number": "must be a finite number, got {got}",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "greater_than": "must be greater than {gt}, got {got}",
    "less_than_equal": "must be at most {le}, got {got}",
    "less_than": "must be less than {lt}, got {got}",
}


def _sentence(error: ErrorDetails, root: str) -> str:
    where = path(error["loc"], root)
    if error["type"] == CUSTOM_ERROR:
        text = error["msg"]
    else:
        template = _TEMPLATES.get(error["type"])
        if template is None:
            text = error["msg"][:1].lower() + error["msg"][1:]
        else:
            limits = {k: _number(v) for k, v in error.get("ctx", {}).items()}
            text = template.format(got=show(error.get("input")), **limits)
    return f"{where} {text}" if where else text


def sentences(exc: ValidationError, *, root: str = "") -> list[str]:
    """Every error of ``exc``, one sentence each naming its field."""
    return [_sentence(error, root) for error in exc.errors(include_url=False)]


def describe(exc: ValidationError, *, root: str = "") -> str:
    """The first error of ``exc`` as one sentence naming the field; a count of the others."""
    errors = exc.errors(include_url=False)
    sentence = _sentence(errors[0], root)
    if len(errors) > 1:
        sentence += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return sentence
