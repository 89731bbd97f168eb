"""admin_api/resources.py: what the admin makes at start-up it also closes. Unclosed SQLite
connections (the sign-in throttle's in-memory database, engines never disposed) were the
132 "ResourceWarning: unclosed database" lines of the test run."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

from schoolgate.admin_api.resources import make_resources
from schoolgate.admin_api.throttle import SignInThrottle
from tests.admin_api.conftest import settings_for


def unclosed_databases(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "unclosed database" in str(w.message)
    ]


def test_closing_the_resources_closes_the_sign_in_throttles_memory(
    database_url: str, tmp_path: Path
) -> None:
    gc.collect()  # what earlier tests left behind is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        made = make_resources(settings_for(database_url, tmp_path / "data"))
        # in memory: the throttle the tests (and an admin whose database fails) count in
        made.throttle = SignInThrottle(None, max_per_user=5, max_per_ip=30, window_seconds=900)
        made.throttle.reserve("pupil1", "10.0.0.1")
        made.close()
        del made
        gc.collect()
    assert unclosed_databases(caught) == []
