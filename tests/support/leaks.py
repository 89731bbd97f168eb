"""An SQLite connection a test leaves open (an engine never disposed, a throttle or the admin's
resources never closed) fails that test: the warning, then the unraisable exception pytest makes
of it (it is raised in the connection's finaliser). For the test folders and modules that close
everything they open; tests/store and tests/proxy_addons do not yet (CHANGELOG, Known)."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

UNCLOSED_SQLITE = (
    pytest.mark.filterwarnings("error:unclosed database:ResourceWarning"),
    pytest.mark.filterwarnings(
        "error:Exception ignored in. <sqlite3\\.Connection:pytest.PytestUnraisableExceptionWarning"
    ),
)


@pytest.fixture(autouse=True)
def closed_what_it_opened() -> Iterator[None]:
    """Collect after each test, so what it left open is charged to it and not to a later one.
    What survives is then frozen (gc.freeze): the next test's collection walks only the objects
    made since, not the whole heap again (a full collection after every test made the admin's
    tests three times slower, and CI with coverage slower still)."""
    with warnings.catch_warnings():  # what earlier tests outside the check left is not ours
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    gc.freeze()
    yield
    gc.collect()
    gc.freeze()
