"""Adding a school to a trust file and taking one out (docs/trust.md, "Adding and removing a
school"): the file's text is changed in place (the rest of it, comments included, is kept), the
whole trust is checked with the change, and only then is the file replaced. Shared by
`schoolgate trust add-school|remove-school` and the admin's Schools page."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from schoolgate.policy.errors import PolicyError
from schoolgate.policy.trust import Trust
from schoolgate.store.trust_files import load_trust

RESERVED_IDS = frozenset({"trust"})  # the admin's trust-wide groups are `trust-<group>`
STARTER_POLICY = """\
# {name}'s own policy: only what differs from the trust's base policy (docs/trust.md).
# Empty: the base policy as it is. Check with: schoolgate trust check TRUST-FILE
"""


class TrustNotChanged(Exception):
    """The trust file was left as it was; `problems` says why, one line each."""

    def __init__(self, summary: str, problems: list[str]) -> None:
        super().__init__(summary + "".join(f"\n  {p}" for p in problems))
        self.summary = summary
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SchoolAdded:
    trust: Trust
    made_policy: Path | None  # the empty policy file made for the school, if one was


def add_school(
    path: Path,
    school_id: str,
    *,
    name: str,
    subnets: list[str],
    policy: str | None,
    listeners: list[str] | None = None,
    directory: dict[str, str] | None = None,
) -> SchoolAdded:
    """Add the school at the end of `schools:` if the whole trust still checks with it; with
    `policy` naming a file that does not exist yet, an empty one is made (the school starts
    on the base). TrustNotChanged, with nothing written, otherwise."""
    if school_id in RESERVED_IDS:
        raise TrustNotChanged(
            "the school was not added",
            [
                f"a school may not have the id {school_id!r}: the admin gives the trust's "
                f"roles through the groups '{school_id}-<group>' (choose another id)"
            ],
        )
    entry: dict[str, Any] = {"name": name, "subnets": subnets}
    if policy:
        entry["policy"] = policy
    if listeners:
        entry["listeners"] = listeners
    if directory:
        entry["directory"] = directory
    text = _read(path)
    try:
        new_text = with_school(text, school_id, entry)
    except ValueError as exc:
        raise TrustNotChanged(f"{path}: {exc}", []) from None
    made, folders = None, []
    if policy and not (path.parent / policy).exists():
        made = path.parent / policy
        folders = [folder for folder in made.parents if not folder.exists()]
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text(STARTER_POLICY.format(name=name), encoding="utf-8")
    try:
        trust = _replace_if_it_loads(path, new_text, "the school was not added")
    except TrustNotChanged:
        if made is not None:  # take back what was made for it, folders included
            made.unlink()
            for folder in folders:
                folder.rmdir()
        raise
    return SchoolAdded(trust, made)


def checked_without(path: Path, school_id: str) -> str:
    """The trust file's text without the school, if the trust still checks without it (the
    file is not changed yet: `replace_text` does that); TrustNotChanged otherwise."""
    text = _read(path)
    try:
        new_text = without_school(text, school_id)
    except ValueError as exc:
        raise TrustNotChanged(f"{path}: {exc}", []) from None
    trial, _ = _load_trial(path, new_text, "the school was not removed")
    trial.unlink(missing_ok=True)
    return new_text


def replace_text(path: Path, text: str) -> None:
    """Replace the trust file with `text` whole (a reader sees the old file or the new)."""
    trial = _trial(path, text)
    os.replace(trial, path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustNotChanged(f"cannot read the trust file {path}: {exc}", []) from None


def _trial(path: Path, text: str) -> Path:
    trial = path.with_name(f".{path.name}.new")
    try:
        trial.write_text(text, encoding="utf-8")
    except OSError as exc:
        with contextlib.suppress(OSError):
            trial.unlink(missing_ok=True)  # a part written, if any
        raise TrustNotChanged(
            f"cannot write beside the trust file {path} ({exc.strerror or exc}): the folder "
            "must be writable (a read-only mount, such as a ConfigMap, is changed at its source)",
            [],
        ) from None
    return trial


def _load_trial(path: Path, text: str, refusal: str) -> tuple[Path, Trust]:
    """`text` written beside the trust file and loaded as the trust: (that file, the trust);
    TrustNotChanged with every problem (and nothing left beside it) otherwise."""
    trial = _trial(path, text)
    try:
        return trial, load_trust(trial)
    except PolicyError as exc:
        trial.unlink(missing_ok=True)
        raise TrustNotChanged(f"{path}: {refusal}", exc.problems) from None
    except BaseException:
        trial.unlink(missing_ok=True)
        raise


def _replace_if_it_loads(path: Path, text: str, refusal: str) -> Trust:
    trial, trust = _load_trial(path, text, refusal)
    os.replace(trial, path)
    return trust


def _schools_node(text: str, verb: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    schools = None
    if isinstance(root, yaml.MappingNode):
        schools = next((v for k, v in root.value if k.value == "schools"), None)
    if not isinstance(schools, yaml.MappingNode) or schools.flow_style or not schools.value:
        raise ValueError(
            f"{verb} needs 'schools:' written as a block, one school per line, with at "
            "least one school already (see docs/trust.md)"
        )
    return schools


def with_school(text: str, school_id: str, entry: dict[str, Any]) -> str:
    """`text` with the school added at the end of its `schools:` mapping, the rest unchanged
    (comments included). ValueError saying what is wrong otherwise."""
    schools = _schools_node(text, "add-school")
    if any(key.value == school_id for key, _ in schools.value):
        raise ValueError(f"there is already a school {school_id!r}: choose another id")
    indent = " " * schools.value[0][0].start_mark.column
    at = _end_of_line(text, _last_scalar(schools).end_mark.index)
    block = f"\n{indent}{school_id}: " + json.dumps(entry, ensure_ascii=False)
    return text[:at] + block + text[at:] + ("" if text.endswith("\n") else "\n")


def without_school(text: str, school_id: str) -> str:
    """`text` without the school's entry in `schools:` (from its key's line to the end of its
    last line), the rest unchanged (comments around it included). ValueError otherwise."""
    schools = _schools_node(text, "remove-school")
    found = [(key, value) for key, value in schools.value if key.value == school_id]
    if not found:
        known = ", ".join(str(key.value) for key, _ in schools.value)
        raise ValueError(f"there is no school {school_id!r} (the trust's schools: {known})")
    key, value = found[0]
    start = text.rfind("\n", 0, key.start_mark.index)  # the line break before its key
    end = _end_of_line(text, _last_scalar(value).end_mark.index)
    return text[:start] + text[end:] if start >= 0 else text[end + 1 :]


def _end_of_line(text: str, index: int) -> int:
    line_end = text.find("\n", index)
    return len(text) if line_end == -1 else line_end


def _last_scalar(node: yaml.Node) -> yaml.Node:
    """The last thing written inside a block node: its end is exact (a block's own end mark may
    lie on the next line)."""
    while not getattr(node, "flow_style", True) and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node
