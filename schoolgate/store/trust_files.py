"""Read a trust file, the trust's base policy and each school's override (with the list files
each names), and compile them with `schoolgate.policy.trust` into one policy per school.

Paths in the trust file are relative to it. A list a policy names is looked for beside that
policy first, then among the shipped lists, as for a single school (store/policy_files.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.parse import list_files_named
from schoolgate.policy.trust import SchoolSource, Trust, TrustFile, compile_trust, parse_trust_file
from schoolgate.store.list_status import FileStamp, policy_stamp
from schoolgate.store.policy_files import INDEX_KEY, find_list


def load_trust_file(path: Path | str) -> TrustFile:
    """The trust file at `path`, checked (its policies are not read: see `load_trust`)."""
    return parse_trust_file(_read(Path(path), str(path), "trust file"), source=str(path))


def load_trust(
    path: Path | str, *, texts: Mapping[Path, str] | None = None, only: str | None = None
) -> Trust:
    """The trust at `path` with every school's policy compiled (`only`: that school's alone,
    for a page showing one school's). `texts` stand in for the policy files they name (an
    edit checked with the whole trust before it is written).

    Raises PolicyError listing every problem: of the trust file, of its base policy, and of
    each school's policy (each named)."""
    trust_path = Path(path)
    trust = load_trust_file(trust_path)
    if only is not None:
        if only not in trust.schools:
            raise PolicyError(trust.source, [f"schools: there is no school {only!r} any more"])
        trust = replace(trust, schools={only: trust.schools[only]}, _memo={})
    folder = trust_path.parent
    base_path = folder / trust.base
    problems: list[str] = []
    given = texts or {}
    base_text = given.get(base_path)
    if base_text is None:
        base_text = _read_or_note(base_path, "base", problems)
    base_lists = _lists(base_text or "", base_path, problems)
    schools: dict[str, SchoolSource] = {}
    for school in trust.schools.values():
        if school.policy is None:
            continue
        school_path = folder / school.policy
        text = given.get(school_path)
        if text is None:
            text = _read_or_note(school_path, f"schools.{school.id}.policy", problems)
        if text is not None:
            lists = _lists(text, school_path, problems)
            schools[school.id] = SchoolSource(text, school.policy, lists)
    if problems or base_text is None:
        raise PolicyError(trust.source, problems)
    return compile_trust(
        trust,
        base_text=base_text,
        base_source=trust.base,
        base_lists=base_lists,
        schools=schools,
        index_key=INDEX_KEY,
    )


def _read(path: Path, source: str, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            source, [f"the {what} {path} does not exist (check the path and its spelling)"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(source, [f"cannot read the {what} {path}: {exc}"]) from None


def _read_or_note(path: Path, where: str, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(
            f"{where}: the file {path} does not exist (paths are relative to the trust file)"
        )
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{where}: cannot read {path}: {exc}")
    return None


def _lists(text: str, policy_path: Path, problems: list[str]) -> dict[str, str]:
    """The list files `text` names that can be found (a missing one is reported by the parser,
    with its place in the policy)."""
    found: dict[str, str] = {}
    for name in list_files_named(text):
        where = find_list(name, policy_path.parent)
        if where is None:
            continue
        try:
            found[name] = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"list file {where}: cannot read it: {exc}")
    return found


def trust_files(path: Path) -> list[Path]:
    """The trust file, its base policy and every school's policy file, as named now (only the
    trust file if it cannot be read)."""
    try:
        trust = load_trust_file(path)
    except PolicyError:
        return [path]
    folder = path.parent
    named = [folder / trust.base]
    named += [folder / s.policy for s in trust.schools.values() if s.policy is not None]
    return [path, *named]


def trust_stamp(path: Path) -> tuple[FileStamp | None, ...]:
    """The stamps of every file a trust is made of (each policy's lists included): any of them
    written or replaced changes it, so the gateway reloads the trust."""
    return tuple(stamp for file in trust_files(path) for stamp in policy_stamp(file))


def trust_version(path: Path) -> str:
    """12 hex digits of the SHA-256 of the trust file, its base policy and every school's
    policy file, in that order: the same label on every gateway that runs the same trust."""
    digest = hashlib.sha256()
    for file in trust_files(path):
        try:
            data = file.read_bytes()
        except OSError:
            return "unreadable"
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:12]
