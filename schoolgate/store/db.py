"""Connecting to the shared database and keeping its schema current: engines tuned for SQLite
(WAL) and PostgreSQL, Alembic upgrades run from code, and the start-up check that refuses an
out-of-date schema with the command that fixes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
COMPAT_TABLE = "schema_compat"  # the oldest revision whose code still works (0007)
log = logging.getLogger(__name__)
DATABASE_FILE = "schoolgate.db"
SQLITE_BUSY_TIMEOUT_MS = 5000
DATA_DIR_MODE = 0o750  # the service's group may read (backups); nobody else
DATABASE_FILE_MODE = 0o600  # every event, incident note and the audit log are in it
POSTGRES_CONNECT_TIMEOUT_S = 5


class SchemaOutOfDate(RuntimeError):
    """The database's schema is not the one this schoolgate was built for; the message says
    what to run."""


def secure_directory(path: Path) -> Path:
    """Make `path` (and missing parents) with DATA_DIR_MODE whatever the umask, and take the
    permissions of everybody else away from it if it already exists."""
    path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777
    if mode & (stat.S_ISVTX | stat.S_IWOTH):
        # A directory every user shares (/tmp, /var/tmp): never ours to close, even as root
        # (closing /tmp breaks every other service on the machine). Say so and leave it.
        log.warning(
            "%s is a directory every user shares (mode %o): keep schoolgate's data in a "
            "folder of its own instead",
            path,
            mode,
        )
    elif mode & 0o007:
        try:
            path.chmod(mode & 0o770)
        except PermissionError:  # not ours: leave it, and say so
            log.warning("%s is open to every user (mode %o) and is not ours to change", path, mode)
    return path


def secure_sqlite_file(path: Path) -> None:
    """The SQLite file (made empty if missing) and its -wal/-shm files readable by the owner
    only, whatever the umask; SQLite gives -wal and -shm the main file's permissions when it
    makes them, so this also holds for the ones made later."""
    secure_directory(path.parent)
    if not path.exists():
        # Only when missing: closing any descriptor of a file SQLite has open in this process
        # would drop that process's locks on it (POSIX), so an existing file is never opened.
        with contextlib.suppress(FileExistsError):
            os.close(
                os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, DATABASE_FILE_MODE)
            )
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o777 != DATABASE_FILE_MODE:
                file.chmod(DATABASE_FILE_MODE)
        except FileNotFoundError:
            pass
        except PermissionError:  # not ours (e.g. made by another service account): say so
            log.warning(
                "cannot restrict %s to its owner (mode %o wanted); fix it with chmod 600",
                file,
                DATABASE_FILE_MODE,
            )


def default_database_url(data_dir: Path) -> str:
    """The embedded default: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / DATABASE_FILE).resolve()}"


def database_url_from_environment(data_dir: Path | None = None) -> str:
    """$SCHOOLGATE_DATABASE_URL, else the SQLite file in `data_dir` (default: $SCHOOLGATE_DATA_DIR
    or ./var/schoolgate, as `schoolgate gateway` uses)."""
    url = os.environ.get("SCHOOLGATE_DATABASE_URL", "")
    if url:
        return url
    if data_dir is None:
        data_dir = Path(os.environ.get("SCHOOLGATE_DATA_DIR", "") or "var/schoolgate")
    return default_database_url(data_dir)


def normalise_url(url: str | URL) -> URL:
    """The URL with PostgreSQL's driver made explicit (psycopg 3, the one we ship)."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages and logs."""
    return normalise_url(url).render_as_string(hide_password=True)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`. SQLite: WAL, a busy timeout and foreign keys on every connection.
    PostgreSQL (psycopg 3): connections checked before use and a short connect timeout, so an
    outage is noticed in seconds rather than hanging a writer."""
    parsed = normalise_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            secure_sqlite_file(Path(parsed.database))
            kwargs.setdefault("connect_args", {}).setdefault(
                "timeout", SQLITE_BUSY_TIMEOUT_MS / 1000
            )
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("connect_args", {}).setdefault(
            "connect_timeout", POSTGRES_CONNECT_TIMEOUT_S
        )
        return create_engine(parsed, **kwargs)
    raise ValueError(
        f"database URL {display_url(parsed)!r}: schoolgate supports sqlite:/// "
        "files and postgresql+psycopg:// servers"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets the admin read while the gateway writes; NORMAL is durable across process crashes
    # in WAL mode (only an OS crash can lose the last commits).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini): the migrations in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # Through attributes, not the ini options: those interpolate '%' (e.g. in passwords).
        config.attributes["url"] = normalise_url(url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "store/migrations has no revisions"
    return head


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Apply every migration up to `revision` (default: the newest), then record the oldest
    revision whose code still works on the result (`schema_compat`). A SQLite file (and its
    directory) is made if missing."""
    parsed = normalise_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        secure_sqlite_file(path)
    engine = make_engine(parsed)
    try:
        with engine.begin() as connection:
            config = alembic_config(parsed)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            reached = MigrationContext.configure(connection).get_current_revision()
            if reached is not None and inspect(connection).has_table(COMPAT_TABLE):
                connection.execute(text("DELETE FROM schema_compat"))
                connection.execute(
                    text("INSERT INTO schema_compat (id, oldest_compatible) VALUES (1, :o)"),
                    {"o": oldest_compatible(reached)},
                )
    finally:
        engine.dispose()


def oldest_compatible(revision: str) -> str:
    """The oldest revision whose code works on a database at `revision`: walking down the
    migrations while each says `expand_only = True` (it only added tables, nullable columns or
    indexes, so the code before it never notices)."""
    script = ScriptDirectory.from_config(alembic_config())
    current = script.get_revision(revision)
    assert current is not None, revision
    while getattr(current.module, "expand_only", False) and isinstance(current.down_revision, str):
        below = script.get_revision(current.down_revision)
        assert below is not None
        current = below
    return current.revision


def _compatible_with_this_release(engine: Engine) -> str | None:
    """The oldest revision a newer schema says it still serves, when this release is that
    revision or newer (so it keeps working); None otherwise."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(COMPAT_TABLE):
            return None
        oldest = connection.execute(text("SELECT oldest_compatible FROM schema_compat")).scalar()
    script = ScriptDirectory.from_config(alembic_config())
    ours = {rev.revision for rev in script.walk_revisions()}  # this release's head and below
    return oldest if oldest in ours else None


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at this schoolgate's newest revision."""
    url = engine.url.render_as_string(hide_password=True)
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        serves = _compatible_with_this_release(engine)
        if serves is not None:  # a newer release only expanded the schema: carry on
            log.info(
                "the database %s is at revision %r, newer than this schoolgate's %r; it "
                "still serves every release since %r, so this one runs on it (upgrade "
                "this one soon)",
                url,
                current,
                head,
                serves,
            )
            return
        raise SchemaOutOfDate(
            f"the database {url} is at schema revision {current!r}, which this version of "
            f"schoolgate does not know (it expects {head!r}): the database was upgraded by a "
            "newer schoolgate; install that version (or newer) here too"
        )
    where = "empty (no schoolgate tables)" if current is None else f"at revision {current!r}"
    raise SchemaOutOfDate(
        f"the database {url} is {where}, but this version of schoolgate needs revision "
        f"{head!r}; run: schoolgate db upgrade --database '{url}'"
    )


def upsert_insert(dialect_name: str) -> Any:
    """The INSERT construct with ON CONFLICT for this database (PostgreSQL's or SQLite's): the
    shared tables (throttle, attempt counts, act marks) write their row first, then lock it."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert
