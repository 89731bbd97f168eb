"""Migration 0012: the local lists get a `school` column (each school's own lists beside the
trust's), up and down on SQLite and PostgreSQL: the rows kept, a host once on each list, and
every write still counted by the change-counter triggers (the gateway's reload signal)."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from schoolgate.store.db import alembic_config, current_revision, make_engine, upgrade
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

BEFORE = "0011_school_column"
AFTER = "0012_local_list_school"
ROW = "'{host}', '{verdict}', '', 'bm1', '2026-12-03 10:00:00'"


def _insert(engine: Engine, host: str, verdict: str = "block", school: str | None = None) -> None:
    columns = "host, verdict, note, added_by, added_at" + (", school" if school else "")
    values = ROW.format(host=host, verdict=verdict) + (f", '{school}'" if school else "")
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO local_list ({columns}) VALUES ({values})"))


def _counter(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT counter FROM changes")).scalar_one())


def _rows(engine: Engine, school: str = "school") -> list[tuple[str, str | None]]:
    """(host, school) of every entry; `school` "NULL" before the column exists."""
    with engine.connect() as conn:
        query = f"SELECT host, {school} FROM local_list ORDER BY host"
        return [(host, school) for host, school in conn.execute(text(query))]


def test_the_local_lists_get_a_school_keeping_the_rows(database_url: str) -> None:
    upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        _insert(engine, "badsite.example")
        _insert(engine, "goodsite.example", "allow")
        upgrade(database_url, AFTER)
        assert current_revision(engine) == AFTER
        assert _rows(engine) == [("badsite.example", None), ("goodsite.example", None)]

        counted = _counter(engine)
        _insert(engine, "badsite.example", school="oak")  # the same host on Oak's own list
        _insert(engine, "badsite.example", school="elm")
        assert _counter(engine) > counted  # the triggers were made again on the new table
        for school in (None, "oak"):  # ... but once on each list
            with pytest.raises(IntegrityError):
                _insert(engine, "badsite.example", school=school)
        counted = _counter(engine)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM local_list WHERE school = 'elm'"))
        assert _counter(engine) > counted

        command.downgrade(alembic_config(database_url), BEFORE)
        assert current_revision(engine) == BEFORE
        assert _rows(engine, "NULL") == [("badsite.example", None), ("goodsite.example", None)]
        counted = _counter(engine)
        _insert(engine, "another.example")
        assert _counter(engine) > counted

        upgrade(database_url, AFTER)  # and up again, as a rolled-back release upgrades once more
        assert len(_rows(engine)) == 3
    finally:
        engine.dispose()
