"""store/incident_models.py against migration 0003 on SQLite and PostgreSQL: the table the
migration makes is the one the model describes (columns, types, indexes), and aware times
come back aware in UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.incident_models import IncidentNoteRow
from schoolgate.store.models import Base
from tests.support.postgres import database_url, postgres_session_url

__all__ = ["database_url", "postgres_session_url"]


def test_migration_0003_makes_the_modelled_table(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)

    def ours(obj: object, name: str | None, type_: str, reflected: bool, other: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return getattr(table, "name", name) == "incident_notes"

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": ours}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_note_keeps_its_times_in_utc(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    written = datetime(2030, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    try:
        with Session(engine) as session:
            note_id = str(uuid.uuid4())
            session.add(
                IncidentNoteRow(
                    id=note_id,
                    at=written,
                    user="pupil1",
                    written_by="dsl1",
                    happened_at=written,
                    what_happened="a",
                    action_taken="b",
                    outcome="c",
                )
            )
            session.commit()
        with Session(engine) as session:
            row = session.get_one(IncidentNoteRow, note_id)
            assert row.at == written
            assert row.at.tzinfo is UTC
            assert row.alert_id is None
    finally:
        engine.dispose()
