"""Rolling upgrades with several replicas (ops review M4): the migration runs first, and a replica
of the previous release that starts (or restarts) afterwards keeps working when the new schema
only added things (expand), and stops with a clear message when it removed or changed what the
old code reads (contract). Each `schoolgate db upgrade` writes, in the database, the oldest
schema revision whose code still works on it (`schema_compat`), from the migrations' own
`expand_only` marks; the schema check of an older release reads it. On real SQLite and
PostgreSQL. docs/upgrading.md says the rule for writing migrations."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from schoolgate.store.db import (
    SchemaOutOfDate,
    alembic_config,
    head_revision,
    oldest_compatible,
    require_current_schema,
)
from tests.support.postgres import database_url, migrated_engine, postgres_session_url

__all__ = ["database_url", "migrated_engine", "postgres_session_url"]


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def newer_release_upgraded(engine: Engine, *, oldest: str) -> None:
    """What the next release's `db upgrade` leaves: its own revision, which this code does
    not know, and the oldest revision its schema still serves."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zzzz_next_release'"))
        conn.execute(
            text("UPDATE schema_compat SET oldest_compatible = :oldest"), {"oldest": oldest}
        )


def test_db_upgrade_records_the_oldest_release_the_schema_still_serves(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT oldest_compatible FROM schema_compat")).all()
    assert rows == [(oldest_compatible(head_revision()),)]
    script = ScriptDirectory.from_config(alembic_config())
    # walking down while each migration only added things
    revision = script.get_revision(head_revision())
    assert revision is not None
    while getattr(revision.module, "expand_only", False) and revision.down_revision:
        revision = script.get_revision(revision.down_revision)
        assert revision is not None
    assert rows[0][0] == revision.revision


def test_an_older_replica_keeps_working_after_an_expand_migration(engine: Engine) -> None:
    newer_release_upgraded(engine, oldest=oldest_compatible(head_revision()))
    require_current_schema(engine)  # no SchemaOutOfDate: this release still serves


def test_an_older_replica_stops_after_a_contract_migration(engine: Engine) -> None:
    newer_release_upgraded(engine, oldest="zzzz_next_release")
    with pytest.raises(SchemaOutOfDate, match="upgraded by a newer schoolgate"):
        require_current_schema(engine)
