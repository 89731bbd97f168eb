"""`schoolgate trust export-school|remove-school` and the id check of `add-school`, run as a
technician runs them, on SQLite and PostgreSQL holding two schools' rows in every table that
has a school column (docs/trust.md, "Adding and removing a school")."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import sessionmaker

from schoolgate.store.admin_models import AuditEntryRow
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import ActMarkRow, AttemptCountRow, EventRow
from schoolgate.store.policy_files import seed_policy_path
from schoolgate.store.school_data import count_rows, school_tables
from schoolgate.store.trust_edits import without_school
from tests.admin_api.test_school_isolation import SchoolRows, make_rows
from tests.schoolgate.test_cli import run
from tests.support.postgres import database_url, postgres_session_url
from tests.support.trusts import write_trust

__all__ = ["database_url", "postgres_session_url"]

TRUST = """\
# Oak Learning Trust
name: Oak Learning Trust
base: base.yaml
schools:
  # Oak joined in 2024
  oak:
    name: Oak Primary
    subnets: [10.1.0.0/16]
    policy: oak/policy.yaml
  elm: {name: Elm Primary, subnets: [10.2.0.0/16]}  # Elm's own comment
"""
OAK_POLICY = "# Oak's own policy\nname: Oak's policy\n"


@pytest.fixture
def two_schools(database_url: str, tmp_path: Path) -> tuple[Path, str, dict[str, SchoolRows]]:
    upgrade(database_url)
    trust = write_trust(
        tmp_path,
        TRUST,
        {"base.yaml": seed_policy_path().read_text(), "oak/policy.yaml": OAK_POLICY},
    )
    engine = make_engine(database_url)
    try:
        writer: Any = SimpleNamespace(sessions=sessionmaker(engine))
        rows = {school: make_rows(writer, school, "pupil-shared") for school in ("oak", "elm")}
        _person_rows(writer)
    finally:
        engine.dispose()
    return trust, database_url, rows


def _person_rows(writer: Any) -> None:
    """Each school's rows of the tables keyed by a person: attempt counts and act marks."""
    now = datetime.now(UTC)
    with writer.sessions() as session, session.begin():
        for school in ("oak", "elm"):
            session.add(
                AttemptCountRow(
                    user=f"{school}-pupil", times=[now.isoformat()], updated=now, school=school
                )
            )
            session.add(
                ActMarkRow(key=f"{school}-pupil|x.com", at=now, event_id=school, school=school)
            )


