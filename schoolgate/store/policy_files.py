"""Read a policy file and the domain-list files it names, and parse them with `schoolgate.policy.parse`.

A list named in a policy is looked for beside the policy file first, then among the lists
schoolgate ships (policy/data/lists/), so a school can override one list without copying all.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from pathlib import Path

from schoolgate import policy
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.model import Policy
from schoolgate.policy.parse import list_files_named, parse_policy

SHIPPED = Path(policy.__file__).resolve().parent / "data"
SEED_POLICY_NAME = "seed.yaml"
# Keys the domain index's hashes (policy/hostnames.py DomainIndex): secret, new in each process,
# so that a pinned PYTHONHASHSEED does not make its collisions searchable.
INDEX_KEY = secrets.token_hex(16)


def shipped_lists_dir() -> Path:
    return SHIPPED / "lists"


def seed_policy_path() -> Path:
    return SHIPPED / SEED_POLICY_NAME


def load_policy(path: Path | str | None = None) -> Policy:
    """Load and parse a policy file (None: the shipped seed policy).

    Raises PolicyError (with every problem listed) for a missing, unreadable or bad file."""
    policy_path = Path(path) if path is not None else seed_policy_path()
    source = str(path) if path is not None else f"seed policy ({policy_path})"
    try:
        text = policy_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            source,
            [
                "the file does not exist (check the path and its spelling: give the path "
                "of a policy YAML file)"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(source, [f"cannot read the file: {exc}"]) from None
    lists: dict[str, str] = {}
    for name in list_files_named(text):
        found = find_list(name, policy_path.parent)
        if found is not None:
            try:
                lists[name] = found.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyError(source, [f"list file {found}: cannot read it: {exc}"]) from None
    real = str(policy_path.resolve())
    key = _content_key(real, text, lists)
    last = _last_loaded.get(real)
    if last is not None and last[0] == key:  # the same bytes, however the path was spelled
        return last[1] if last[1].source == source else replace(last[1], source=source)
    shipped = sorted(path.name for path in shipped_lists_dir().iterdir() if path.is_file())
    loaded = parse_policy(
        text, source=source, lists=lists, index_key=INDEX_KEY, known_lists=shipped
    )
    _last_loaded[real] = (key, loaded)
    return loaded


# The last policy loaded from each file, by the digest of every byte it was made from.
# `schoolgate gateway` checks the policy before it starts mitmdump in the same process, and
# the enforcing addon then loads it again: with millions of listed domains, parsing twice
# doubled the start time. A Policy never changes once made, so the same bytes may share one;
# one slot per file, so a reload replaces the old policy instead of keeping it alive.
_last_loaded: dict[str, tuple[bytes, Policy]] = {}


def forget_loaded_policy() -> None:
    """Drop the remembered policies (a benchmark measuring a load from scratch needs this)."""
    _last_loaded.clear()


def _content_key(source: str, text: str, lists: dict[str, str]) -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    for part in (source, text, *(f"{name}\0{body}" for name, body in sorted(lists.items()))):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.digest()


def find_list(name: str, policy_dir: Path) -> Path | None:
    """Where the loader finds list `name`: beside the policy first, then the shipped lists."""
    if Path(name).name != name:
        # A path ("lists/extra.txt") is the school's own file, relative to the policy file.
        candidate = policy_dir / name
        return candidate if candidate.is_file() else None
    for folder in (policy_dir, shipped_lists_dir()):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None
