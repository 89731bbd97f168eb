"""PostgreSQL for tests: the machine's shared server (127.0.0.1:5432, trust auth), where each
test session works in its own database and drops it at the end, and private throw-away servers
(initdb + pg_ctl on a free loopback port) that fault tests may stop and start at will.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from tests.support.lanes import refuse_in_fast_lane
from tests.support.needs import need

SHARED_HOST = os.environ.get("SCHOOLGATE_TEST_PG_HOST", "127.0.0.1")
SHARED_PORT = int(os.environ.get("SCHOOLGATE_TEST_PG_PORT", "5432"))
SHARED_USER = os.environ.get("SCHOOLGATE_TEST_PG_USER", "postgres")
HOW = (
    "run PostgreSQL on 127.0.0.1:5432 with trust authentication for local connections "
    "(./scripts/test.sh as root sets it up), or set SCHOOLGATE_TEST_PG_HOST/PORT/USER"
)


def _admin_conninfo(
    dbname: str = "postgres",
    port: int = SHARED_PORT,
    host: str = SHARED_HOST,
    user: str = SHARED_USER,
) -> str:
    return f"host={host} port={port} user={user} dbname={dbname} connect_timeout=3"


def _url(
    dbname: str, port: int = SHARED_PORT, host: str = SHARED_HOST, user: str = SHARED_USER
) -> str:
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


def shared_postgres_available() -> bool:
    refuse_in_fast_lane("the shared PostgreSQL server")
    try:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def create_database(port: int = SHARED_PORT, host: str = SHARED_HOST) -> str:
    """Make a new uniquely named database `sg_<random>`; returns its name."""
    name = f"sg_{secrets.token_hex(6)}"
    with psycopg.connect(_admin_conninfo(port=port, host=host), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str, port: int = SHARED_PORT, host: str = SHARED_HOST) -> None:
    with psycopg.connect(_admin_conninfo(port=port, host=host), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def shared_postgres_database() -> Iterator[str]:
    """A database of its own on the machine's server, dropped afterwards; yields its URL."""
    need(shared_postgres_available(), f"PostgreSQL at {SHARED_HOST}:{SHARED_PORT}", HOW)
    name = create_database()
    try:
        yield _url(name)
    finally:
        drop_database(name)


def shared_postgres_url(session_url: str) -> str:
    """A fresh schema-free place inside the session's database, for one test: its own
    PostgreSQL schema, made first in the search path (so migrations and triggers land there)."""
    schema = f"t_{secrets.token_hex(5)}"
    conninfo = session_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"{session_url}?options=-csearch_path%3D{schema}"


# --- private servers -------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return found[0] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of its own: data under `root`, listening on 127.0.0.1:`port` only."""

    root: Path
    port: int
    bindir: Path
    run_as: str | None  # initdb and postgres refuse root: run them as this user
    database: str = "sg"
    _running: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return _url(self.database, port=self.port)

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c max_connections=20 -c shared_buffers=16MB"
        )
        self._pg_ctl("start", "-w", "-l", str(self.root / "server.log"), "-o", options)
        self._running = True

    def stop(self) -> None:
        """Stop at once (fast mode: open connections are cut, as in an outage)."""
        self._pg_ctl("stop", "-m", "fast", "-w")
        self._running = False

    def close(self) -> None:
        if self._running:
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")
        return ""


def start_private_postgres(tmp_path: Path | None = None) -> PrivatePostgres:
    """initdb a new cluster (trust auth, loopback only), start it, make database `sg`.

    Its files live in a fresh directory under /tmp (not `tmp_path`, which is private to root
    when tests run as root) owned by the user the server runs as; `.close()` removes them."""
    initdb = _pg_bin("initdb")
    need(
        initdb is not None,
        "PostgreSQL's initdb",
        "install Debian's 'postgresql' package (apt-get install postgresql)",
    )
    assert initdb is not None
    bindir = Path(initdb).parent
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="sg-pg-"))
    if os.geteuid() == 0:
        run_as = "postgres"
        try:
            user = pwd.getpwnam(run_as)
        except KeyError:
            shutil.rmtree(root)
            need(
                False,
                "a 'postgres' user to run a private PostgreSQL as",
                "install Debian's 'postgresql' package, which creates it",
            )
            raise
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PrivatePostgres(root=root, port=_free_port(), bindir=bindir, run_as=run_as)
    try:
        subprocess.run(
            server._cmd(
                str(initdb),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        server.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(_admin_conninfo(port=server.port), autocommit=True) as c:
                    c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(server.database)))
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    except BaseException:
        server.close()
        raise
    return server


# --- fixtures (import them into a conftest) ----------------------------------------------------


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """This test session's own database on the machine's server (dropped at the end)."""
    with shared_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_session_url: str) -> str:
    """An empty schema of its own in the session's database, for one test."""
    return shared_postgres_url(postgres_session_url)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = start_private_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, and a schema on the shared PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'schoolgate.db'}"
    return shared_postgres_url(request.getfixturevalue("postgres_session_url"))


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database of each kind (database_url), migrated to the newest schema."""
    from schoolgate.store.db import make_engine, upgrade

    upgrade(database_url)
    made = make_engine(database_url)
    yield made
    made.dispose()
