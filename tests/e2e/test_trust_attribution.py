"""One gateway, two schools, one client address (docs/trust.md, "How a request is attributed to
a school"): a real `schoolgate gateway` listening on three ports. Oak's clients connect to the
first, Elm's to the second (the trust file's `listeners:`); on the third, which names no
school, the person signed in decides by their directory group. The same client address gets
Oak's or Elm's break times accordingly, and every event is recorded with that school. Then a
real LDAP directory: a person under a school's OU gets that school's break times."""

from __future__ import annotations

import html
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.admin_api.settings import ACCESS_TOKEN_SECRET_FILE
from schoolgate.store.db import make_engine
from schoolgate.store.models import EventRow
from schoolgate.store.tokens import load_or_create_secret, read_access_token
from tests.e2e.test_gateway_ldap_e2e import fetch
from tests.e2e.test_trust_gateway import calendar, client_from
from tests.support.gateway import Gateway, free_port, noon_zone, policy_text, wait_for
from tests.support.needs import need_program
from tests.support.slapd import PEOPLE_DN, start_slapd
from tests.support.trusts import TRUST_HEAD, running_trust_gateway, write_trust

pytestmark = pytest.mark.e2e

CLIENT = "127.0.0.5"  # in no school's subnets: only the listener or the person can decide
PEOPLE = {
    "staff1": ["Staff"],  # in no school's group
    "oakstaff": ["Staff", "OakStaff"],
    "elmstaff": ["Staff", "ElmStaff"],
    "bothstaff": ["Staff", "OakStaff", "ElmStaff"],  # the directory needs putting right
}
FACEBOOK = ("http://www.facebook.com/", "https://www.facebook.com/")


def lunch_files() -> dict[str, str]:
    """The trust's base (lunch hours ago), Oak's calendar (lunch now) and Elm's (the base's)."""
    now = datetime.now(UTC)
    zone = noon_zone(now)
    earlier = (now - timedelta(hours=4), now - timedelta(hours=3, minutes=30))
    return {
        "base.yaml": policy_text(break_from=earlier[0], break_until=earlier[1], zone=zone),
        "oak.yaml": calendar(zone, now - timedelta(minutes=5), now + timedelta(hours=1)),
        "elm.yaml": calendar(zone, *earlier),
    }


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path, int, int]]:
    """The gateway, its folder, and the ports of Oak's and Elm's listeners (the gateway's own
    port, `gw.port`, names no school)."""
    tmp = tmp_path_factory.mktemp("attribution")
    oak_port, elm_port = free_port(), free_port()
    trust = write_trust(
        tmp,
        TRUST_HEAD + "  oak: {name: Oak Primary, policy: oak.yaml, directory: {group: OakStaff},\n"
        f"        listeners: ['127.0.0.1:{oak_port}']}}\n"
        "  elm: {name: Elm Primary, policy: elm.yaml, directory: {group: ElmStaff},\n"
        f"        listeners: ['127.0.0.1:{elm_port}']}}\n",
        lunch_files(),
    )
    modes = ("--mode", f"regular@{oak_port}", "--mode", f"regular@{elm_port}")
    with running_trust_gateway(tmp, trust, *modes, people=PEOPLE) as gw:
        for port in (oak_port, elm_port):
            wait_for(lambda port=port: listening(port), what=f"the gateway's listener {port}")
        yield gw, tmp, oak_port, elm_port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def status(gw: Gateway, url: str, *, user: str, port: int | None = None) -> httpx.Response:
    with client_from(gw, CLIENT, user, port=port) as client:
        return client.get(url)


@pytest.mark.parametrize("url", FACEBOOK)
def test_the_listener_gives_the_same_client_each_schools_break_times(
    trust: tuple[Gateway, Path, int, int], url: str
) -> None:
    gw, _, oak_port, elm_port = trust
    assert status(gw, url, user="staff1", port=oak_port).status_code == 200  # Oak's lunch: now
    blocked = status(gw, url, user="staff1", port=elm_port)
    assert blocked.status_code == 403  # HTTPS too: the block page inside the school's own TLS
    assert "staff-social-media-otherwise" in blocked.text  # Elm's lunch was hours ago
    # the listener decides, whoever signs in: Oak's staff through Elm's listener get Elm's
    assert status(gw, url, user="oakstaff", port=elm_port).status_code == 403


@pytest.mark.parametrize("url", FACEBOOK)
def test_on_a_shared_listener_the_persons_directory_group_decides(
    trust: tuple[Gateway, Path, int, int], url: str
) -> None:
    gw, _, _, _ = trust
    assert status(gw, url, user="oakstaff").status_code == 200
    blocked = status(gw, url, user="elmstaff")
    assert blocked.status_code == 403
    assert "staff-social-media-otherwise" in blocked.text


