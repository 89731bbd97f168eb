"""One canonical form for a person's user name, so that `Pupil1`, ` pupil1 ` and a full-width
`ｐｕｐｉｌ１` are one person everywhere: the directory look-ups, the sign-in throttles,
sanctions, exceptions, unblock requests and events all compare and store this form.

Pure: NFKC (folds full-width and other compatibility spellings), case-folded, surrounding white
space removed, then NFKC again (case folding can leave a string that NFKC changes).
"""

from __future__ import annotations

import unicodedata

MAX_USER_LENGTH = 256


def canonical_user(raw: str) -> str:
    """The canonical form of the user name `raw`; ValueError (saying why) for a name that is
    empty, too long or contains control or invisible formatting characters."""
    name = unicodedata.normalize("NFKC", raw).strip()
    name = unicodedata.normalize("NFKC", name.casefold()).strip()
    if not name:
        raise ValueError("the user name is empty; type the person's school user name")
    if len(name) > MAX_USER_LENGTH:
        raise ValueError(
            f"the user name is longer than {MAX_USER_LENGTH} characters; "
            "type the person's school user name"
        )
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} for ch in name):
        raise ValueError(
            "the user name contains control or invisible characters; type it "
            "again using letters, digits and punctuation only"
        )
    return name


def same_user(a: str, b: str) -> bool:
    """Whether two user names name the same person (False if either is not a user name)."""
    try:
        return canonical_user(a) == canonical_user(b)
    except ValueError:
        return False


def user_key(raw: str) -> str:
    """The canonical form of a stored user name, for matching; a stored value that is not a
    user name at all is kept as it is (it can then match nobody's canonical name)."""
    try:
        return canonical_user(raw)
    except ValueError:
        return raw
