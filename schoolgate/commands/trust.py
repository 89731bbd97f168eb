"""`schoolgate trust check|add-school|export-school|remove-school`: one schoolgate for many
schools (docs/trust.md). Checks the trust file, the trust's base policy and every school's own,
and says what each school gets; adds a school only if the trust still checks with it (and its id
was never used); exports a school's rows, and removes them with the school when it leaves."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from schoolgate.commands.common import add_command_group
from schoolgate.policy.attribution import show_listener
from schoolgate.policy.errors import PolicyError
from schoolgate.policy.trust import School, Trust, TrustFile
from schoolgate.store.db import (
    SchemaOutOfDate,
    database_url_from_environment,
    display_url,
    make_engine,
    require_current_schema,
    sqlite_file,
)
from schoolgate.store.school_data import (
    ExportOutOfDate,
    SchoolExport,
    count_rows,
    delete_school_rows,
    export_trust_school,
    read_export,
    why_id_is_taken,
)
from schoolgate.store.trust_edits import TrustNotChanged, add_school, checked_without, replace_text
from schoolgate.store.trust_files import load_trust, load_trust_file

DATABASE_HELP = (
    "the database URL (default: $SCHOOLGATE_DATABASE_URL, else schoolgate.db in "
    "$SCHOOLGATE_DATA_DIR or ./var/schoolgate)"
)


def register(subparsers: Any) -> None:
    sub = add_command_group(
        subparsers,
        "trust",
        help="many schools, one service: check a trust file; add, export or remove a school",
        description="A trust or local authority runs one schoolgate for many schools: the trust "
        "file names each school, its client address ranges and its own policy on top of the "
        "trust's base policy, whose locks no school can loosen (docs/trust.md).",
    )

    check = sub.add_parser(
        "check",
        help="validate a trust file, its base policy and every school's policy",
        description="Exit 0 with one line per school, or exit 1 listing every problem with "
        "its place and the school it belongs to.",
    )
    check.add_argument("file", help="the trust YAML file")
    check.set_defaults(handler=run_check)

    add = sub.add_parser(
        "add-school",
        help="add a school to a trust file, checked whole before it is written",
        description="Adds the school at the end of 'schools:' (the rest of the file, comments "
        "included, is kept), checks the whole trust with it, and only then replaces the file. "
        "With --policy naming a file that does not exist yet, an empty one is made: the "
        "school starts on the trust's base policy. Exit 0 when the school was added; 1, "
        "with nothing written, when the trust file cannot be read or the trust would have "
        "problems with the school.",
    )
    add.add_argument("file", help="the trust YAML file")
    add.add_argument("id", help="the school's short id: a-z, 0-9, '-' and '_', e.g. oak")
    add.add_argument("--name", required=True, help="the school's name, e.g. 'Oak Primary'")
    add.add_argument(
        "--subnet",
        action="append",
        default=[],
        metavar="RANGE",
        help="a client address range of the school, e.g. 10.1.0.0/16 (repeat for more)",
    )
    add.add_argument(
        "--policy", help="the school's own policy file, relative to the trust file (optional)"
    )
    add.add_argument(
        "--listener",
        action="append",
        default=[],
        metavar="ADDRESS:PORT",
        help="a gateway address the school's devices connect to, e.g. 10.9.0.1:3128 (repeat "
        "for more): it attributes them to the school whatever their address",
    )
    add.add_argument(
        "--group", help="the directory group of the school's signed-in people, e.g. OakPupils"
    )
    add.add_argument(
        "--ou", help="the directory OU of the school's people, e.g. 'ou=Oak,dc=trust,dc=example'"
    )
    add.add_argument("--database", help=DATABASE_HELP)
    add.set_defaults(handler=run_add_school)

    export = sub.add_parser(
        "export-school",
        help="write one school's rows and its policy file to a zip file",
        description="Writes every row of the school from every table that holds a school's "
        "data, one JSON Lines file per table, with a manifest of the counts and the school's "
        "policy file (docs/trust.md). Exit 0 when the file was written; 1, with no file, when "
        "the trust file or the database cannot be read or there is no such school.",
    )
    export.add_argument("file", help="the trust YAML file")
    export.add_argument("school", help="the school's id, e.g. oak")
    export.add_argument("--out", required=True, help="the zip file to write, e.g. oak.zip")
    export.add_argument("--database", help=DATABASE_HELP)
    export.set_defaults(handler=run_export_school)

    remove = sub.add_parser(
        "remove-school",
        help="delete a school's rows and take it out of the trust file",
        description="Deletes the school's rows from every table that holds a school's data in "
        "one transaction (the count per table printed and kept in the audit log), then takes "
        "the school out of the trust file (the rest kept, comments included) once the trust "
        "checks without it. Needs an export of the school: --export FILE uses the file if it "
        "exists (its counts must be the rows deleted) or makes it first; --no-export deletes "
        "without one. The school's id is never given to another school. Exit 0 when the "
        "school was removed; 1, with nothing deleted, otherwise.",
    )
    remove.add_argument("file", help="the trust YAML file")
    remove.add_argument("school", help="the school's id, e.g. oak")
    keep = remove.add_mutually_exclusive_group(required=True)
    keep.add_argument(
        "--export", metavar="FILE", help="the school's export (made now if it does not exist)"
    )
    keep.add_argument(
        "--no-export",
        action="store_true",
        help="delete the school's rows without an export of them (they are gone for good)",
    )
    remove.add_argument("--database", help=DATABASE_HELP)
    remove.set_defaults(handler=run_remove_school)


def run_check(args: argparse.Namespace) -> int:
    try:
        trust = load_trust(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(summary(trust))
    return 0


def run_add_school(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not _id_is_free(args.id, args.database):
        return 1
    try:
        added = add_school(
            path,
            args.id,
            name=args.name,
            subnets=args.subnet,
            policy=args.policy,
            listeners=args.listener,
            directory={key: value for key in ("group", "ou") if (value := getattr(args, key))},
        )
    except TrustNotChanged as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Added {args.id} ({args.name}) to {path}.")
    if added.made_policy is not None:
        print(f"Made {added.made_policy}: empty, so the school starts on the trust's base policy.")
    print(summary(added.trust))
    return 0


def _id_is_free(school: str, database: str | None) -> bool:
    """False, after saying why, when the database holds (or held) a school with this id."""
    url = database or database_url_from_environment()
    file = sqlite_file(url)
    if database is None and file is not None and not file.exists():
        return True  # no database yet: nothing can hold the id
    try:
        with _engine(url) as engine:
            taken = why_id_is_taken(engine, school)
    except (SchemaOutOfDate, SQLAlchemyError) as exc:
        print(
            f"cannot check the database {display_url(url)} for {school!r}: {exc}", file=sys.stderr
        )
        return False
    if taken is not None:
        print(f"the school was not added: {taken}", file=sys.stderr)
        return False
    return True


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        require_current_schema(engine)
        yield engine
    finally:
        engine.dispose()


def _actor() -> str:
    try:
        who = getpass.getuser()
    except (OSError, KeyError):
        who = "unknown"
    return f"{who} (command line)"


def _trust_file(path: Path) -> TrustFile | None:
    """The trust file, read once for the command; None after saying why not."""
    try:
        return load_trust_file(path)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


def _export(
    engine: Engine, path: Path, trust: TrustFile, school: str, out: Path
) -> SchoolExport | None:
    try:
        made = export_trust_school(
            engine, out, trust=trust, folder=path.parent, school=school, at=datetime.now(UTC)
        )
    except ValueError as exc:  # its policy file cannot be read
        print(exc, file=sys.stderr)
        return None
    found = trust.schools.get(school)
    name = found.name if found is not None else school
    total = sum(made.counts.values())
    print(f"Exported {school} ({name}) to {out}: {total} rows ({_counted(made.counts)}).")
    return made


def _counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {n}" for table, n in sorted(counts.items()))


def _in_trust_or_has_rows(engine: Engine, path: Path, trust: TrustFile, school: str) -> bool:
    if school in trust.schools:
        return True
    with engine.connect() as connection:
        if any(count_rows(connection, school).values()):
            return True
    known = ", ".join(trust.schools)
    print(
        f"{path}: there is no school {school!r} (the trust's schools: {known}), and the "
        "database holds no rows of one",
        file=sys.stderr,
    )
    return False


def run_export_school(args: argparse.Namespace) -> int:
    url = args.database or database_url_from_environment()
    path = Path(args.file)
    try:
        with _engine(url) as engine:
            trust = _trust_file(path)
            if trust is None or not _in_trust_or_has_rows(engine, path, trust, args.school):
                return 1
            made = _export(engine, path, trust, args.school, Path(args.out))
            return 0 if made is not None else 1
    except (SchemaOutOfDate, SQLAlchemyError, OSError) as exc:
        print(f"the school was not exported: {exc}", file=sys.stderr)
        return 1


def run_remove_school(args: argparse.Namespace) -> int:
    path = Path(args.file)
    url = args.database or database_url_from_environment()
    try:
        with _engine(url) as engine:
            return _remove(engine, args, path)
    except (SchemaOutOfDate, SQLAlchemyError, OSError) as exc:
        print(f"the school was not removed: {exc}", file=sys.stderr)
        return 1


def _remove(engine: Engine, args: argparse.Namespace, path: Path) -> int:
    school = args.school
    trust = _trust_file(path)
    if trust is None or not _in_trust_or_has_rows(engine, path, trust, school):
        return 1
    in_trust = school in trust.schools
    try:
        new_text = checked_without(path, school) if in_trust else None
    except TrustNotChanged as exc:
        print(exc, file=sys.stderr)
        return 1
    exported: dict[str, int] | None = None
    if args.export is not None:
        out = Path(args.export)
        if out.exists():
            try:
                found = read_export(out)
            except ValueError as exc:
                print(f"the school was not removed: {exc}", file=sys.stderr)
                return 1
            if found.school != school:
                print(
                    f"the school was not removed: {out} is an export of {found.school!r}, "
                    f"not of {school!r}",
                    file=sys.stderr,
                )
                return 1
            exported = found.counts
        else:
            made = _export(engine, path, trust, school, out)
            if made is None:
                return 1
            exported = made.counts
    try:
        counts = delete_school_rows(
            engine,
            school=school,
            actor=_actor(),
            at=datetime.now(UTC),
            exported=exported,
            export_file=str(args.export) if args.export is not None else None,
        )
    except ExportOutOfDate as exc:
        print(f"the school was not removed: {exc}", file=sys.stderr)
        return 1
    print(f"Deleted {school}'s rows ({sum(counts.values())} in all; in the audit log):")
    for table, n in counts.items():
        print(f"  {table}: {n}")
    if new_text is not None:
        replace_text(path, new_text)
        print(f"Removed {school} from {path}; its policy file, if it had one, is left as it was.")
    print(f"The id {school!r} is never given to another school.")
    return 0


def _listeners_and_directory(school: School) -> str:
    """'; listeners ...; people in the group ... or under ...' (docs/trust.md), or ''."""
    text = ""
    if school.listeners:
        text += f"; listeners {', '.join(show_listener(each) for each in school.listeners)}"
    found = school.directory
    if found is not None:
        ways = [f"in the group {found.group}"] if found.group else []
        ways += [f"under {found.ou}"] if found.ou else []
        text += f"; people {' or '.join(ways)}"
    return text


def summary(trust: Trust) -> str:
    """The trust in a few lines: its schools, what each runs, where its clients are."""
    file = trust.file
    count = len(file.schools)
    lines = [f"{file.name}: {count} school{'s' if count != 1 else ''}, base policy {file.base}"]
    for school in file.schools.values():
        policy = trust.policies[school.id]
        subnets = ", ".join(str(n) for n in school.subnets) or "no subnets"
        own = f"its own policy {school.policy}" if school.policy else "the base policy"
        lines.append(
            f"  {school.id}: {school.name}: {own} ({len(policy.rules)} rules); clients {subnets}"
            + _listeners_and_directory(school)
        )
    locks = file.locks
    locked = sorted(locks.categories)
    parts = [f"categories {', '.join(locked)}"] if locked else []
    parts += [
        name
        for name, on in (
            ("the default verdict", locks.default),
            ("inspection", locks.inspection),
            ("ports", locks.ports),
            ("internal destinations", locks.internal),
        )
        if on
    ]
    lines.append(f"Locked by the trust: {'; '.join(parts) if parts else 'nothing'}")
    ways = "subnets"
    if any(school.listeners or school.directory for school in file.schools.values()):
        ways = "listeners, subnets, directory groups or OUs"
    if file.unmatched is None:
        lines.append(f"A device in no school's {ways} is refused.")
    else:
        lines.append(f"A device in no school's {ways} counts as {file.unmatched}.")
    return "\n".join(lines)