@pytest.mark.parametrize("user", ["bothstaff", "staff1"])
def test_a_person_in_two_schools_or_none_is_refused(
    trust: tuple[Gateway, Path, int, int], user: str
) -> None:
    gw, _, _, _ = trust
    refused = status(gw, "http://learning.test/", user=user)
    assert refused.status_code == 403
    assert "no_school" in refused.text  # never one of the two schools by chance
    with pytest.raises(httpx.ProxyError, match="403"):
        status(gw, "https://learning.test/", user=user)


def test_each_event_is_recorded_with_the_school_that_decided_it(
    trust: tuple[Gateway, Path, int, int],
) -> None:
    gw, tmp, oak_port, elm_port = trust
    marks = {"oak": "oak.learning.test", "elm": "elm.learning.test"}
    status(gw, f"https://{marks['oak']}/", user="staff1", port=oak_port)
    status(gw, f"http://{marks['elm']}/", user="staff1", port=elm_port)
    status(gw, "https://by-group.learning.test/", user="oakstaff")
    status(gw, "http://by-group.learning.test/", user="elmstaff")
    status(gw, "http://by-group.learning.test/", user="bothstaff")
    engine = make_engine(f"sqlite:///{tmp / 'schoolgate.db'}")
    expected = {
        ("staff1", "oak.learning.test", "oak"),
        ("staff1", "elm.learning.test", "elm"),
        ("oakstaff", "by-group.learning.test", "oak"),
        ("elmstaff", "by-group.learning.test", "elm"),
        ("bothstaff", "by-group.learning.test", None),
    }

    def recorded() -> set[tuple[str | None, str, str | None]]:
        with Session(engine) as session:
            rows = session.scalars(select(EventRow).where(EventRow.client_ip == CLIENT))
            return {(row.user, row.host, row.school) for row in rows}

    try:
        wait_for(lambda: expected <= recorded(), what="the events with their schools")
        # and with no other school: each request (CONNECT, ClientHello, request) has one
        mine = {(user, host) for user, host, _ in expected}
        assert {row for row in recorded() if row[:2] in mine} == expected
    finally:
        engine.dispose()


# --- by OU, signing in against a real LDAP directory -------------------------------------------


@pytest.fixture(scope="module")
def ldap_trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Oak's people are those under the directory's people OU; Elm's, the SocialMedia group
    (whose members are under that OU too: in both schools)."""
    need_program("slapd", "slapd")
    tmp = tmp_path_factory.mktemp("attribution-ldap")
    ldap = start_slapd(tmp)
    try:
        trust = write_trust(
            tmp,
            TRUST_HEAD
            + f"  oak: {{name: Oak Primary, policy: oak.yaml, directory: {{ou: '{PEOPLE_DN}'}}}}\n"
            "  elm: {name: Elm Primary, policy: elm.yaml, directory: {group: SocialMedia}}\n",
            lunch_files(),
        )
        identity = ldap.write_identity_config(tmp / "identity")
        with running_trust_gateway(tmp, trust, identity=identity) as gw:
            yield gw
    finally:
        ldap.stop()


def test_a_person_under_a_schools_ou_gets_its_break_times(ldap_trust: Gateway) -> None:
    for url in FACEBOOK:  # teacher1 (Staff) is under the people OU: Oak's lunch is now
        response = fetch(ldap_trust, "teacher1", "teacher1-pass", url)
        assert response.status_code == 200, response.text[:300]
    refused = fetch(ldap_trust, "socialmedia1", "socialmedia1-pass", "http://learning.test/")
    assert refused.status_code == 403  # under Oak's OU and in Elm's group: neither school
    assert "no_school" in refused.text


def test_the_block_pages_ask_link_carries_the_school_that_decided(
    trust: tuple[Gateway, Path, int, int],
) -> None:
    """Someone in no school's group, blocked through Elm's listener: the "Ask for access" link
    names Elm (the admin files the request there; its groups would name no school)."""
    gw, _, _, elm_port = trust
    blocked = status(gw, "http://www.facebook.com/", user="staff1", port=elm_port)
    assert blocked.status_code == 403
    token = unquote(blocked.text.split("/requests/new?token=", 1)[1].split('"', 1)[0])
    secret = load_or_create_secret(gw.data_dir / ACCESS_TOKEN_SECRET_FILE)
    claims = read_access_token(secret, html.unescape(token), max_age_seconds=600)
    assert (claims.host, claims.user, claims.school) == ("www.facebook.com", "staff1", "elm")
