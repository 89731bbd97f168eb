"""Review finding 15: the data directory and the SQLite database (with its -wal and -shm) are
private whatever the umask: 0750 and 0600, made so in code, and tightened if found open."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from schoolgate.store.db import default_database_url, make_engine, secure_directory, upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what `schoolgate run` by hand usually gets
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_a_new_data_directory_and_database_are_private(tmp_path: Path) -> None:
    data = tmp_path / "var" / "schoolgate"
    secure_directory(data)
    url = default_database_url(data)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:  # a write: the -wal and -shm files exist now
            connection.execute(text("CREATE TABLE probe (x INTEGER)"))
        assert mode(data) == 0o750
        for name in ("schoolgate.db", "schoolgate.db-wal", "schoolgate.db-shm"):
            assert mode(data / name) == 0o600, name
    finally:
        engine.dispose()


@pytest.mark.usefixtures("open_umask")
def test_open_permissions_left_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "schoolgate.db"
    database.touch()
    database.chmod(0o644)
    make_engine(default_database_url(data)).dispose()
    secure_directory(data)
    assert mode(database) == 0o600
    assert mode(data) == 0o750


@pytest.mark.usefixtures("open_umask")
def test_a_database_in_a_shared_directory_leaves_the_directory_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Found in a test run: a SQLite file in /tmp, as root, closed /tmp to 0770, and every
    # service that is not root (PostgreSQL's initdb here) lost its temporary directory.
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    make_engine(f"sqlite:///{shared / 'probe.db'}").dispose()
    assert mode(shared) == 0o1777
    assert mode(shared / "probe.db") == 0o600
    assert "a directory every user shares" in caplog.text
