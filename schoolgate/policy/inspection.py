"""Per-role inspection and safe-search settings, and the safeguarding search-term list: frozen
values the policy carries (`inspection:` and `search:` in the policy file), and the pure
matching of search words against the term list.

`inspect: all` decrypts every HTTPS connection of the role except the never-decrypt ones (the
sensitive categories); `listed` decrypts only what the policy needs to see. `safe_search` and
`youtube` say whether the gateway forces the engines' own safe modes for the role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class InspectMode(StrEnum):
    ALL = "all"  # decrypt every HTTPS connection except the never-decrypt categories
    LISTED = "listed"  # decrypt only the hosts the policy needs to see


class YouTubeMode(StrEnum):
    OFF = "off"
    MODERATE = "moderate"
    STRICT = "strict"


@dataclass(frozen=True, slots=True)
class RoleInspection:
    inspect: InspectMode = InspectMode.LISTED
    safe_search: bool = False
    youtube: YouTubeMode = YouTubeMode.OFF


NO_INSPECTION = RoleInspection()


@dataclass(frozen=True, slots=True)
class InspectionSettings:
    """What each role gets; a role not named gets `listed`, no forced safe search."""

    by_role: Mapping[str, RoleInspection] = field(default_factory=dict)

    def for_role(self, role: str) -> RoleInspection:
        return self.by_role.get(role, NO_INSPECTION)


@dataclass(frozen=True, slots=True)
class SearchTerm:
    """One safeguarding term: the words to look for and the topic it belongs to."""

    words: str  # lower case, single spaces
    topic: str


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """The safeguarding terms whose searches raise an alert for the DSL."""

    alert_terms: tuple[SearchTerm, ...] = ()
    alert_lists: tuple[str, ...] = ()  # the files they came from (for people to read)
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.pattern is None and self.alert_terms:
            # One alternation, longest first, on word boundaries: "self harm" matches in
            # "how to self harm" but "harm" alone is not a term unless listed.
            words = sorted({t.words for t in self.alert_terms}, key=len, reverse=True)
            body = "|".join(r"\s+".join(re.escape(w) for w in term.split()) for term in words)
            object.__setattr__(self, "pattern", re.compile(rf"(?<!\w)(?:{body})(?!\w)"))

    def matches(self, searched: str) -> tuple[SearchTerm, ...]:
        """The listed terms found in `searched` (case-insensitive, whole words), in list order."""
        if self.pattern is None or not searched:
            return ()
        text = " ".join(searched.lower().replace("-", " ").split())
        found = {" ".join(m.group(0).split()) for m in self.pattern.finditer(text)}
        return tuple(t for t in self.alert_terms if t.words in found)


def parse_term_list(text: str, *, source: str) -> tuple[list[SearchTerm], list[str]]:
    """Terms from a term list file: one term or phrase a line, `# topic: <name>` lines set the
    topic of the terms under them, other `#` lines are comments. Returns (terms, problems)."""
    terms: list[SearchTerm] = []
    problems: list[str] = []
    topic = "safeguarding"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            head, sep, value = line.lstrip("#").strip().partition(":")
            if sep and head.strip().lower() == "topic":
                topic = value.strip() or topic
            continue
        line = line.split(" #", 1)[0].strip()
        if not line:
            continue
        words = " ".join(line.lower().replace("-", " ").split())
        if len(words) > 100:
            problems.append(f"{source}: line {number}: a term is at most 100 characters")
            continue
        if not any(ch.isalnum() for ch in words):
            problems.append(f"{source}: line {number}: {line!r} has no letters or digits")
            continue
        terms.append(SearchTerm(words, topic))
    return terms, problems
