"""How fresh and how full the policy's domain lists are: each list's age and entry count, the
categories that are empty (and how to fill them), and which lists are older than allowed.

Read by the gateway's health and metrics, the admin's system page, `schoolgate run` and
`schoolgate lists status`. It reads the policy file's category names only (not its domains), the
list files' headers and line counts (remembered per file version), and the state file that
`schoolgate lists update` keeps beside the policy (`lists-state.json`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from schoolgate.store.policy_files import find_list, seed_policy_path

STATE_FILE = "lists-state.json"  # beside the policy file, written by `lists update`
CONFIG_FILE = "lists.yaml"  # beside the policy file: where `lists update` gets each list
DEFAULT_MAX_AGE = timedelta(days=7)
_HEADER_LINES = 40  # the '# compiled:' header is at the top of a list file

FileStamp = tuple[int, int, int]  # (inode, size, mtime_ns)
# libyaml's safe loader when PyYAML has it: the gateway re-reads the policy's list names often
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506


@dataclass(frozen=True, slots=True)
class ListStatus:
    """One list file the policy names. `updated_at`: the last good update (`lists update`),
    else the file's '# compiled:' date. `stale`: an updated list older than the allowed age,
    or one whose last update failed and is past that age."""

    name: str  # the list file name as the policy names it
    categories: tuple[str, ...]
    path: str  # where it was found ("" if nowhere)
    entries: int
    updated_at: datetime | None
    age_seconds: float | None
    updated_by: str  # "lists update", "compiled" (a hand-kept or shipped list) or "missing"
    stale: bool
    last_error: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "list": self.name,
            "categories": list(self.categories),
            "path": self.path,
            "entries": self.entries,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "age_seconds": round(self.age_seconds) if self.age_seconds is not None else None,
            "updated_by": self.updated_by,
            "stale": self.stale,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class EmptyCategory:
    name: str
    how_to_fill: str


@dataclass(frozen=True, slots=True)
class ListsReport:
    lists: tuple[ListStatus, ...]
    empty: tuple[EmptyCategory, ...]
    max_age: timedelta

    @property
    def stale(self) -> tuple[ListStatus, ...]:
        return tuple(s for s in self.lists if s.stale)

    def as_json(self) -> dict[str, Any]:
        return {
            "lists": [s.as_json() for s in self.lists],
            "empty_categories": [
                {"category": e.name, "how_to_fill": e.how_to_fill} for e in self.empty
            ],
            "stale_lists": [s.name for s in self.stale],
            "max_age_seconds": int(self.max_age.total_seconds()),
        }


def how_to_fill(category: str, *, locked: bool) -> str:
    if locked:
        return (
            f"'{category}' is empty. Add the IWF or CTIRU URL list your school receives as a "
            f"source in {CONFIG_FILE} beside the policy (format: iwf, category: {category}), "
            f"run 'schoolgate lists update', then name {category}.txt under the category's "
            "'lists:' in the policy."
        )
    return (
        f"'{category}' is empty. Add a source for it in {CONFIG_FILE} beside the policy "
        f"(for example a UT1 category, format: ut1-domains), run 'schoolgate lists "
        f"update', then name {category}.txt under the category's 'lists:' in the policy."
    )


def read_state(policy_dir: Path) -> dict[str, Any]:
    """The update state file beside the policy ({} when there is none or it is unreadable)."""
    try:
        data = json.loads((policy_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    lists = data.get("lists") if isinstance(data, dict) else None
    return lists if isinstance(lists, dict) else {}


def read_max_age(policy_dir: Path) -> timedelta:
    """`max_age_hours` from lists.yaml beside the policy, else DEFAULT_MAX_AGE."""
    try:
        spec = _load_yaml(policy_dir / CONFIG_FILE)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return DEFAULT_MAX_AGE
    hours = spec.get("max_age_hours") if isinstance(spec, dict) else None
    if isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0:
        return timedelta(hours=hours)
    return DEFAULT_MAX_AGE


def policy_stamp(path: Path) -> tuple[FileStamp | None, ...]:
    """The stamps of the policy file and of every list file it names, as found now: any list
    written, replaced or appearing beside the policy changes it (so the gateway reloads)."""
    stamps = [_stamp(path)]
    try:
        spec = _load_yaml(path)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return tuple(stamps)
    for name in sorted(_categories(spec)[1]):
        found = find_list(name, path.parent)
        stamps.append(_stamp(found) if found is not None else None)
    return tuple(stamps)


class ListStatusReader:
    """Builds `ListsReport`s, remembering each list file's count by its stamp (so a 5-million
    line list is counted once per version, not once per look). Safe to share between threads."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[FileStamp | None, int, date | None]] = {}
        self._lock = threading.Lock()

    def read(self, policy_path: Path | None, *, now: datetime) -> ListsReport:
        path = policy_path if policy_path is not None else seed_policy_path()
        policy_dir = path.parent
        try:
            spec = _load_yaml(path)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            spec = {}
        categories, named, inline, locked = _categories(spec)
        state = read_state(policy_dir) if policy_path is not None else {}
        max_age = read_max_age(policy_dir) if policy_path is not None else DEFAULT_MAX_AGE
        statuses: list[ListStatus] = []
        entries_of: dict[str, int] = {}
        for name, cats in named.items():
            status = self._status(name, cats, policy_dir, state.get(name), now, max_age)
            statuses.append(status)
            entries_of[name] = status.entries
        empty = tuple(
            EmptyCategory(c, how_to_fill(c, locked=c in locked))
            for c, lists in categories.items()
            if not inline.get(c) and not any(entries_of.get(n, 0) for n in lists)
        )
        return ListsReport(tuple(statuses), empty, max_age)

    def _status(
        self,
        name: str,
        cats: Sequence[str],
        policy_dir: Path,
        state: Any,
        now: datetime,
        max_age: timedelta,
    ) -> ListStatus:
        found = find_list(name, policy_dir)
        error = str(state.get("last_error") or "") if isinstance(state, dict) else ""
        if found is None:
            return ListStatus(
                name,
                tuple(cats),
                "",
                0,
                None,
                None,
                "missing",
                True,
                error or "the file is missing",
            )
        entries, compiled = self._count(found)
        updated_at: datetime | None = None
        updated_by = "compiled"
        if isinstance(state, dict) and isinstance(state.get("updated_at"), str):
            try:
                updated_at = datetime.fromisoformat(state["updated_at"])
                updated_by = "lists update"
            except ValueError:
                updated_at = None
        if updated_at is None and compiled is not None:
            updated_at = datetime.combine(compiled, time(0), UTC)
        age = (now - updated_at).total_seconds() if updated_at is not None else None
        # Only lists that `lists update` keeps can go stale; shipped ones change on upgrade.
        stale = updated_by == "lists update" and age is not None and age > max_age.total_seconds()
        return ListStatus(
            name, tuple(cats), str(found), entries, updated_at, age, updated_by, stale, error
        )

    def _count(self, path: Path) -> tuple[int, date | None]:
        key = str(path)
        stamp = _stamp(path)
        with self._lock:
            known = self._counts.get(key)
        if known is not None and known[0] == stamp and stamp is not None:
            return known[1], known[2]
        entries, compiled = count_list_file(path)
        with self._lock:
            self._counts[key] = (stamp, entries, compiled)
        return entries, compiled


