"""Trust folders for the tests (docs/trust.md): a trust file with its base policy, the schools'
own policies and their domain lists, each written where the trust's paths say."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from schoolgate.store.db import upgrade
from tests.support.gateway import (
    USERS,
    Gateway,
    noon_zone,
    policy_text,
    running_gateway,
    write_identity,
)

# A trust file's first lines, before its schools (docs/trust.md); the tests add the schools.
TRUST_HEAD = "name: Test Trust\nbase: base.yaml\nunmatched: refuse\nschools:\n"


def list_text(name: str, *domains: str, description: str | None = None) -> str:
    """A domain-list file with the headers every list carries (docs/lists.md)."""
    return (
        f"# category: {name}\n# description: {description or f'{name} for the tests'}\n"
        "# compiled: 2026-01-05\n# source: written for the tests\n"
        + "".join(f"{d}\n" for d in domains)
    )


def two_schools(*, oak: str, elm: str, oak_policy: str | None = None) -> str:
    """A trust file's text: base.yaml, clients outside both schools refused, Oak Primary in
    subnet `oak` (with its own policy file `oak_policy`, if given) and Elm Primary in `elm`."""
    own = f", policy: {oak_policy}" if oak_policy else ""
    return (
        "name: Test Trust\nbase: base.yaml\nunmatched: refuse\nschools:\n"
        f"  oak: {{name: Oak Primary, subnets: [{oak}]{own}}}\n"
        f"  elm: {{name: Elm Primary, subnets: [{elm}]}}\n"
    )


def write_trust(folder: Path, trust: str, files: Mapping[str, str]) -> Path:
    """`files` (paths relative to `folder`: the base policy, the schools' policies and lists)
    and the trust file `folder`/trust.yaml holding `trust`; returns the trust file's path."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    path = folder / "trust.yaml"
    path.write_text(trust)
    return path


def write_two_schools(folder: Path, *, oak: str, elm: str, now: datetime) -> Path:
    """A trust of Oak (`oak`/32) and Elm (`elm`/32) on the test base policy, its break hours
    before `now`, refusing clients in no school's subnets; returns the trust file."""
    return write_trust(
        folder,
        TRUST_HEAD + f"  oak: {{name: Oak Primary, subnets: [{oak}/32]}}\n"
        f"  elm: {{name: Elm Primary, subnets: [{elm}/32]}}\n",
        {
            "base.yaml": policy_text(
                break_from=now - timedelta(hours=4),
                break_until=now - timedelta(hours=3),
                zone=noon_zone(now),
            )
        },
    )


@contextmanager
def running_trust_gateway(
    folder: Path,
    trust: Path,
    *extra_args: str,
    people: Mapping[str, list[str]] = USERS,
    identity: Path | None = None,
    database: str | None = None,
    engine: str | None = None,
) -> Iterator[Gateway]:
    """A real gateway serving the trust file `trust`, the demo identities (or `people`: name ->
    groups; or the identity file `identity`) and the database at URL `database` (default: a
    SQLite database made in `folder`/schoolgate.db), upgraded first; `engine` as
    running_gateway's."""
    database = database or f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(database)
    with running_gateway(
        folder / "gw",
        policy=None,
        identity=identity or write_identity(folder / "id", people),
        extra_args=[
            *("--set", f"schoolgate_trust={trust}"),
            *("--set", f"schoolgate_database_url={database}"),
            *extra_args,
        ],
        engine=engine,
    ) as gw:
        yield gw
