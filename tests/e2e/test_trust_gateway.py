"""One gateway, two schools (docs/trust.md): a real `schoolgate gateway` given a trust file, and
real HTTP(S) clients whose sockets are bound to 127.0.0.2 (Oak's subnet) and 127.0.0.3 (Elm's).
Each school gets its own break times; a client in no school's subnet is refused; a change to
one school's policy file is picked up without a restart; a school's local lists and its
Business Manager's grant to a class open nothing in the other school."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpcore
import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.deps import current_user, optional_user
from schoolgate.admin_api.resources import make_resources
from schoolgate.admin_api.roles import Role, SignedInUser
from schoolgate.policy.model import Scope, TargetKind, Verdict
from schoolgate.store.admin_models import RequestState, UnblockRequestRow
from schoolgate.store.db import make_engine
from schoolgate.store.models import EventRow, ExceptionRow, LocalListRow
from tests.admin_api.conftest import client_for, settings_for
from tests.support.gateway import (
    Gateway,
    noon_zone,
    policy_text,
    wait_for,
)
from tests.support.trusts import running_trust_gateway, write_trust

pytestmark = pytest.mark.e2e

OAK, ELM, NOWHERE = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def calendar(zone: str, start: datetime, end: datetime) -> str:
    """A school's own calendar (an override file) with its lunch from `start` to `end`."""
    tz = ZoneInfo(zone)
    return f"""\
calendar:
  timezone: "{zone}"
  school_days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
  school_day: {{start: "01:00", end: "23:00"}}
  periods:
    - {{name: lunch, kind: break, start: "{start.astimezone(tz):%H:%M:%S}",
       end: "{end.astimezone(tz):%H:%M:%S}"}}
  bank_holidays: none
"""


def write_atomically(path: Path, text: str) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    os.replace(temp, path)


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    tmp = tmp_path_factory.mktemp("trust")
    now = datetime.now(UTC)
    zone = noon_zone(now)
    earlier = (now - timedelta(hours=4), now - timedelta(hours=3, minutes=30))
    # The trust's base: lunch hours ago. Oak's own calendar: lunch now. Elm keeps the base.
    trust = write_trust(
        tmp,
        "name: Test Trust\n"
        "base: base.yaml\n"
        "locks: {categories: [x, instagram, social]}\n"
        "unmatched: refuse\n"
        "schools:\n"
        f"  oak: {{name: Oak Primary, subnets: [{OAK}/32], policy: oak.yaml}}\n"
        f"  elm: {{name: Elm Primary, subnets: [{ELM}/32], policy: elm.yaml}}\n",
        {
            "base.yaml": policy_text(break_from=earlier[0], break_until=earlier[1], zone=zone),
            "oak.yaml": calendar(zone, now - timedelta(minutes=5), now + timedelta(hours=1)),
            "elm.yaml": calendar(zone, *earlier),
        },
    )
    with running_trust_gateway(tmp, trust) as gw:
        yield gw, tmp


class FromAddress(httpcore.SyncBackend):
    """httpcore's own network backend, every connection made from one local address."""

    def __init__(self, address: str) -> None:
        self.address = address

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return super().connect_tcp(host, port, timeout, self.address, socket_options)