def _counts(url: str, school: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return count_rows(connection, school)
    finally:
        engine.dispose()


def test_every_table_with_a_school_column_is_found_from_the_models() -> None:
    found = {table.name for table in school_tables()}
    assert {"events", "alerts", "unblock_requests", "incident_notes", "audit_log"} <= found
    assert "schema_compat" not in found  # a table without the column


def test_a_table_given_a_school_column_later_is_found_without_a_change() -> None:
    later = MetaData()
    Table("local_list", later, Column("host", String(300), primary_key=True))
    Table("new_thing", later, Column("id", Integer, primary_key=True), Column("school", String(40)))
    assert [table.name for table in school_tables(later)] == ["new_thing"]


def test_an_export_holds_exactly_one_schools_rows_and_its_policy(
    two_schools: tuple[Path, str, dict[str, SchoolRows]], tmp_path: Path
) -> None:
    trust, url, rows = two_schools
    out = tmp_path / "oak.zip"
    result = _cli("export-school", trust, "oak", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"Exported oak (Oak Primary) to {out}:" in result.stdout
    with zipfile.ZipFile(out) as pack:
        manifest = json.loads(pack.read("manifest.json"))
        assert manifest["school"] == "oak"
        assert manifest["name"] == "Oak Primary"
        assert set(manifest["tables"]) == {table.name for table in school_tables()}
        assert manifest["tables"] == _counts(url, "oak")
        assert all(n > 0 for n in manifest["tables"].values()), manifest["tables"]
        for table, count in manifest["tables"].items():
            lines = pack.read(f"tables/{table}.jsonl").decode().splitlines()
            assert len(lines) == count
            assert {json.loads(line)["school"] for line in lines} == {"oak"}
            text = "\n".join(lines)
            assert rows["elm"].tag not in text
        assert rows["oak"].tag in pack.read("tables/alerts.jsonl").decode()
        assert pack.read("policy/policy.yaml").decode() == OAK_POLICY


def test_removing_a_school_deletes_its_rows_only_and_takes_it_out_of_the_trust(
    two_schools: tuple[Path, str, dict[str, SchoolRows]], tmp_path: Path
) -> None:
    trust, url, _ = two_schools
    oak_before, elm_before = _counts(url, "oak"), _counts(url, "elm")
    out = tmp_path / "oak.zip"
    result = _cli("remove-school", trust, "oak", url, "--export", str(out))
    assert result.returncode == 0, result.stderr
    assert out.exists()  # made first
    for table, n in oak_before.items():
        assert f"\n  {table}: {n}\n" in result.stdout
    assert f"({sum(oak_before.values())} in all; in the audit log)" in result.stdout
    assert set(_counts(url, "oak").values()) == {0}
    assert _counts(url, "elm") == elm_before  # the other school untouched
    text = trust.read_text()
    assert text == (
        "# Oak Learning Trust\nname: Oak Learning Trust\nbase: base.yaml\nschools:\n"
        "  # Oak joined in 2024\n"
        "  elm: {name: Elm Primary, subnets: [10.2.0.0/16]}  # Elm's own comment\n"
    )
    assert run("trust", "check", str(trust)).returncode == 0
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            entry = connection.execute(
                select(AuditEntryRow).where(AuditEntryRow.action == "trust.remove_school")
            ).one()
    finally:
        engine.dispose()
    assert entry.target == "school:oak"
    assert entry.school is None  # the trust's: it outlives the school's rows
    assert entry.before == {"counts": oak_before}
    again = _add_school(trust, "oak", url)
    assert again.returncode == 1
    assert "was removed from this trust on" in again.stderr
    assert "an id is never reused" in again.stderr
    assert "oak" not in trust.read_text().split("schools:")[1]


def _cli(verb: str, trust: Path, school: str, url: str, *extra: str) -> Any:
    return run("trust", verb, str(trust), school, *extra, "--database", url)


def _add_school(trust: Path, school: str, url: str) -> Any:
    return _cli("add-school", trust, school, url, "--name", "Again", "--subnet", "10.5.0.0/16")


def test_add_school_refuses_an_id_that_still_has_rows(
    two_schools: tuple[Path, str, dict[str, SchoolRows]],
) -> None:
    trust, url, _ = two_schools
    trust.write_text(trust.read_text().replace("  elm: {", "  other: {"))
    before = trust.read_text()
    result = _add_school(trust, "elm", url)
    assert result.returncode == 1
    assert (
        "the database still holds rows of a school 'elm' (act_marks 1, alerts 1, attempt_counts 1, "
        "audit_log 1," in result.stderr
    )
    assert "events 1" in result.stderr
    assert trust.read_text() == before


def test_removal_needs_an_export_of_exactly_the_rows_it_deletes(
    two_schools: tuple[Path, str, dict[str, SchoolRows]], tmp_path: Path
) -> None:
    trust, url, rows = two_schools
    before, oak_before = trust.read_text(), _counts(url, "oak")
    neither = _cli("remove-school", trust, "oak", url)
    assert neither.returncode == 2
    assert "one of the arguments --export --no-export is required" in neither.stderr
    elm_zip = tmp_path / "elm.zip"
    made = _cli("export-school", trust, "elm", url, "--out", str(elm_zip))
    assert made.returncode == 0, made.stderr
    wrong = _cli("remove-school", trust, "oak", url, "--export", str(elm_zip))
    assert wrong.returncode == 1
    assert "is an export of 'elm', not of 'oak'" in wrong.stderr
    oak_zip = tmp_path / "oak.zip"
    made = _cli("export-school", trust, "oak", url, "--out", str(oak_zip))
    assert made.returncode == 0, made.stderr
    make_rows_later(url, "oak")  # a row written after the export
    stale = _cli("remove-school", trust, "oak", url, "--export", str(oak_zip))
    assert stale.returncode == 1
    assert "the school's rows changed since the export was made (" in stale.stderr
    assert "nothing was deleted: make a new export" in stale.stderr
    assert trust.read_text() == before
    assert _counts(url, "oak")["events"] == oak_before["events"] + 1
    fresh = tmp_path / "oak-again.zip"
    assert _cli("export-school", trust, "oak", url, "--out", str(fresh)).returncode == 0
    gone = _cli("remove-school", trust, "oak", url, "--export", str(fresh))
    assert gone.returncode == 0, gone.stderr
    assert "Exported" not in gone.stdout  # the export given was used, not made again
    assert set(_counts(url, "oak").values()) == {0}
    elm = _counts(url, "elm")
    without = _cli("remove-school", trust, "elm", url, "--no-export")
    assert without.returncode == 1  # the last school: a trust needs one
    assert "the school was not removed" in without.stderr
    assert _counts(url, "elm") == elm
    assert rows["elm"].tag


def make_rows_later(url: str, school: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            (event,) = connection.execute(
                select(EventRow.__table__).where(EventRow.school == school).limit(1)
            ).mappings()
            copy = dict(event) | {"id": event["id"][:-4] + "ffff", "seq": 99}
            connection.execute(EventRow.__table__.insert().values(**copy))
    finally:
        engine.dispose()


def test_a_school_that_would_break_the_trust_is_not_removed(
    two_schools: tuple[Path, str, dict[str, SchoolRows]],
) -> None:
    trust, url, _ = two_schools
    trust.write_text(trust.read_text().replace("schools:\n", "unmatched: elm\nschools:\n"))
    before, elm_before = trust.read_text(), _counts(url, "elm")
    result = _cli("remove-school", trust, "elm", url, "--no-export")
    assert result.returncode == 1
    assert "the school was not removed" in result.stderr
    assert "unmatched" in result.stderr
    assert trust.read_text() == before
    assert _counts(url, "elm") == elm_before


def test_without_school_keeps_the_rest_of_the_file() -> None:
    text = (
        "name: T\nbase: b.yaml\nschools:\n  a:\n    name: A\n    subnets:\n      - 10.1.0.0/16\n"
        "  # b is next\n  b: {name: B, subnets: [10.2.0.0/16]}\n# the end\n"
    )
    assert without_school(text, "a") == (
        "name: T\nbase: b.yaml\nschools:\n  # b is next\n"
        "  b: {name: B, subnets: [10.2.0.0/16]}\n# the end\n"
    )
    assert without_school(text, "b") == text.replace("  b: {name: B, subnets: [10.2.0.0/16]}\n", "")
    with pytest.raises(ValueError, match="there is no school 'c'"):
        without_school(text, "c")


def test_no_export_removes_a_school_without_one(
    two_schools: tuple[Path, str, dict[str, SchoolRows]], tmp_path: Path
) -> None:
    trust, url, _ = two_schools
    oak = _counts(url, "oak")
    result = _cli("remove-school", trust, "elm", url, "--no-export")
    assert result.returncode == 0, result.stderr
    assert "Exported" not in result.stdout
    assert set(_counts(url, "elm").values()) == {0}
    assert _counts(url, "oak") == oak
    assert "elm" not in trust.read_text()
    assert list(tmp_path.glob("*.zip")) == []
