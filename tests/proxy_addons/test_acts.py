"""An attempt is an act, not a request: the requests one person makes to the same site with the
same technique within `schoolgate_act_seconds` are one counted attempt (the others are recorded,
not counted, and name the act's first event); the threshold counts acts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mitmproxy.test import taddons
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.policy.model import Reason, Verdict
from schoolgate.proxy_addons.recording import ActWindow, act_site
from schoolgate.store.events import AttemptEvidence, Event
from schoolgate.store.models import AlertRow, CircumventionAttemptRow, SanctionRow
from tests.proxy_addons.test_record import Rig, rig  # noqa: F401  (the fixture)


def attempt(
    host: str,
    at: datetime,
    *,
    user: str | None = "pupil1",
    ip: str = "10.0.0.5",
    technique: str = "vpn",
) -> Event:
    return Event(
        at=at,
        host=host,
        verdict=Verdict.BLOCK,
        reason=Reason.CIRCUMVENTION,
        user=user,
        client_ip=ip,
        technique=technique,
        attempt=AttemptEvidence({}, counted=True),
    )


def test_act_window_groups_by_person_site_and_technique() -> None:
    acts = ActWindow(30)
    t0 = datetime(2026, 12, 3, 10, tzinfo=UTC)
    first = attempt("www.vpn.example", t0)
    assert acts.first_of(first) is None  # a new act
    assert acts.first_of(attempt("cdn.vpn.example", t0 + timedelta(seconds=2))) == first.id
    assert acts.first_of(attempt("www.vpn.example", t0 + timedelta(seconds=29))) == first.id
    assert acts.first_of(attempt("www.vpn.example", t0, user="pupil2")) is None  # someone else
    assert acts.first_of(attempt("other.example", t0)) is None  # another site
    assert acts.first_of(attempt("www.vpn.example", t0, technique="ech")) is None
    assert acts.first_of(attempt("www.vpn.example", t0 + timedelta(seconds=30))) is None
    # without a user, the device (its address) is the one acting
    assert acts.first_of(attempt("vpn.example", t0, user=None, ip="10.0.0.9")) is None
    assert acts.first_of(attempt("vpn.example", t0, user=None, ip="10.0.0.9")) is not None


def test_act_window_stays_bounded() -> None:
    acts = ActWindow(30, max_keys=10)
    t0 = datetime(2026, 12, 3, 10, tzinfo=UTC)
    for i in range(100):
        acts.first_of(attempt(f"site{i}.example", t0))
    assert len(acts._acts) <= 10


def test_act_site_is_the_registrable_domain() -> None:
    assert act_site("www.bbc.co.uk") == "bbc.co.uk"
    assert act_site("a.b.proxysite.test") == act_site("proxysite.test")
    assert act_site("203.0.113.7") == "203.0.113.7"


async def test_a_page_and_its_follow_ups_are_one_attempt(rig: Rig) -> None:  # noqa: F811
    page = rig.request(
        "web.archive.org",
        "/web/2024/https://www.instagram.com/",
        headers={"sec-fetch-dest": "document", "sec-fetch-site": "none"},
    )
    assert page.response is not None
    assert page.response.status_code == 403
    rig.request("web.archive.org", "/favicon.ico", headers={"sec-fetch-dest": "image"})
    rig.request("web.archive.org", "/web/2024/https://www.instagram.com/")  # a reload
    await rig.record.done()
    with Session(rig.engine) as session:
        rows = list(
            session.scalars(select(CircumventionAttemptRow).order_by(CircumventionAttemptRow.at))
        )
        alerts = list(session.scalars(select(AlertRow)))
    archive = [r for r in rows if r.host == "web.archive.org"]
    assert len(archive) >= 2  # every request is still recorded ...
    assert [r.counted for r in archive].count(True) == 1  # ... but one act is counted
    first = next(r for r in archive if r.counted)
    assert all(r.evidence["same_act_as"] == first.event_id for r in archive if not r.counted)
    assert len(alerts) == 1


async def test_acts_not_requests_reach_the_threshold(rig: Rig) -> None:  # noqa: F811
    for _ in range(5):  # five requests, one act: no sanction
        rig.request("web.archive.org", "/web/2024/https://x.com/")
    await rig.record.done()
    with Session(rig.engine) as session:
        assert list(session.scalars(select(SanctionRow))) == []


async def test_with_no_act_window_every_request_counts(rig: Rig) -> None:  # noqa: F811
    with taddons.context(rig.record) as tctx:
        tctx.configure(rig.record, schoolgate_act_seconds=0)
    for _ in range(2):
        rig.request("web.archive.org", "/web/2024/https://x.com/")
    await rig.record.done()
    with Session(rig.engine) as session:
        rows = list(session.scalars(select(CircumventionAttemptRow)))
    assert [r.counted for r in rows] == [True, True]