def client_from(
    gw: Gateway, address: str, user: str | None = "staff1", *, port: int | None = None
) -> httpx.Client:
    """A client through the gateway (its listener on `port`, default its first) whose
    connections come from `address`. httpx and httpcore do not pass `local_address` on to a
    proxy's connections, so the transport's pool is httpcore's proxy pool, made as httpx makes
    it, on a backend that binds every socket."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(gw.ca_pem))
    context.load_verify_locations(cafile=str(gw.test_ca.ca_pem))
    proxy = httpx.Proxy(httpx.URL(gw.proxy_url(user)).copy_with(port=port or gw.port))
    transport = httpx.HTTPTransport(verify=context)
    transport._pool = httpcore.HTTPProxy(
        proxy_url=httpcore.URL(
            scheme=proxy.url.raw_scheme,
            host=proxy.url.raw_host,
            port=proxy.url.port,
            target=proxy.url.raw_path,
        ),
        proxy_auth=proxy.raw_auth,
        ssl_context=context,
        network_backend=FromAddress(address),
    )
    return httpx.Client(transport=transport, timeout=20, trust_env=False)


def refusal_recorded(folder: Path, address: str, host: str) -> None:
    """Wait for the event of a refusal of `address` asking for `host` as in no school."""
    engine = make_engine(f"sqlite:///{folder / 'schoolgate.db'}")

    def recorded() -> list[tuple[str | None, str]]:
        with Session(engine) as session:
            rows = session.scalars(select(EventRow).where(EventRow.reason == "no_school"))
            return [(row.client_ip, row.host) for row in rows]

    try:
        wait_for(lambda: (address, host) in recorded(), what="the refusal's event")
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["http://www.facebook.com/", "https://www.facebook.com/"])
def test_each_school_gets_its_own_break_times(trust: tuple[Gateway, Path], url: str) -> None:
    gw, _ = trust
    with client_from(gw, OAK) as oak:
        assert oak.get(url).status_code == 200  # Oak's lunch is now: staff may use Facebook
    with client_from(gw, ELM) as elm:
        blocked = elm.get(url)  # HTTPS too: the block page inside the school's own TLS
    assert blocked.status_code == 403
    assert "staff-social-media-otherwise" in blocked.text  # Elm's lunch was hours ago


def test_the_trusts_rules_hold_in_every_school(trust: tuple[Gateway, Path]) -> None:
    gw, _ = trust
    for address in (OAK, ELM):
        with client_from(gw, address) as client:
            assert client.get("http://x.com/").status_code == 403
            assert client.get("http://learning.test/").status_code == 200


def test_a_client_in_no_schools_subnet_is_refused(trust: tuple[Gateway, Path]) -> None:
    gw, tmp = trust
    with client_from(gw, NOWHERE) as stranger:
        plain = stranger.get("http://learning.test/")
        with pytest.raises(httpx.ProxyError, match="403"):
            stranger.get("https://learning.test/")
    assert plain.status_code == 403
    assert "no_school" in plain.text
    refusal_recorded(tmp, NOWHERE, "learning.test")
    with client_from(gw, "127.0.0.1") as local:
        assert local.get("http://learning.test/").status_code == 403


def test_a_change_to_one_schools_policy_is_picked_up(trust: tuple[Gateway, Path]) -> None:
    gw, tmp = trust
    now = datetime.now(UTC)
    zone = noon_zone(now)
    write_atomically(
        tmp / "elm.yaml", calendar(zone, now - timedelta(minutes=5), now + timedelta(hours=1))
    )

    def elm_at_lunch() -> bool:
        with client_from(gw, ELM) as elm:
            return elm.get("http://www.facebook.com/").status_code == 200

    wait_for(elm_at_lunch, what="Elm's new lunch time to reach the gateway")
    assert "policy reloaded from" in gw.log_text()


def test_one_schools_exception_opens_nothing_in_another(trust: tuple[Gateway, Path]) -> None:
    # An exception granted in Oak (its school column) for every pupil: Oak's pupils reach the
    # site, Elm's are still blocked; the same grant by the trust (no school) opens it in both.
    gw, tmp = trust
    engine = make_engine(f"sqlite:///{tmp / 'schoolgate.db'}")
    now = datetime.now(UTC)

    def grant(ident: str, host: str, school: str | None) -> None:
        with Session(engine) as session, session.begin():
            session.add(
                ExceptionRow(
                    id=ident,
                    scope=Scope.ROLE,
                    who="pupil",
                    target_kind=TargetKind.HOST,
                    target=host,
                    starts=now - timedelta(minutes=1),
                    ends=now + timedelta(hours=1),
                    created_by="bursar1",
                    created_at=now,
                    school=school,
                )
            )

    def status(address: str, url: str) -> int:
        with client_from(gw, address, "pupil1") as client:
            return client.get(url).status_code

    try:
        assert status(OAK, "http://www.facebook.com/") == 403
        grant("oak-only", "www.facebook.com", "oak")
        wait_for(
            lambda: status(OAK, "http://www.facebook.com/") == 200,
            what="Oak's exception to reach the gateway",
        )
        for url in ("http://www.facebook.com/", "https://www.facebook.com/"):
            assert status(OAK, url) == 200
            assert status(ELM, url) == 403  # HTTPS: the block page inside the school's TLS
        grant("trust-wide", "www.facebook.com", None)
        wait_for(
            lambda: status(ELM, "http://www.facebook.com/") == 200,
            what="the trust's exception to reach the gateway",
        )
    finally:
        with Session(engine) as session, session.begin():
            session.execute(delete(ExceptionRow))
        engine.dispose()


def _status(gw: Gateway, address: str, url: str, user: str = "pupil1") -> int:
    with client_from(gw, address, user) as client:
        return client.get(url).status_code


def _nothing_left_open(gw: Gateway) -> None:
    """Wait until an earlier test's grants and lists, deleted, have left the gateway too."""
    wait_for(
        lambda: all(_status(gw, a, "http://www.facebook.com/") == 403 for a in (OAK, ELM)),
        what="the earlier tests' grants to leave the gateway",
    )