def count_list_file(path: Path) -> tuple[int, date | None]:
    """The number of entries (non-blank, non-comment lines) and the '# compiled:' date."""
    entries = 0
    compiled: date | None = None
    try:
        with path.open("rb") as handle:
            for line_no, raw in enumerate(handle):
                line = raw.strip()
                if not line:
                    continue
                if line.startswith(b"#"):
                    if (
                        compiled is None
                        and line_no < _HEADER_LINES
                        and line[1:].strip().startswith(b"compiled:")
                    ):
                        try:
                            compiled = date.fromisoformat(
                                line.split(b":", 1)[1].strip().decode("ascii")
                            )
                        except (ValueError, UnicodeDecodeError):
                            compiled = None
                    continue
                entries += 1
    except OSError:
        return 0, None
    return entries, compiled


def _categories(
    spec: Any,
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, bool], set[str]]:
    """(category -> its lists, list -> its categories, category -> has inline domains,
    locked categories) from a policy document, tolerating anything malformed."""
    categories: dict[str, list[str]] = {}
    named: dict[str, list[str]] = {}
    inline: dict[str, bool] = {}
    locked: set[str] = set()
    raw = spec.get("categories") if isinstance(spec, dict) else None
    if not isinstance(raw, Mapping):
        return categories, named, inline, locked
    for cat, body in raw.items():
        if not isinstance(cat, str) or not isinstance(body, Mapping):
            continue
        lists = (
            [n for n in body.get("lists") or [] if isinstance(n, str)]
            if isinstance(body.get("lists"), list)
            else []
        )
        categories[cat] = lists
        for name in lists:
            named.setdefault(name, []).append(cat)
        domains = body.get("domains")
        inline[cat] = isinstance(domains, list) and bool(domains)
        if body.get("locked") is True:
            locked.add(cat)
    return categories, named, inline, locked


def _stamp(path: Path) -> FileStamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
