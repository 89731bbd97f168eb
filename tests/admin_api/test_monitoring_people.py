"""Monitoring by class and name (UX review finding 11, the last of it): people are shown by their
name in the directory with the login in small print ("Pupil One (Year 5) (pupil1)"), unknown
ones by login (a real LDAP directory too, and one that stops answering fails nothing); a
class/year filter offers the directory's groups, on the page and in the API;
and a directory that cannot be listed never fails the page."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.services import people
from schoolgate.admin_api.services.people import NAME_LOOKUP_SECONDS, known_groups
from schoolgate.store.directory import LdapDirectory
from schoolgate.store.models import AlertRow, AlertSeverity, AlertState, EventRow
from tests.admin_api.conftest import blocked_site, client_for, settings_for
from tests.admin_api.test_approval_words import UNKNOWN
from tests.admin_api.test_monitoring_words import _event
from tests.admin_api.test_request_not_blocked import ask
from tests.admin_api.test_requests import stored_request
from tests.admin_api.test_safe_grants import _approve
from tests.support.slapd import SlapdServer, slapd_server

__all__ = ["slapd_server"]

ROW = re.compile(r'<tr id="e-([0-9a-f-]{36})">')


@pytest.fixture
def class_visits(resources: Resources) -> tuple[str, dict[str, str]]:
    """Visits to one made-up site by pupil1 (Year5), pupil2 (Year6) and a login the
    directory does not know."""
    tag = uuid.uuid4().hex[:8]
    at = datetime.now(UTC) - timedelta(minutes=5)
    rows = []
    for n, login in enumerate(["pupil1", "pupil2", f"{tag}-visitor"]):
        row = _event(tag, n, at, host=f"{tag}.tiktok.com", path="/", category="social")
        row["user"] = login
        rows.append(row)
    with resources.sessions() as session:
        session.execute(insert(EventRow), rows)
        session.commit()
    return tag, {str(r["user"]): str(r["id"]) for r in rows}


def _page(app: FastAPI, **query: str) -> str:
    client, _ = client_for(app, "dsl")
    page = client.get("/monitoring/events", params=query)
    assert page.status_code == 200, page.text
    return page.text


def test_people_are_shown_by_their_name_with_the_login_in_small_print(
    app: FastAPI, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, _ = class_visits
    text = _page(app, host=f"{tag}.tiktok.com")
    assert 'Pupil One (Year 5) <span class="muted">(pupil1, pupil)</span>' in text
    assert 'Pupil Two (Year 6) <span class="muted">(pupil2, pupil)</span>' in text
    assert f'{tag}-visitor <span class="muted">(pupil)</span>' in text  # unknown: login only


@pytest.mark.parametrize(("group", "who"), [("Year5", "pupil1"), ("year6", "pupil2")])
def test_the_class_filter_shows_only_that_class(
    app: FastAPI, class_visits: tuple[str, dict[str, str]], group: str, who: str
) -> None:
    tag, ids = class_visits
    text = _page(app, host=f"{tag}.tiktok.com", group=group)
    assert set(ROW.findall(text)) == {ids[who]}


def test_the_class_filter_offers_the_directory_groups(app: FastAPI) -> None:
    text = _page(app, group="Year5")
    select = re.search(r'<select id="group" name="group">(.*?)</select>', text, re.S)
    assert select is not None
    offered = re.findall(r'<option value="([^"]*)"', select.group(1))
    assert {"", "Year5", "Year6", "Pupils"} <= set(offered)
    assert '<option value="Year5" selected>' in select.group(1)


def test_an_unknown_class_is_explained_not_read_as_everyone(
    app: FastAPI, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, _ = class_visits
    client, _ = client_for(app, "dsl")
    page = client.get("/monitoring/events", params={"host": f"{tag}.tiktok.com", "group": "Yr5"})
    assert page.status_code == 422
    assert "There is no class or group called Yr5" in page.text
    assert "Year5" in page.text
    assert not ROW.findall(page.text)


def test_the_api_filters_by_class_too(
    app: FastAPI, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, ids = class_visits
    client, _ = client_for(app, "dsl")
    found = client.get(
        "/api/monitoring/events", params={"host": f"{tag}.tiktok.com", "group": "Year5"}
    )
    assert found.status_code == 200, found.text
    assert [e["id"] for e in found.json()["events"]] == [ids["pupil1"]]
    wrong = client.get("/api/monitoring/events", params={"group": "Nobody"})
    assert wrong.status_code == 422
    assert "Nobody" in wrong.text


def test_the_csv_export_filters_by_class(
    app: FastAPI, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, ids = class_visits
    client, _ = client_for(app, "dsl")
    found = client.get(
        "/monitoring/events.csv", params={"host": f"{tag}.tiktok.com", "group": "Year6"}
    )
    assert found.status_code == 200
    assert ids["pupil2"] in found.text
    assert ids["pupil1"] not in found.text


def test_the_timeline_and_alerts_name_the_person(
    app: FastAPI, resources: Resources, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, _ = class_visits
    alert_id = str(uuid.uuid4())
    with resources.sessions() as session:
        session.add(
            AlertRow(
                id=alert_id,
                at=datetime.now(UTC),
                severity=AlertSeverity.HIGH,
                kind="repeated_attempts",
                user="pupil1",
                state=AlertState.OPEN,
                summary=f"{tag} pupil1 tried a VPN",
                details={},
            )
        )
        session.commit()
    client, _ = client_for(app, "dsl")
    timeline = client.get("/monitoring/timeline", params={"user": "pupil1"})
    assert timeline.status_code == 200
    assert '<h2>Pupil One (Year 5) <span class="muted">(pupil1)</span>:' in timeline.text
    alerts = client.get("/monitoring/alerts")
    assert alerts.status_code == 200
    assert 'Pupil One (Year 5) <span class="muted">(pupil1)</span>' in alerts.text


def test_without_a_directory_the_pages_show_logins(
    app: FastAPI,
    resources: Resources,
    class_visits: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No directory to ask: the page still shows, by login, and the class filter says why it
    # cannot work (as with LDAP, whose classes the admin does not list).
    tag, _ = class_visits
    monkeypatch.setattr(resources, "directory", None)
    text = _page(app, host=f"{tag}.tiktok.com")
    assert "Pupil One (Year 5)" not in text
    assert 'pupil1 <span class="muted">(pupil)</span>' in text
    client, _ = client_for(app, "dsl")
    page = client.get("/monitoring/events", params={"group": "Year5"})
    assert page.status_code == 422
    assert "cannot list who is in a class" in page.text


@pytest.mark.ldap
def test_a_real_ldap_directory_names_people_and_a_frozen_one_fails_nothing(
    slapd_server: SlapdServer, tmp_path: Path, resources: Resources
) -> None:
    identity = slapd_server.write_identity_config(tmp_path / "identity")
    settings = settings_for(
        resources.settings.effective_database_url, tmp_path, identity_file=identity
    )
    ldap_resources = make_resources(settings)
    try:
        tag = uuid.uuid4().hex[:8]
        row = _event(tag, 0, datetime.now(UTC), host=f"{tag}.tiktok.com", path="/", category=None)
        row["user"] = "pupil1"
        with ldap_resources.sessions() as session:
            session.execute(insert(EventRow), [row])
            session.commit()
        app = make_app(resources=ldap_resources)
        assert 'Pupil One <span class="muted">(pupil1, pupil)</span>' in _page(
            app, host=f"{tag}.tiktok.com"
        )
        slapd_server.pause()  # the directory stops answering: the page still shows, by login
        try:
            started = time.monotonic()
            text = _page(app, host=f"{tag}.tiktok.com")
            assert time.monotonic() - started < NAME_LOOKUP_SECONDS + 3
            assert 'pupil1 <span class="muted">(pupil)</span>' in text
        finally:
            slapd_server.resume()
    finally:
        ldap_resources.close()


@pytest.fixture
def ldap_resources(
    slapd_server: SlapdServer, tmp_path: Path, resources: Resources
) -> Iterator[Resources]:
    """The admin on the same database, with the real slapd as its directory."""
    identity = slapd_server.write_identity_config(tmp_path / "identity")
    settings = settings_for(
        resources.settings.effective_database_url, tmp_path, identity_file=identity
    )
    found = make_resources(settings)
    try:
        yield found
    finally:
        found.close()


def _listed(resources: Resources) -> list[str]:
    """The directory's groups, once the listing the first use starts in the background is in."""
    deadline = time.monotonic() + 15
    while not (groups := known_groups(resources)):
        assert time.monotonic() < deadline, "the directory's users were never listed"
        time.sleep(0.1)
    return groups


