"""store/db.py: engines, migrations up on SQLite and PostgreSQL, and the schema check."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import schoolgate.store.admin_models
import schoolgate.store.incident_models  # noqa: F401 - their tables, on the metadata
from schoolgate.store import models
from schoolgate.store.db import (
    SchemaOutOfDate,
    current_revision,
    default_database_url,
    display_url,
    head_revision,
    make_engine,
    normalise_url,
    require_current_schema,
    upgrade,
)
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]

OUR_TABLES = {
    "events",
    "circumvention_attempts",
    "sanctions",
    "supervised_sessions",
    "exceptions",
    "local_list",
    "alerts",
    "changes",
    *models.SCHOOL_TABLES,  # each school's own rows (migration 0011)
}


def test_upgrade_makes_every_table_at_the_head_revision(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= OUR_TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, counter FROM changes")).all() == [(1, 0)]
        require_current_schema(engine)  # does not raise
    finally:
        engine.dispose()


def test_upgrade_twice_changes_nothing(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_models_match_the_migrations(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)

    def ours(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
        table = getattr(obj, "table", obj) if type_ != "table" else obj
        return getattr(table, "name", name) in OUR_TABLES

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": ours}
            )
            assert compare_metadata(context, models.Base.metadata) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", [None, "0001"])
def test_an_out_of_date_schema_is_refused_with_the_command_to_run(
    database_url: str, revision: str | None
) -> None:
    if revision is not None:
        if revision == head_revision():
            pytest.skip("0001 is the newest revision: nothing is older")
        upgrade(database_url, revision)
    engine = make_engine(database_url)
    try:
        with pytest.raises(SchemaOutOfDate) as caught:
            require_current_schema(engine)
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "run: schoolgate db upgrade --database '" in message
    assert display_url(database_url) in message
    assert ("empty" in message) if revision is None else (f"at revision '{revision}'" in message)


def test_a_schema_from_a_newer_schoolgate_is_refused(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
            # ... whose migrations removed what this release reads (a contract)
            conn.execute(text("UPDATE schema_compat SET oldest_compatible = '9999'"))
        with pytest.raises(SchemaOutOfDate, match="upgraded by a newer schoolgate"):
            require_current_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db.example/sg", "postgresql+psycopg"),
        ("postgres://u@db.example/sg", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/sg", "postgresql+psycopg"),
        ("sqlite:////var/lib/schoolgate/schoolgate.db", "sqlite"),
    ],
)
def test_postgresql_urls_use_psycopg(given: str, driver: str) -> None:
    assert normalise_url(given).drivername == driver


def test_passwords_are_hidden_in_messages() -> None:
    assert "secret" not in display_url("postgresql://u:secret@db.example/sg")


def test_other_databases_are_refused_with_what_is_supported() -> None:
    with pytest.raises(ValueError, match="supports sqlite"):
        make_engine("mysql://u@db.example/sg")


def test_the_default_database_is_a_file_in_the_data_directory(tmp_path: Path) -> None:
    assert default_database_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/schoolgate.db"
