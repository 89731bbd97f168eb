"""Fair counting through the real gateway: a real Chromium visiting a blocked page makes one
attempt (its favicon, reloads and the block page's own requests are follow-ups of that act),
three deliberate tries spaced beyond the act window make three, and two gateway processes
sharing one database (SQLite and PostgreSQL) reach the sanction threshold together."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from schoolgate.store.alerts import AlertKind
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, CircumventionAttemptRow, SanctionRow, SanctionState
from tests.e2e.test_detection_e2e import sanction_policy
from tests.support.browser import chromium_behind, need_browser
from tests.support.gateway import (
    PASSWORD,
    Gateway,
    running_gateway,
    wait_for,
    write_identity,
)
from tests.support.postgres import shared_postgres_database

pytestmark = pytest.mark.e2e

ACT_SECONDS = 3  # the act window these tests give the gateway


def get(gw: Gateway, url: str, user: str) -> httpx.Response:
    with gw.client(user, trust="both") as client:
        return client.get(url)


def scalars[T](url: str, statement: Select[T]) -> list[T]:
    """What `statement` reads from the database at `url` (an engine of its own, let go)."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(statement))
    finally:
        engine.dispose()


def proxysite_attempts(url: str) -> list[CircumventionAttemptRow]:
    return scalars(
        url,
        select(CircumventionAttemptRow)
        .where(CircumventionAttemptRow.host == "proxysite.test")
        .order_by(CircumventionAttemptRow.at),
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    upgrade(url)
    return url


@pytest.mark.browser
def test_one_visit_in_chromium_is_one_attempt_and_three_tries_are_three(
    tmp_path: Path, sqlite_url: str
) -> None:
    need_browser()  # skip before starting a gateway when there is no browser
    policy = tmp_path / "policy.yaml"
    sanction_policy(policy)
    home = tmp_path / "home"
    with running_gateway(
        tmp_path / "gw",
        policy=policy,
        identity=write_identity(tmp_path / "id"),
        extra_args=[
            "--set",
            f"schoolgate_database_url={sqlite_url}",
            "--set",
            f"schoolgate_act_seconds={ACT_SECONDS}",
        ],
    ) as gw:
        with chromium_behind(gw.port, gw.ca_pem, home, "pupil1", PASSWORD) as browser:
            page = browser.new_page()
            response = page.goto("https://proxysite.test/")
            assert response is not None
            assert response.status == 403
            page.reload()  # at once: the same act
            wait_for(
                lambda: len(proxysite_attempts(sqlite_url)) >= 2,
                timeout=20,
                what="the visit and its reload recorded",
            )
            one_visit = proxysite_attempts(sqlite_url)
            assert [a.counted for a in one_visit].count(True) == 1
            for _ in range(2):  # two more deliberate tries, each after the window
                time.sleep(ACT_SECONDS + 0.5)
                page.goto("https://proxysite.test/again")
            # Wait for the counted rows, not for any two more: a late favicon of the first visit
            # is a row too, and can end a wait for "two more rows" before the last try is written.
            wait_for(
                lambda: sum(a.counted for a in proxysite_attempts(sqlite_url)) >= 3,
                timeout=20,
                what="the later tries recorded and counted",
            )
            time.sleep(1)  # anything still being written would show as a fourth
        counted = [a for a in proxysite_attempts(sqlite_url) if a.counted]
        assert len(counted) == 3
        assert all(a.user == "pupil1" for a in counted)


def sanctioned(url: str) -> bool:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return (
                session.scalars(
                    select(SanctionRow).where(
                        SanctionRow.user == "pupil1", SanctionRow.state == SanctionState.PLACED
                    )
                ).first()
                is not None
            )
    finally:
        engine.dispose()


@contextlib.contextmanager
def two_gateways(tmp_path: Path, url: str) -> Iterator[tuple[Gateway, Gateway]]:
    policy = tmp_path / "policy.yaml"
    sanction_policy(policy)  # 3 attempts within 10 minutes place a sanction
    identity = write_identity(tmp_path / "id")
    args = ["--set", f"schoolgate_database_url={url}", "--set", "schoolgate_act_seconds=0"]
    with (
        running_gateway(tmp_path / "a", policy=policy, identity=identity, extra_args=args) as one,
        running_gateway(tmp_path / "b", policy=policy, identity=identity, extra_args=args) as two,
    ):
        yield one, two


def reach_the_threshold_together(tmp_path: Path, url: str) -> None:
    with two_gateways(tmp_path, url) as (one, two):
        assert get(one, "https://proxysite.test/1", "pupil1").status_code == 403
        assert get(one, "https://proxysite.test/2", "pupil1").status_code == 403
        wait_for(
            lambda: sum(a.counted for a in proxysite_attempts(url)) == 2,
            timeout=20,
            what="two attempts recorded by the first gateway",
        )
        time.sleep(1)
        assert not sanctioned(url)  # two attempts: not yet
        assert get(two, "https://proxysite.test/3", "pupil1").status_code == 403
        wait_for(
            lambda: sanctioned(url),
            timeout=20,
            what="the sanction placed by the second gateway's third attempt",
        )


def test_two_gateways_on_one_sqlite_file_reach_the_threshold_together(
    tmp_path: Path, sqlite_url: str
) -> None:
    reach_the_threshold_together(tmp_path, sqlite_url)


def test_two_gateways_on_postgresql_reach_the_threshold_together(tmp_path: Path) -> None:
    with shared_postgres_database() as url:
        upgrade(url)
        reach_the_threshold_together(tmp_path, url)


@pytest.mark.browser
def test_a_blocked_widget_on_an_allowed_page_in_chromium_is_never_counted(
    tmp_path: Path, sqlite_url: str
) -> None:
    need_browser()  # skip before starting a gateway when there is no browser
    policy = tmp_path / "policy.yaml"
    sanction_policy(policy)
    home = tmp_path / "home"
    engine = make_engine(sqlite_url)

    def twitter_attempts() -> list[CircumventionAttemptRow]:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(CircumventionAttemptRow).where(
                        CircumventionAttemptRow.host == "platform.twitter.com"
                    )
                )
            )

    with running_gateway(
        tmp_path / "gw",
        policy=policy,
        identity=write_identity(tmp_path / "id"),
        extra_args=["--set", f"schoolgate_database_url={sqlite_url}"],
    ) as gw:
        with chromium_behind(gw.port, gw.ca_pem, home, "pupil1", PASSWORD) as browser:
            page = browser.new_page()
            # An allowed news page (served by the browser itself) embedding an X post.
            page.route(
                "https://www.bbc.co.uk/news",
                lambda route: route.fulfill(
                    status=200,
                    content_type="text/html",
                    body='<h1>News</h1><iframe src="https://platform.twitter.com/embed/'
                    'Tweet.html?id=1"></iframe>',
                ),
            )
            page.goto("https://www.bbc.co.uk/news")
            wait_for(lambda: bool(twitter_attempts()), timeout=20, what="the widget recorded")
        rows = twitter_attempts()
        engine.dispose()
    assert {r.technique for r in rows} == {"embedded_widget"}
    assert not any(r.counted for r in rows)
    assert not gw.contacted("platform.twitter.com")


