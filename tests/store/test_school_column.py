"""Migration 0011: the `school` column on the tables holding a school's data, up and down on
SQLite and PostgreSQL, keeping the rows (test_db.py checks the models match it); rows written
before keep NULL, a single-school install."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from schoolgate.store import models
from schoolgate.store.db import alembic_config, current_revision, make_engine, upgrade
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

BEFORE = "0010_alert_closed_at"
SCHOOL = "0011_school_column"
LATER = ("local_list", "attempt_counts", "act_marks")  # 0012's and 0013's
SCHOOL_TABLES_0011 = tuple(t for t in models.SCHOOL_TABLES if t not in LATER)


def _school_columns(url: str) -> dict[str, bool]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            table: any(c["name"] == "school" for c in found.get_columns(table))
            for table in SCHOOL_TABLES_0011
        }
    finally:
        engine.dispose()


def test_the_school_column_goes_up_and_down_keeping_the_rows(database_url: str) -> None:
    upgrade(database_url, BEFORE)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO alerts (id, at, severity, kind, summary, details, state) "
                    "VALUES ('a1', '2026-12-03 10:00:00', 'low', 'attempt', 'x', '{}', 'open')"
                )
            )
        assert _school_columns(database_url) == dict.fromkeys(SCHOOL_TABLES_0011, False)

        upgrade(database_url, SCHOOL)
        assert current_revision(engine) == SCHOOL
        assert _school_columns(database_url) == dict.fromkeys(SCHOOL_TABLES_0011, True)
        indexes = {i["name"] for i in inspect(engine).get_indexes("events")}
        assert "ix_events_school_at" in indexes
        with engine.begin() as conn:
            assert conn.execute(text("SELECT id, school FROM alerts")).all() == [("a1", None)]
            conn.execute(text("UPDATE alerts SET school = 'oak'"))

        command.downgrade(alembic_config(database_url), BEFORE)
        assert current_revision(engine) == BEFORE
        assert _school_columns(database_url) == dict.fromkeys(SCHOOL_TABLES_0011, False)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM alerts")).scalars().all() == ["a1"]

        upgrade(database_url, SCHOOL)  # and up again, as a rolled-back release upgrades once more
        assert _school_columns(database_url) == dict.fromkeys(SCHOOL_TABLES_0011, True)
    finally:
        engine.dispose()


def test_the_counts_get_a_school_column_up_and_down(database_url: str) -> None:
    """Migration 0013: `attempt_counts` and `act_marks` get `school`, keeping their rows."""
    before, after = "0012_local_list_school", "0013_school_on_counts"
    upgrade(database_url, before)
    engine = make_engine(database_url)

    def has_school() -> set[str]:
        found = inspect(engine)
        tables = ("attempt_counts", "act_marks")
        return {t for t in tables if any(c["name"] == "school" for c in found.get_columns(t))}

    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO act_marks (key, at, event_id) "
                    "VALUES ('act|pupil1|x', '2026-12-03 10:00:00', 'e1')"
                )
            )
        assert has_school() == set()
        upgrade(database_url, after)
        assert has_school() == {"attempt_counts", "act_marks"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT key, school FROM act_marks")).all() == [
                ("act|pupil1|x", None)
            ]
        command.downgrade(alembic_config(database_url), before)
        assert has_school() == set()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT key FROM act_marks")).scalars().all() == [
                "act|pupil1|x"
            ]
    finally:
        engine.dispose()
