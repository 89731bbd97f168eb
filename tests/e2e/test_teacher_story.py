"""The class teacher's story in a real browser, at desktop (1366 px) and phone (390 px) width,
against the real admin and gateway sharing one database: pupil1 (Year5) and pupil2 (Year6) are
supervised-only; teacher1 (Teachers-Year5) opens "My class", sees pupil1 only, supervises
pupil1 for 40 minutes, and pupil1 can then browse through the gateway again. Every page passes
axe-core and fits a 390 px screen (tests/e2e/test_admin_stories.py's Story)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import SanctionRow, SanctionState, SupervisedSessionRow
from tests.e2e.test_admin_browser import (
    DEMO_IDENTITY,
    running_admin,
    sign_in,
    write_recommending_policy,
)
from tests.e2e.test_admin_stories import (
    WIDTHS,
    Story,
    _browser,
    _context,
    chromium,  # noqa: F401  (the fixture, for `services`)
)
from tests.e2e.test_inspect_e2e import rows
from tests.support.gateway import free_port, running_gateway, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("teacher-story")
    policy = tmp / "policy.yaml"
    write_recommending_policy(policy)
    database = f"sqlite:///{tmp / 'schoolgate.db'}"
    upgrade(database)
    admin_port = free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    with (
        running_gateway(
            tmp / "gw",
            policy=policy,
            identity=DEMO_IDENTITY,
            extra_args=[
                "--set",
                f"schoolgate_database_url={database}",
                "--set",
                f"schoolgate_admin_url={admin}",
            ],
        ) as gw,
        running_admin(tmp, database=database, port=admin_port, data_dir=gw.data_dir, policy=policy),
    ):
        yield {"admin": admin, "gw": gw, "home": tmp / "home", "db": database}


def sanction_both(database: str) -> None:
    """pupil1 and pupil2 supervised-only for 14 days, no session open."""
    now = datetime.now(UTC)
    engine = make_engine(database)
    try:
        with Session(engine) as session, session.begin():
            session.execute(delete(SupervisedSessionRow))
            session.execute(delete(SanctionRow))
            for user in ("pupil1", "pupil2"):
                session.add(
                    SanctionRow(
                        id=str(uuid.uuid4()),
                        user=user,
                        starts=now - timedelta(minutes=5),
                        ends=now + timedelta(days=14),
                        reason="Three attempts to use a web proxy.",
                        placed_by="dsl1",
                        state=SanctionState.PLACED,
                        note="",
                    )
                )
    finally:
        engine.dispose()


def pupil1_status(services: dict[str, Any]) -> int:
    gw = services["gw"]
    with httpx.Client(
        proxy=f"http://pupil1:pupil1-demo@127.0.0.1:{gw.port}", trust_env=False, timeout=20
    ) as client:
        return client.get("http://learning.test/lesson").status_code


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_teacher_supervises_a_pupil_of_their_class(
    services: dict[str, Any],
    chromium: tuple[Any, str],  # noqa: F811
    artefacts_dir: Path,
    width: str,
) -> None:
    shots = artefacts_dir / "stories"
    shots.mkdir(exist_ok=True)
    admin, database = services["admin"], services["db"]
    sanction_both(database)
    wait_for(lambda: pupil1_status(services) == 403, what="pupil1 supervised-only")
    browser = _browser(chromium, services, None)
    try:
        story = Story(_context(browser, width).new_page(), width, "teacher1", shots)
        story.page.goto(f"{admin}/signin")
        sign_in(story.page, admin, "teacher1")
        story.page.get_by_role("link", name="My class").first.click()
        text = story.look("my-class")
        assert "Your class: Year5." in text
        assert "Pupil One (Year 5)" in text
        assert "Pupil Two" not in text
        assert "Only with a teacher until" in text
        story.page.select_option("select[name=minutes]", "40")
        story.page.get_by_role("button", name="Supervise Pupil One (Year 5)").click()
        text = story.look("supervising")
        assert "Supervised now by you, until" in text
    finally:
        browser.close()
    assert story.problems == [], "\n".join(story.problems)
    (opened,) = rows(database, SupervisedSessionRow)
    assert (opened.user, opened.opened_by) == ("pupil1", "teacher1")
    assert opened.ends - opened.starts == timedelta(minutes=40)
    wait_for(lambda: pupil1_status(services) == 200, what="pupil1 browsing while supervised")
