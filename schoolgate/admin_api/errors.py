"""The admin's domain errors, and the HTTP status each one means. One exception handler in
admin_api/app.py turns them into a page (for people) or JSON (under /api).

    AdminError              base: .status, .code and a message that says what to do
    ├── NotSignedIn         401  no session, or it expired (pages redirect to the sign-in form)
    ├── NotAllowed          403  the signed-in role may not do this
    │   └── CsrfFailed      403  a form came without this session's anti-forgery token
    ├── NotFound            404  no such request, exception or list entry
    ├── Conflict            409  the thing changed meanwhile (e.g. a request already decided)
    ├── InvalidInput        422  form or JSON fields wrong; .problems maps field -> message
    │   └── PolicyForbids   422  the policy does not allow this grant (locked, not unblockable)
    ├── TooManyAttempts     429  sign-in throttled; .retry_after seconds
    └── Unavailable         503  the directory or the database cannot be reached
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# What each form field is, in the words of the person filling it in.
FIELD_WORDS: dict[str, str] = {
    "why": "why you need it",
    "host": "the website",
    "site": "the website",
    "who": "who it is for",
    "for_group": "the class or group",
    "wanted_on": "the day",
    "wanted_period": "the lesson",
    "until": "the end time",
    "hours": "the number of hours",
    "days": "the number of days",
    "minutes": "the number of minutes",
    "note": "the note",
    "user": "the person's user name",
    "username": "your user name",
    "password": "your password",
    "what_happened": "what happened",
    "action_taken": "what was done",
    "outcome": "the outcome",
    "reason": "the reason",
    "from": "the first day",
    "to": "the last day",
    "at": "the time",
    "ip": "the address",
    "category": "the kind of website",
    "technique": "the way round the filter",
    "verdict": "block or allow",
    "scope": "who it is for",
    "target_kind": "what it opens",
    "duration": "for how long",
    "period": "the period",
    "text": "the policy",
    "week": "the week",
    "school_id": "the school's id",
    "school_name": "the school's name",
    "subnets": "the school's address ranges",
    "policy_file": "the school's policy file",
    "school_id_again": "the school's id",
}


def field_words(field: str) -> str:
    """The field's name as the person filling in the form knows it."""
    return FIELD_WORDS.get(field, field.replace("_", " "))


# A problem that starts with one of these says something about its field, which it then
# names ('contains a slash' -> 'The website contains a slash'); any other is a sentence of its
# own ('choose a period' -> 'Choose a period', not 'The period choose a period').
_ABOUT_THE_FIELD = (
    "must ",
    "contains ",
    "is ",
    "isn't ",
    "has ",
    "cannot ",
    "can only ",
    "should ",
    "was ",
    "needs ",
    "does ",
    "looks ",
)


# A problem that starts with a name (a site, 'rules[0].categories') keeps its case.
_NAME_FIRST = re.compile(r"[a-z0-9-]+[.\[_]\S*[ ,:]")


def plain_problem(field: str, text: str) -> str:
    """A problem as a sentence: one about the field names it ('contains a slash' on `host`
    becomes 'The website contains a slash'); an instruction or a sentence of its own is only
    given its capital ('name the group' -> 'Name the group')."""
    text = text.strip()
    if text.startswith(_ABOUT_THE_FIELD) and field not in ("", "form"):
        text = f"{field_words(field)} {text}"
    if _NAME_FIRST.match(text):  # "x.com can never ...", not "X.com can never ..."
        return text
    return text[:1].upper() + text[1:]


class AdminError(Exception):
    status = 500
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotSignedIn(AdminError):
    status = 401
    code = "not_signed_in"


class NotAllowed(AdminError):
    status = 403
    code = "not_allowed"


class CsrfFailed(NotAllowed):
    code = "csrf_failed"


class NotFound(AdminError):
    status = 404
    code = "not_found"


class Conflict(AdminError):
    status = 409
    code = "conflict"


class InvalidInput(AdminError):
    status = 422
    code = "invalid_input"

    def __init__(self, problems: Mapping[str, str], message: str | None = None) -> None:
        self.problems = {field: plain_problem(field, text) for field, text in problems.items()}
        super().__init__(
            message
            or "; ".join(
                f"{field}: {text}" if field else text for field, text in self.problems.items()
            )
        )


class PolicyForbids(InvalidInput):
    code = "policy_forbids"


class TooManyAttempts(AdminError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(AdminError):
    status = 503
    code = "unavailable"
