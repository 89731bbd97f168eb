"""Each role's story in a real browser, at desktop (1366 px) and phone (390 px) width: the pupil
(the block page through a real gateway, a sanctioned pupil's page, asking, the answer), the
teacher, the Business Manager, the DSL and the IT technician, against the real admin
(`schoolgate admin`) sharing the gateway's database. On every page, at both widths: axe-core
finds no violations, and at 390 px nothing is wider than the screen
(`document.scrollingElement.scrollWidth <= innerWidth`). A screenshot of every page is kept in
test-artifacts/stories/ for people to read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from schoolgate.policy.model import Verdict
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import (
    AlertRow,
    AlertSeverity,
    AlertState,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
)
from tests.e2e.test_admin_browser import write_recommending_policy
from tests.support.browser import (
    CHROMIUM_ARGS,
    DEMO_IDENTITY,
    need_browser,
    running_admin,
    sign_in,
    trust_ca,
)
from tests.support.gateway import free_port, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
WIDTHS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@dataclass
class Ids:
    pending: str = ""
    approved: str = ""
    alert: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def seed(database: str) -> Ids:
    """What the stories read: requests in each state, visits, attempts, alerts, a sanction."""
    now = datetime.now(UTC)
    ids = Ids(pending=str(uuid.uuid4()), approved=str(uuid.uuid4()), alert=str(uuid.uuid4()))
    engine = make_engine(database)
    base = {
        "requester_role": "pupil",
        "blocked_role": "pupil",
        "block_reason": "rule_block",
        "from_block_page": True,
        "category": "social",
        "for_group": None,
        "wanted_on": None,
        "wanted_period": None,
    }
    with Session(engine) as session:
        session.add(
            UnblockRequestRow(
                id=ids.pending,
                created_at=now - timedelta(minutes=12),
                requester="pupil1",
                requester_name="Pupil One",
                blocked_user="pupil1",
                blocked_at=now,
                host="www.tiktok.com",
                why="I want to watch a video about volcanoes for my science homework.",
                state=RequestState.PENDING,
                **base,
            )
        )
        session.add(
            UnblockRequestRow(
                id=ids.approved,
                created_at=now - timedelta(hours=3),
                requester="pupil1",
                requester_name="Pupil One",
                blocked_user="pupil1",
                blocked_at=now,
                host="www.reddit.com",
                why="Our class is reading a thread about the Romans.",
                state=RequestState.APPROVED,
                reviewed_by="bursar1",
                reviewed_at=now - timedelta(hours=1),
                grant={
                    "ends": (now + timedelta(hours=2)).isoformat(),
                    "scope": "user",
                    "who": "pupil1",
                    "target_kind": "host",
                    "target": "www.reddit.com",
                },
                **base,
            )
        )
        session.add(
            UnblockRequestRow(
                id=str(uuid.uuid4()),
                created_at=now - timedelta(hours=5),
                requester="teacher1",
                requester_name="Teacher One",
                blocked_user="teacher1",
                blocked_at=now,
                host="www.discord.com",
                why="A coding club server for Year 6.",
                state=RequestState.DENIED,
                reviewed_by="bursar1",
                reviewed_at=now - timedelta(hours=2),
                review_note="Please use the school's own coding site instead.",
                **(base | {"requester_role": "staff"}),
            )
        )
        events = []
        for n, (user, host, path, category, verdict, reason, technique) in enumerate(
            [
                ("pupil1", "www.tiktok.com", "/@science", "social", "block", "rule_block", None),
                ("pupil1", "www.tiktok.com", "/favicon.ico", "social", "block", "rule_block", None),
                ("pupil1", "nordvpn.com", "/", "vpn", "block", "circumvention", "vpn"),
                (
                    "pupil2",
                    "www.croxyproxy.com",
                    "/",
                    "web_proxy",
                    "block",
                    "circumvention",
                    "web_proxy",
                ),
                ("teacher1", "www.bbc.co.uk", "/newsround", None, "allow", "default_allow", None),
            ]
        ):
            events.append(
                {
                    "id": str(uuid.uuid4()),
                    "replica": "story",
                    "seq": n,
                    "at": now - timedelta(minutes=30 - n),
                    "user": user,
                    "role": "staff" if user == "teacher1" else "pupil",
                    "identity_source": "proxy_auth",
                    "client_ip": f"10.0.5.{20 + n}",
                    "device": None,
                    "method": "GET",
                    "scheme": "https",
                    "host": host,
                    "port": 443,
                    "path": path,
                    "query": None,
                    "search_terms": None,
                    "category": category,
                    "verdict": Verdict(verdict),
                    "reason": reason,
                    "rule": "pupils-social-media" if category == "social" else None,
                    "technique": technique,
                    "intercepted": True,
                }
            )
        session.execute(insert(EventRow), events)
        session.add(
            CircumventionAttemptRow(
                id=str(uuid.uuid4()),
                event_id=events[2]["id"],
                at=events[2]["at"],
                user="pupil1",
                client_ip="10.0.5.22",
                host="nordvpn.com",
                technique="vpn",
                evidence={"host": "nordvpn.com"},
                counted=True,
            )
        )
        session.add(
            AlertRow(
                id=ids.alert,
                at=now - timedelta(minutes=26),
                severity=AlertSeverity.HIGH,
                kind="circumvention_attempt",
                user="pupil1",
                state=AlertState.OPEN,
                summary="pupil1 tried a VPN (nordvpn.com)",
                details={
                    "technique": "vpn",
                    "host": "nordvpn.com",
                    "window_seconds": 600,
                    "first_attempt": events[2]["at"].isoformat(),
                },
            )
        )
        session.add(
            AlertRow(
                id=str(uuid.uuid4()),
                at=now - timedelta(minutes=20),
                severity=AlertSeverity.MEDIUM,
                kind="sanction_placed",
                user="pupil2",
                state=AlertState.OPEN,
                summary=f"pupil2 is supervised-only until "
                f"{(now + timedelta(days=14)):%Y-%m-%d %H:%M} UTC",
                details={"sanction_id": str(uuid.uuid4()), "attempts": 3},
            )
        )
        session.add(
            SanctionRow(
                id=str(uuid.uuid4()),
                user="pupil2",
                starts=now - timedelta(minutes=20),
                ends=now + timedelta(days=14),
                reason="Three attempts to use a web proxy.",
                placed_by="schoolgate",
                state=SanctionState.PLACED,
                note="",
            )
        )
        session.commit()
    engine.dispose()
    return ids


class Story:
    """Visits pages at one width: a screenshot of each, axe, and the 390 px reflow check."""

    def __init__(self, page: Any, width: str, who: str, folder: Path) -> None:
        self.page, self.width, self.who, self.folder = page, width, who, folder
        self.count = 0
        self.problems: list[str] = []

    def look(self, name: str) -> str:
        page = self.page
        page.wait_for_load_state()
        self.count += 1
        page.screenshot(
            path=str(self.folder / f"{self.width}-{self.who}-{self.count:02d}-{name}.png"),
            full_page=True,
        )
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        inner = page.evaluate("innerWidth")
        if self.width == "phone" and wide > inner:
            self.problems.append(f"{self.who} {name}: {wide} px wide on a {inner} px screen")
        page.add_script_tag(content=AXE)
        found = page.evaluate(
            "async (tags) => (await axe.run(document, {runOnly: {type: "
            "'tag', values: tags}})).violations.map(v => v.id + ' (' + "
            "v.impact + ', ' + v.nodes.length + ')')",
            AXE_TAGS,
        )
        if found:
            self.problems.append(f"{self.who} {name} ({self.width}): axe: {found}")
        text: str = page.inner_text("body")
        return text

    def visit(self, url: str, name: str) -> str:
        self.page.goto(url)
        return self.look(name)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stories")
    policy = tmp / "policy.yaml"
    write_recommending_policy(policy)
    database = f"sqlite:///{tmp / 'schoolgate.db'}"
    upgrade(database)
    ids = seed(database)
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
        running_admin(tmp, port=admin_port, data_dir=gw.data_dir, database=database, policy=policy),
    ):
        yield {"admin": admin, "gw": gw, "ids": ids, "home": tmp / "home"}


@pytest.fixture(scope="module")
def chromium(services: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    chromium_path, certutil, sync_api = need_browser()
    trust_ca(services["home"], services["gw"].ca_pem, certutil)
    with sync_api.sync_playwright() as p:
        yield p, chromium_path


def _browser(
    chromium: tuple[Any, str],
    services: dict[str, Any],
    proxy_user: str | None,
) -> Any:
    p, path = chromium
    proxy = None
    if proxy_user:
        proxy = {
            "server": f"http://127.0.0.1:{services['gw'].port}",
            "username": proxy_user,
            "password": f"{proxy_user}-demo",
            "bypass": "127.0.0.1",
        }
    return p.chromium.launch(
        executable_path=path,
        args=CHROMIUM_ARGS,
        proxy=proxy,
        env={**os.environ, "HOME": str(services["home"])},
    )


def _context(browser: Any, width: str) -> Any:
    phone = width == "phone"
    return browser.new_context(
        viewport=WIDTHS[width],
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        bypass_csp=True,
        locale="en-GB",
    )


@pytest.fixture(scope="module")
def shots(artefacts_dir: Path) -> Path:
    folder = artefacts_dir / "stories"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_pupils_story(
    services: dict[str, Any], chromium: tuple[Any, str], shots: Path, width: str
) -> None:
    admin, ids = services["admin"], services["ids"]
    browser = _browser(chromium, services, "pupil1")
    try:
        story = Story(_context(browser, width).new_page(), width, "pupil", shots)
        text = story.visit("https://www.tiktok.com/", "block-page-tiktok")
        assert "This website is blocked at school" in text
        assert "You can ask to use it." in text
        assert "monitors the use of its network" not in text
        story.page.goto(f"{admin}/signin")
        sign_in(story.page, admin, "pupil1")
        text = story.look("start")
        assert "Answers to your requests" in text
        assert "Yes: you can use www.reddit.com until" in text
        text = story.visit(f"{admin}/requests/mine", "my-requests")
        story.visit(f"{admin}/requests/{ids.pending}", "request-waiting")
        story.page.goto(f"{admin}/requests/new")
        story.page.fill("#host", "https://www.bbc.co.uk/bitesize/topics/volcanoes")
        story.page.fill("#why", "homework")
        story.page.click("form[action='/requests/new'] button[type=submit]")
        text = story.look("short-reason")
        assert "Please tell us a bit more about why (at least 10 characters)" in text
        assert "after validation" not in text
    finally:
        browser.close()
    assert story.problems == [], "\n".join(story.problems)


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_sanctioned_pupils_page(
    services: dict[str, Any], chromium: tuple[Any, str], shots: Path, width: str
) -> None:
    browser = _browser(chromium, services, "pupil2")
    try:
        story = Story(_context(browser, width).new_page(), width, "pupil2", shots)
        text = story.visit("https://learning.test/", "block-page-sanctioned")
        assert "You can use the computer only with a teacher until" in text
        until = (datetime.now(UTC) + timedelta(days=14)).astimezone()
        assert f"{until:%A} {until.day} {until:%B}" in text or "until" in text
        assert "cannot be unblocked" not in text
    finally:
        browser.close()
    assert story.problems == [], "\n".join(story.problems)


STAFF_PAGES = {
    "teacher1": [
        ("/", "start"),
        ("/requests/mine", "my-requests"),
        ("/requests/new", "ask"),
        ("/explain", "explain"),
    ],
    "bursar1": [
        ("/", "start"),
        ("/requests", "requests"),
        ("/requests/{pending}", "request"),
        ("/requests/{approved}", "request-approved"),
        ("/lists", "local-lists"),
        ("/exceptions", "exceptions"),
        ("/review", "review-form"),
    ],
    "dsl1": [
        ("/", "start"),
        ("/monitoring", "monitoring"),
        ("/monitoring/events", "events"),
        ("/monitoring/events?category=social+media", "events-social-media"),
        ("/monitoring/alerts", "alerts"),
        ("/monitoring/alerts/{alert}", "alert"),
        ("/monitoring/incidents", "incident-notes"),
        ("/monitoring/sanctions", "sanctions"),
        ("/monitoring/timeline?user=pupil1", "timeline"),
        ("/monitoring/charts", "charts"),
        ("/monitoring/weekly", "weekly"),
        ("/audit", "audit"),
        ("/review?date={today}", "evidence-pack"),
    ],
    "it1": [
        ("/", "start"),
        ("/policy", "policy"),
        ("/system", "system"),
        ("/audit", "audit"),
        ("/explain", "explain"),
    ],
}


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("who", list(STAFF_PAGES))
def test_each_staff_roles_pages(
    services: dict[str, Any], chromium: tuple[Any, str], shots: Path, who: str, width: str
) -> None:
    admin, ids = services["admin"], services["ids"]
    browser = _browser(chromium, services, None)
    try:
        story = Story(_context(browser, width).new_page(), width, who, shots)
        story.page.goto(f"{admin}/signin")
        story.look("signin")
        sign_in(story.page, admin, who)
        today = datetime.now(UTC).date().isoformat()
        texts = {}
        for path, name in STAFF_PAGES[who]:
            url = admin + path.format(
                pending=ids.pending, approved=ids.approved, alert=ids.alert, today=today
            )
            texts[name] = story.visit(url, name)
        story.visit(f"{admin}/no-such-page", "not-found")
    finally:
        browser.close()
    assert story.problems == [], "\n".join(story.problems)
    if who == "bursar1":
        assert "unblock request waiting for your decision" in texts["start"]
    if who == "dsl1":
        assert "open alerts to review" in texts["start"]
        assert "social media" in texts["events-social-media"]
        assert "favicon" not in texts["events"]
        assert "UTC" not in texts["alerts"]
        assert "passed" in texts["evidence-pack"]