@pytest.mark.ldap
def test_with_ldap_classes_filter_events_and_the_approval_form_offers_the_groups(
    ldap_resources: Resources, class_visits: tuple[str, dict[str, str]]
) -> None:
    tag, ids = class_visits
    app = make_app(resources=ldap_resources)
    assert {"Pupils", "Year5", "Staff"} <= set(_listed(ldap_resources))
    text = _page(app, host=f"{tag}.tiktok.com", group="year5")
    assert set(ROW.findall(text)) == {ids["pupil1"]}  # pupil2 is in Pupils, not Year5
    assert '<option value="Year5" selected>' in text
    text = _page(app, host=f"{tag}.tiktok.com", group="Pupils")
    assert set(ROW.findall(text)) == {ids["pupil1"], ids["pupil2"]}
    client, _ = client_for(app, "dsl")
    wrong = client.get("/monitoring/events", params={"host": f"{tag}.tiktok.com", "group": "Yr5"})
    assert wrong.status_code == 422
    assert "There is no class or group called Yr5" in wrong.text

    request_id = stored_request(ldap_resources, blocked_site())
    bursar, _ = client_for(app, "business_manager")
    page = bursar.get(f"/requests/{request_id}").text
    assert '<datalist id="known-groups">' in page
    assert '<option value="Year5">' in page
    status, body = _approve(
        app, request_id, scope="group", who="Year9", target_kind="host", confirm_wide=True
    )
    assert status == 422
    assert UNKNOWN in str(body["message"])
    assert ask(app, "staff", blocked_site(), for_group="Year9").status_code == 422
    known = ask(app, "staff", blocked_site(), for_group="year5")
    assert known.status_code == 201, known.text