def test_each_schools_local_lists_apply_to_its_own_clients(trust: tuple[Gateway, Path]) -> None:
    """Oak's local allow of a site its pupils are blocked from opens it in Oak only; a local
    allow never opens what the trust locks (social); between the trust's list and a school's,
    a block wins either way round."""
    gw, tmp = trust
    engine = make_engine(f"sqlite:///{tmp / 'schoolgate.db'}")
    now = datetime.now(UTC)
    entries = [
        ("www.facebook.com", Verdict.ALLOW, "oak"),  # pupils: the trust's rule blocks it
        ("www.tiktok.com", Verdict.ALLOW, "oak"),  # 'social' is locked by the trust
        ("bbc.co.uk", Verdict.BLOCK, None),  # the trust blocks, Oak allows a part of it
        ("www.bbc.co.uk", Verdict.ALLOW, "oak"),
        ("google.com", Verdict.BLOCK, "elm"),  # Elm blocks, the trust allows it
        ("google.com", Verdict.ALLOW, None),
    ]
    facebook, tiktok = "http://www.facebook.com/", "http://www.tiktok.com/"
    try:
        _nothing_left_open(gw)
        with Session(engine) as session, session.begin():
            for host, verdict, school in entries:
                session.add(
                    LocalListRow(
                        host=host, verdict=verdict, added_by="bm1", added_at=now, school=school
                    )
                )
        wait_for(lambda: _status(gw, OAK, facebook) == 200, what="Oak's list to reach the gateway")
        for url in (facebook, "https://www.facebook.com/"):
            assert _status(gw, OAK, url) == 200
            assert _status(gw, ELM, url) == 403
        assert _status(gw, OAK, tiktok) == 403
        for address in (OAK, ELM):
            assert _status(gw, address, "http://www.bbc.co.uk/") == 403
        assert _status(gw, ELM, "http://google.com/") == 403
        assert _status(gw, OAK, "http://google.com/") == 200
    finally:
        with Session(engine) as session, session.begin():
            session.execute(delete(LocalListRow))
        engine.dispose()


