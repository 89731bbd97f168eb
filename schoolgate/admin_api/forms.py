"""Reading form posts and checking every field: shared field types that refuse control
characters and unencodable text, and `validate` that turns pydantic's errors into one plain
sentence per field ("Please tell us a bit more about why (at least 10 characters)") for the
form to show beside it. The one mapping from validation errors to words is `plain_words`; a
pasted web address is read as its site before anything is checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ValidationError

from schoolgate.admin_api.errors import InvalidInput, field_words

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

# (field, error type) -> a sentence written for that field; then error type -> a sentence
# for any field ({label} is the field in words). Anything else says what the check said.
_FOR_FIELD: dict[tuple[str, str], str] = {
    ("why", "too_short"): "Please tell us a bit more about why (at least {min_length} characters)",
    ("why", "missing"): "Please tell us why you need this website",
    ("host", "missing"): "Please type the website's name, for example www.bbc.co.uk",
    ("host", "too_short"): "Please type the website's name, for example www.bbc.co.uk",
    ("username", "missing"): "Please type your user name",
    ("password", "missing"): "Please type your password",
    ("user", "missing"): "Please type the person's user name, for example pupil1",
    (
        "school_id",
        "string_pattern_mismatch",
    ): "Please give the school's id in small letters, digits, "
    "'-' and '_', starting with a letter, for example ash",
}
_FOR_KIND: dict[str, str] = {
    "missing": "Please fill in {label}",
    "too_short": "Please write a little more for {label} (at least {min_length} characters)",
    "too_long": "Please make {label} shorter ({max_length} characters at most)",
    "int_parsing": "Please give {label} as a whole number, for example 3",
    "int_type": "Please give {label} as a whole number, for example 3",
    "greater_than_equal": "Please give {label} as {ge} or more",
    "greater_than": "Please give {label} as more than {gt}",
    "less_than_equal": "Please give {label} as {le} or less",
    "less_than": "Please give {label} as less than {lt}",
    "enum": "Please choose one of the options for {label}",
    "literal_error": "Please choose one of the options for {label}",
    "date_parsing": "Please give {label} as a date, for example 2026-12-18",
    "date_type": "Please give {label} as a date, for example 2026-12-18",
    "date_from_datetime_parsing": "Please give {label} as a date, for example 2026-12-18",
    "date_from_datetime_inexact": "Please give {label} as a date, for example 2026-12-18",
    "datetime_parsing": "Please give {label} as a day and a time, for example 2026-12-18 10:30",
    "datetime_type": "Please give {label} as a day and a time, for example 2026-12-18 10:30",
    "datetime_from_date_parsing": "Please give {label} as a day and a time, for example "
    "2026-12-18 10:30",
    "string_pattern_mismatch": "Please check {label}: it has characters that cannot be used there",
    "string_type": "Please type {label} as text",
    "bool_parsing": "Please choose yes or no for {label}",
    "json_invalid": "The form could not be read; reload the page and try again",
}
_SAME_KIND = {"string_too_short": "too_short", "string_too_long": "too_long"}


def _sentence(text: str) -> str:
    text = text.strip().removeprefix("Value error, ").strip()
    return text[:1].upper() + text[1:] if text else text


def plain_words(field: str, kind: str, context: Mapping[str, Any], raw: str) -> str:
    """The one mapping from a validation error to plain words: `field` (its form name),
    `kind` (pydantic's error type), `context` (its limits) and `raw` (pydantic's own text,
    used as it stands only for our own checks, which are written in plain words already)."""
    kind = _SAME_KIND.get(kind, kind)
    template = _FOR_FIELD.get((field, kind)) or _FOR_KIND.get(kind)
    if template is None:
        text = raw.strip().removeprefix("Value error, ").strip()
        if text.startswith(("must ", "contains ", "is ")):  # our own checks: name the field
            return _sentence(f"{field_words(field)} {text}")
        return _sentence(text)
    values = {str(k): v for k, v in context.items()}
    try:
        return template.format(label=field_words(field), **values)
    except (KeyError, IndexError, ValueError):
        return _sentence(raw)


def problems_of(error: ValidationError) -> dict[str, str]:
    problems: dict[str, str] = {}
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "form"
        text = plain_words(field, item["type"], item.get("ctx") or {}, item["msg"])
        problems.setdefault(field, text)
    return problems


# Fields that name a website: a pasted address is read as its site.
_SITE_FIELDS = ("host", "site")


def site_of(text: str) -> str:
    """'https://www.bbc.co.uk/news?x=1' -> 'www.bbc.co.uk'; plain names are left as typed (the
    host checks then judge them)."""
    text = text.strip()
    if "/" not in text and "@" not in text and "?" not in text and "#" not in text:
        return text
    try:
        host = urlsplit(text if "://" in text else "//" + text.lstrip("/")).hostname
    except ValueError:  # e.g. an unclosed '[': the host checks then say what is wrong
        return text
    return host or text


def validate[M: BaseModel](model: type[M], data: Any) -> M:
    """`model` from form fields or JSON; InvalidInput(field -> message) if anything is wrong."""
    if isinstance(data, Mapping):
        data = {
            key: (site_of(value) if key in _SITE_FIELDS and isinstance(value, str) else value)
            for key, value in data.items()
        }
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(problems_of(error)) from None


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (blank ones left out, so defaults apply; files ignored)."""
    try:
        form = await request.form(max_files=1, max_fields=200)
    except Exception:  # a malformed body: the same answer as an empty form
        raise InvalidInput(
            {"form": "the form could not be read; reload the page and try again"}
        ) from None
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key != "csrf_token" and value.strip():
            fields[key[:100]] = value[:MAX_FORM_FIELD]
    return fields