@pytest.mark.ldap
def test_with_ldap_stopped_the_pages_work_from_the_last_listing(
    slapd_server: SlapdServer,
    ldap_resources: Resources,
    class_visits: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    tag, ids = class_visits
    app = make_app(resources=ldap_resources)
    _listed(ldap_resources)
    directory = ldap_resources.directory
    assert isinstance(directory, LdapDirectory)
    slapd_server.stop()
    try:
        people._SNAPSHOTS[directory].next_refresh = 0.0  # a refresh is due: it will fail
        started = time.monotonic()
        text = _page(app, host=f"{tag}.tiktok.com", group="Year5")
        assert time.monotonic() - started < NAME_LOOKUP_SECONDS + 3
        assert set(ROW.findall(text)) == {ids["pupil1"]}
        deadline = time.monotonic() + 15
        while people._SNAPSHOTS[directory].refreshing:  # the failed refresh keeps the listing
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert set(ROW.findall(_page(app, host=f"{tag}.tiktok.com", group="Year5"))) == {
            ids["pupil1"]
        }
        request_id = stored_request(ldap_resources, blocked_site())
        bursar, _ = client_for(app, "business_manager")
        assert '<option value="Year5">' in bursar.get(f"/requests/{request_id}").text

        # Never listed (an admin started while the directory is down): names are typed.
        identity = slapd_server.write_identity_config(tmp_path / "identity-2")
        fresh = make_resources(
            settings_for(
                ldap_resources.settings.effective_database_url, tmp_path, identity_file=identity
            )
        )
        try:
            fresh_app = make_app(resources=fresh)
            client, _ = client_for(fresh_app, "dsl")
            page = client.get("/monitoring/events", params={"group": "Year5"})
            assert page.status_code == 422
            assert "cannot list who is in a class" in page.text
            bursar, _ = client_for(fresh_app, "business_manager")
            answer = bursar.get(f"/requests/{request_id}")
            assert answer.status_code == 200
            assert "known-groups" not in answer.text
        finally:
            fresh.close()
    finally:
        slapd_server.start()