def test_a_schools_grant_to_a_class_opens_nothing_in_another(
    trust: tuple[Gateway, Path],
) -> None:
    """Oak's Business Manager approves a request for the class Pupils, through the admin given
    the same trust file and database: Oak's pupils reach the site, Elm's do not."""
    gw, tmp = trust
    url = f"sqlite:///{tmp / 'schoolgate.db'}"
    resources = make_resources(
        settings_for(
            url,
            tmp / "admin",
            trust_file=tmp / "trust.yaml",
            identity_file=tmp / "id" / "identity.yaml",
            policy_file=tmp / "base.yaml",
        )
    )
    app = make_app(resources=resources)
    bursar = SignedInUser(
        "oak-bm1",
        "Oak Bursar",
        frozenset({Role.STAFF, Role.BUSINESS_MANAGER}),
        "staff",
        school="oak",
    )
    now = datetime.now(UTC)
    request_id = "5c6a0000-0000-4000-8000-00000000000a"
    site = "http://www.facebook.com/"
    try:
        _nothing_left_open(gw)
        with resources.sessions() as session:
            session.add(
                UnblockRequestRow(
                    id=request_id,
                    created_at=now,
                    requester="pupil1",
                    requester_name="A Pupil",
                    requester_role="pupil",
                    blocked_user="pupil1",
                    blocked_role="pupil",
                    blocked_at=now,
                    block_reason="rule_block",
                    from_block_page=True,
                    host="www.facebook.com",
                    category=None,
                    why="Our class project on how schools use social media.",
                    state=RequestState.PENDING,
                    school="oak",
                )
            )
            session.commit()
        app.dependency_overrides[current_user] = lambda: bursar
        app.dependency_overrides[optional_user] = lambda: bursar
        client, csrf = client_for(app, "anonymous")
        grant = {"scope": "group", "who": "Pupils", "target_kind": "host", "confirm_wide": True}
        approved = client.post(
            f"/api/requests/{request_id}/approve",
            json=grant | {"duration": "hours", "hours": 1},
            headers={"X-CSRF-Token": csrf},
        )
        assert approved.status_code == 200, approved.text[:300]
        wait_for(lambda: _status(gw, OAK, site) == 200, what="Oak's grant to reach the gateway")
        assert _status(gw, ELM, site) == 403
        assert _status(gw, ELM, "https://www.facebook.com/") == 403
        assert "www.facebook.com" in client.get("/exceptions").text  # Oak's page shows it
    finally:
        app.dependency_overrides.clear()
        with resources.sessions() as session:
            session.execute(delete(ExceptionRow))
            session.execute(delete(UnblockRequestRow))
            session.commit()
        resources.close()


def test_a_schools_change_saved_in_the_admin_reaches_the_gateway(
    trust: tuple[Gateway, Path],
) -> None:
    """Oak's IT technician saves Oak's own policy in the admin (the trust's file, checked with
    the whole trust, written in one step): the running gateway re-reads the trust and Oak's
    staff lose Facebook at lunch; Elm's clients are decided as before."""
    gw, tmp = trust

    def status(address: str) -> int:
        with client_from(gw, address) as client:
            return client.get("http://www.facebook.com/").status_code

    original = (tmp / "oak.yaml").read_text()
    wait_for(lambda: status(OAK) == 200, what="Oak's staff to have Facebook at lunch")
    elm_before = status(ELM)
    resources = make_resources(
        settings_for(
            f"sqlite:///{tmp / 'schoolgate.db'}",
            tmp / "admin-data",
            trust_file=tmp / "trust.yaml",
            policy_file=tmp / "base.yaml",
        )
    )
    app = make_app(resources=resources)
    oak_it = SignedInUser(
        "oak-it1", "oak-it1", frozenset({Role.STAFF, Role.IT_TECHNICIAN}), "staff", school="oak"
    )
    app.dependency_overrides[current_user] = lambda: oak_it
    app.dependency_overrides[optional_user] = lambda: oak_it
    try:
        client, csrf = client_for(app, "anonymous")
        text = (tmp / "oak.yaml").read_text() + (
            "rules:\n  - {name: oak-no-facebook, roles: all, categories: [facebook], "
            "action: block}\n"
        )
        saved = client.post(
            "/policy/edit",
            data={"csrf_token": csrf, "text": text, "reason": "no Facebook", "action": "save"},
        )
        assert saved.status_code == 303, saved.text[:500]
    finally:
        app.dependency_overrides.clear()
        resources.close()
    try:
        assert (tmp / "oak.yaml").read_text() == text
        wait_for(
            lambda: status(OAK) == 403, what="Oak's change saved in the admin to reach the gateway"
        )
        assert status(ELM) == elm_before
    finally:  # the later tests find Oak's policy as it was
        write_atomically(tmp / "oak.yaml", original)