def test_one_act_through_two_gateways_counts_once(tmp_path: Path, sqlite_url: str) -> None:
    # The threshold is 2 acts here: a page through one gateway process and its reload through
    # the other (one act) must not reach it; a later, deliberate try does.
    policy = tmp_path / "policy.yaml"
    sanction_policy(policy)
    policy.write_text(policy.read_text().replace("attempts: 3,", "attempts: 2,"))
    identity = write_identity(tmp_path / "id")
    args = [
        "--set",
        f"schoolgate_database_url={sqlite_url}",
        "--set",
        f"schoolgate_act_seconds={ACT_SECONDS}",
    ]
    with (
        running_gateway(tmp_path / "a", policy=policy, identity=identity, extra_args=args) as one,
        running_gateway(tmp_path / "b", policy=policy, identity=identity, extra_args=args) as two,
    ):
        assert get(one, "https://proxysite.test/", "pupil1").status_code == 403
        assert get(two, "https://proxysite.test/", "pupil1").status_code == 403  # the reload
        wait_for(
            lambda: len(proxysite_attempts(sqlite_url)) == 2,
            timeout=20,
            what="both requests recorded",
        )
        time.sleep(2)  # the threshold jobs run off the request path
        assert not sanctioned(sqlite_url)
        time.sleep(ACT_SECONDS + 0.5)
        assert get(two, "https://proxysite.test/again", "pupil1").status_code == 403
        wait_for(
            lambda: sanctioned(sqlite_url), timeout=20, what="the sanction after the second act"
        )


