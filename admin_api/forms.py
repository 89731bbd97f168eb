"""Reading form posts and checking every field: shared field types that refuse control
characters and unencodable text, and `validate` that turns pydantic's errors into one clear
message per field for the form to show beside it."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ValidationError

from admin_api.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n\t]")
MAX_FORM_FIELD = 100_000  # characters; the fields' own limits are far lower


def _encodable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains characters that are not valid text") from None
    return text


def check_single_line(text: str) -> str:
    text = _encodable(text).strip()
    if _CONTROL.search(text) or _LINE_BREAKS.search(text):
        raise ValueError("must be one line of ordinary text (no control characters)")
    return text


def _free_text(text: str) -> str:
    text = _encodable(text).replace("\r\n", "\n").strip()
    if _CONTROL.search(text):
        raise ValueError("contains control characters; please type ordinary text")
    return text


SingleLine = Annotated[str, AfterValidator(check_single_line)]
FreeText = Annotated[str, AfterValidator(_free_text)]

_MESSAGES = {
    "string_too_short": "is too short: {min_length} characters at least",
    "string_too_long": "is too long: {max_length} characters at most",
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "enum": "must be one of: {expected}",
    "literal_error": "must be one of: {expected}",
    "date_from_datetime_parsing": "must be a date (YYYY-MM-DD)",
    "date_parsing": "must be a date (YYYY-MM-DD)",
    "datetime_parsing": "must be a date and time (YYYY-MM-DD HH:MM)",
    "datetime_from_date_parsing": "must be a date and time (YYYY-MM-DD HH:MM)",
    "string_pattern_mismatch": "is not in the expected form",
    "string_type": "must be text",
}


def problems_of(error: ValidationError) -> dict[str, str]:
    problems: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "form"
        template = _MESSAGES.get(item["type"])
        context = item.get("ctx") or {}
        try:
            text = template.format(**context) if template else item["msg"]
        except (KeyError, IndexError):
            text = item["msg"]
        problems.setdefault(field, text.removeprefix("Value error, "))
    return problems


def validate[M: BaseModel](model: type[M], data: Any) -> M:
    """`model` from form fields or JSON; InvalidInput(field -> message) if anything is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(problems_of(error)) from None


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (blank ones left out, so defaults apply; files ignored)."""
    try:
        form = await request.form(max_files=1, max_fields=200)
    except Exception:  # a malformed body: the same answer as an empty form
        raise InvalidInput({"form": "the form could not be read; reload the page and try "
                                    "again"}) from None
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "csrf_token" and value.strip():
            fields[key[:100]] = value[:MAX_FORM_FIELD]
    return fields
