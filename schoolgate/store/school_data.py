"""A school's rows across the database (docs/trust.md, "Adding and removing a school"): which
tables hold them (every table with a `school` column, read from the models' metadata, so a
table given the column later is included without a change here), how many there are, an
export of them as one zip file, and deleting them in one transaction with an audit entry.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, delete, func, insert, select

from schoolgate.policy.trust import TrustFile
from schoolgate.store import admin_models, incident_models
from schoolgate.store.models import Base

# Every module that defines tables is imported, so the metadata holds them all.
_MODELS = (admin_models, incident_models)
EXPORT_FORMAT = "schoolgate-school-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
REMOVED_ACTION = "trust.remove_school"  # the audit entry that keeps a removed id from reuse
_BATCH = 1000


def school_tables(metadata: MetaData = Base.metadata) -> list[Table]:
    """The tables holding a school's rows (a `school` column), parents before children."""
    return [table for table in metadata.sorted_tables if "school" in table.c]


def count_rows(connection: Connection, school: str) -> dict[str, int]:
    """{table: how many of `school`'s rows it holds}, for every school table."""
    return {
        table.name: connection.scalar(
            select(func.count()).select_from(table).where(table.c.school == school)
        )
        or 0
        for table in school_tables()
    }


def why_id_is_taken(engine: Engine, school: str) -> str | None:
    """Why `school` may not be given to a new school (an id is never reused, so a new
    school can never be shown a departed one's records), or None."""
    with engine.connect() as connection:
        held = {name: n for name, n in count_rows(connection, school).items() if n}
        if held:
            where = ", ".join(f"{name} {n}" for name, n in held.items())
            return (
                f"the database still holds rows of a school {school!r} ({where}): an id is "
                "never reused; choose another id"
            )
        audit = admin_models.AuditEntryRow.__table__
        removed = connection.scalar(
            select(audit.c.at)
            .where(audit.c.action == REMOVED_ACTION, audit.c.target == f"school:{school}")
            .limit(1)
        )
    if removed is not None:
        return (
            f"a school {school!r} was removed from this trust on {removed:%d/%m/%Y}: an id is "
            "never reused; choose another id"
        )
    return None


def plain_value(value: Any) -> Any:
    """A column's value as JSON holds it: times in ISO form, enums as their codes."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class SchoolExport:
    """What an export holds: the school, when it was made, and how many rows of each table."""

    school: str
    made_at: str
    counts: dict[str, int]


def export_school(
    engine: Engine,
    out: Path,
    *,
    school: str,
    name: str,
    trust: str,
    at: datetime,
    policy: tuple[str, str] | None = None,
) -> SchoolExport:
    """Write `school`'s rows of every school table to the zip file `out`: `manifest.json`
    (the school, the time, the format and each table's count), `tables/<table>.jsonl` (one
    JSON object per row, column by column, times in ISO form, UTC) and the school's policy
    file as `policy/<its name>` (`policy` is (name, text)). Written beside `out` first and
    then moved into place, so `out` is whole or absent."""
    counts: dict[str, int] = {}
    partial = out.with_name(f".{out.name}.partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as pack:
            with engine.connect() as connection, connection.begin():
                for table in school_tables():
                    counts[table.name] = _write_table(pack, connection, table, school)
            if policy is not None:
                pack.writestr(f"policy/{Path(policy[0]).name}", policy[1])
            manifest = {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "school": school,
                "name": name,
                "trust": trust,
                "made_at": at.isoformat(),
                "tables": counts,
                "files": {t: f"tables/{t}.jsonl" for t in counts},
                "policy": f"policy/{Path(policy[0]).name}" if policy is not None else None,
            }
            pack.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return SchoolExport(school, at.isoformat(), counts)


def export_trust_school(
    engine: Engine, out: Path, *, trust: TrustFile, folder: Path, school: str, at: datetime
) -> SchoolExport:
    """`export_school` for the school `school` of `trust` (the trust file in `folder`): its
    name and its policy file from the trust file; a school gone from the file already, its rows
    alone. ValueError, saying so, when the school's policy file cannot be read."""
    found = trust.schools.get(school)
    policy = None
    if found is not None and found.policy is not None:
        try:
            policy = (found.policy, (folder / found.policy).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {school}'s policy file {found.policy}: {exc}") from None
    name = found.name if found is not None else school
    return export_school(
        engine, out, school=school, name=name, trust=trust.name, at=at, policy=policy
    )


def _write_table(pack: zipfile.ZipFile, connection: Connection, table: Table, school: str) -> int:
    count = 0
    query = select(table).where(table.c.school == school).order_by(*table.primary_key.columns)
    result = connection.execution_options(yield_per=_BATCH).execute(query)
    with pack.open(f"tables/{table.name}.jsonl", "w") as out:
        for row in result.mappings():
            line = {key: plain_value(value) for key, value in row.items()}
            out.write(json.dumps(line, ensure_ascii=False, default=str).encode() + b"\n")
            count += 1
    return count


def read_export(path: Path) -> SchoolExport:
    """The manifest of an export `export_school` made; ValueError saying what is wrong."""
    try:
        with zipfile.ZipFile(path) as pack:
            manifest = json.loads(pack.read(MANIFEST))
    except FileNotFoundError:
        raise ValueError(f"{path}: there is no such file") from None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not an export of a school ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: not an export of a school (no {EXPORT_FORMAT} manifest)")
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not all(isinstance(n, int) for n in tables.values()):
        raise ValueError(f"{path}: its manifest has no count of rows per table")
    return SchoolExport(str(manifest.get("school")), str(manifest.get("made_at")), tables)


class ExportOutOfDate(Exception):
    """The rows to delete are not the rows the export holds (rows came or went since)."""


def delete_school_rows(
    engine: Engine,
    *,
    school: str,
    actor: str,
    actor_roles: str = "-",
    at: datetime,
    exported: Mapping[str, int] | None,
    export_file: str | None,
) -> dict[str, int]:
    """Delete `school`'s rows from every school table in one transaction and record it in the
    audit log (an entry of no school, so it outlives the school's own rows); returns the count
    per table. With `exported` (an export's counts), nothing is deleted unless exactly as many
    rows of each table are deleted as the export holds: ExportOutOfDate otherwise."""
    with engine.begin() as connection:
        counts: dict[str, int] = {}
        for table in reversed(school_tables()):
            deleted = connection.execute(delete(table).where(table.c.school == school))
            counts[table.name] = deleted.rowcount
        counts = dict(sorted(counts.items()))
        if exported is not None:
            changed = {
                name: (exported.get(name, 0), n)
                for name, n in counts.items()
                if n != exported.get(name, 0)
            }
            if changed:
                words = ", ".join(
                    f"{name}: {now} now, {then} in the export"
                    for name, (then, now) in changed.items()
                )
                raise ExportOutOfDate(
                    f"the school's rows changed since the export was made ({words}); nothing "
                    "was deleted: make a new export and remove the school with it"
                )
        connection.execute(
            insert(admin_models.AuditEntryRow).values(
                at=at,
                actor=actor[:200],
                actor_roles=actor_roles,
                action=REMOVED_ACTION,
                target=f"school:{school}",
                before={"counts": counts},
                after={"export": export_file},
                school=None,
            )
        )
    return counts