def attempt_alerts(url: str, user: str | None = "pupil1") -> list[AlertRow]:
    return scalars(
        url,
        select(AlertRow).where(
            AlertRow.kind == AlertKind.ATTEMPT,
            AlertRow.user == user if user else AlertRow.user.is_(None),
        ),
    )


def one_act_one_alert_through_two_gateways(
    tmp_path: Path, url: str, user: str | None = "pupil1"
) -> None:
    # A page through one gateway process and its reload through the other: one act, so one
    # counted row, one alert, and the reload's row names the page's as its act. With no user,
    # a device known only by its address (a subnet that need not sign in).
    policy = tmp_path / "policy.yaml"
    sanction_policy(policy)
    identity = write_identity(tmp_path / "id")
    if user is None:
        identity.write_text(
            identity.read_text()
            + "subnets: [{cidr: 127.0.0.0/8, role: pupil, without_auth: true}]\n"
        )
    args = [
        "--set",
        f"schoolgate_database_url={url}",
        "--set",
        f"schoolgate_act_seconds={ACT_SECONDS * 10}",
    ]

    def visit(gw: Gateway) -> int:
        if user is not None:
            return get(gw, "https://proxysite.test/", user).status_code
        with gw.client(None, trust="both") as client:
            return client.get("https://proxysite.test/").status_code

    with (
        running_gateway(tmp_path / "a", policy=policy, identity=identity, extra_args=args) as one,
        running_gateway(tmp_path / "b", policy=policy, identity=identity, extra_args=args) as two,
    ):
        assert visit(one) == 403
        wait_for(lambda: len(attempt_alerts(url, user)) == 1, timeout=20, what="the page's alert")
        assert visit(two) == 403  # the reload

        def settled() -> bool:
            rows = proxysite_attempts(url)
            return len(rows) == 2 and [r.counted for r in rows] == [True, False]

        wait_for(settled, timeout=20, what="the reload recorded as the page's follow-up")
        time.sleep(2)  # anything still to come from the second gateway's alert worker
        page, reload = proxysite_attempts(url)
        assert (page.user, reload.user) == (user, user)
        assert reload.evidence["same_act_as"] == page.event_id
        assert "same_act_as" not in page.evidence
        assert len(attempt_alerts(url, user)) == 1


def test_a_page_and_its_reload_through_two_gateways_on_sqlite_are_one_act_one_alert(
    tmp_path: Path, sqlite_url: str
) -> None:
    one_act_one_alert_through_two_gateways(tmp_path, sqlite_url)


def test_a_device_known_by_its_address_through_two_gateways_makes_one_act_one_alert(
    tmp_path: Path, sqlite_url: str
) -> None:
    one_act_one_alert_through_two_gateways(tmp_path, sqlite_url, user=None)


def test_a_page_and_its_reload_through_two_gateways_on_postgresql_are_one_act_one_alert(
    tmp_path: Path,
) -> None:
    with shared_postgres_database() as url:
        upgrade(url)
        one_act_one_alert_through_two_gateways(tmp_path, url)
