"""Alembic's environment for schoolgate: run by `schoolgate.store.db.upgrade` (or `schoolgate db upgrade`)
with the connection or URL in `config.attributes`; batch mode so SQLite can alter tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import schoolgate.store.admin_models  # noqa: F401 - registers the admin tables on the metadata
from schoolgate.store.db import make_engine
from schoolgate.store.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database given: use `schoolgate db upgrade --database URL`")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("schoolgate's migrations run against a database (online mode) only")
run_migrations_online()
