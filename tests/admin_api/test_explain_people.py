"""Explain for a named person (issue 13; UX finding 10; security review finding 9): the
person's real role comes from the directory even when a role is chosen, an unknown name is
said to be unknown, the answer says what it includes, and staff other than the DSL and IT do
not learn about other people's sanctions or exceptions. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from schoolgate.admin_api.resources import Resources
from schoolgate.policy.model import Scope, TargetKind
from schoolgate.store.models import ExceptionRow, SanctionRow, SanctionState
from tests.admin_api.conftest import client_for

BREAK = "2026-12-07T10:35"  # Monday, morning break: staff may use Facebook


def test_a_named_person_is_explained_with_their_directory_role_whatever_role_was_chosen(
    app: FastAPI,
) -> None:
    client, _ = client_for(app, "it_technician")
    answer = client.get(
        "/api/explain",
        params={"who": "teacher1", "role": "pupil", "host": "www.facebook.com", "at": BREAK},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["role"], body["verdict"], body["known_user"]) == ("staff", "allow", True)
    assert "teacher1 has the role staff in the directory" in body["explanation"]
    page = client.get(
        "/explain", params={"who": "teacher1", "host": "www.facebook.com", "at": BREAK}
    ).text
    assert "Allowed" in page
    assert "From the directory (for a named person)" in page


def test_an_unknown_name_is_said_to_be_unknown(app: FastAPI) -> None:
    client, _ = client_for(app, "staff")
    body = client.get(
        "/api/explain",
        params={"who": "pupil9", "role": "staff", "host": "www.facebook.com", "at": BREAK},
    ).json()
    assert body["known_user"] is False
    assert body["role"] == "pupil"
    assert "Nobody called pupil9 is in the directory" in body["explanation"]


def test_a_pasted_address_is_explained_as_its_site(app: FastAPI) -> None:
    client, _ = client_for(app, "staff")
    body = client.get(
        "/api/explain", params={"role": "pupil", "host": "https://www.tiktok.com/@someone"}
    ).json()
    assert (body["host"], body["verdict"]) == ("www.tiktok.com", "block")


def _sanction_and_exception(resources: Resources) -> tuple[str, str]:
    """A sanction on someone (a name of its own, so no other test meets it) and an exception
    for pupil1 at a host of its own."""
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    host, sanctioned = f"www.club-{tag}.example", f"pupil-{tag}"
    with resources.sessions() as session:
        session.add(
            SanctionRow(
                id=str(uuid.uuid4()),
                user=sanctioned,
                starts=now,
                ends=now + timedelta(days=14),
                reason="repeated VPN attempts",
                placed_by="dsl1",
                state=SanctionState.PLACED,
            )
        )
        session.add(
            ExceptionRow(
                id=str(uuid.uuid4()),
                scope=Scope.USER,
                who="pupil1",
                target_kind=TargetKind.HOST,
                target=host,
                starts=now,
                ends=now + timedelta(hours=1),
                created_by="bursar1",
                created_at=now,
                note="",
            )
        )
        session.commit()
    return host, sanctioned


@pytest.mark.parametrize(
    ("role", "sees_sanction", "sees_exception"),
    [
        ("staff", False, False),
        ("business_manager", False, True),
        ("dsl", True, True),
        ("it_technician", True, True),
    ],
)
def test_staff_explain_leaves_out_other_peoples_sanctions_and_exceptions(
    app: FastAPI, resources: Resources, role: str, sees_sanction: bool, sees_exception: bool
) -> None:
    host, name = _sanction_and_exception(resources)
    client, _ = client_for(app, role)
    sanctioned = client.get("/api/explain", params={"who": name, "host": "www.example.org"}).json()
    assert (sanctioned["reason"] == "supervised_only") is sees_sanction, sanctioned
    if not sees_sanction:
        assert "supervised" not in sanctioned["explanation"]
        assert "not sanctions" in sanctioned["includes"]
    opened = client.get("/api/explain", params={"who": "pupil1", "host": host}).json()
    assert (opened["reason"] == "exception") is sees_exception, opened


def test_a_name_typed_in_another_case_or_width_is_the_same_person(
    app: FastAPI, resources: Resources
) -> None:
    # Security finding 10: Explain must see the sanction the gateway applies to 'pupil-x'
    # when the DSL types 'Pupil-X' or its full-width spelling.
    _, name = _sanction_and_exception(resources)
    client, _ = client_for(app, "dsl")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name.upper())
    for typed in (name.upper(), f"  {name.title()} ", fullwidth):
        body = client.get("/api/explain", params={"who": typed, "host": "www.example.org"}).json()
        assert body["reason"] == "supervised_only", (typed, body)


def test_the_explain_page_speaks_in_words_without_ids(app: FastAPI, resources: Resources) -> None:
    # UX findings 5 and 3: "No rule covers no category for role staff", and a sanction's id
    # in the sentence the DSL reads.
    _, name = _sanction_and_exception(resources)
    client, _ = client_for(app, "dsl")
    plain = client.get("/api/explain", params={"role": "staff", "host": "www.example.org"}).json()
    assert "covers no category" not in plain["explanation"]
    assert "www.example.org is in no category of the policy" in plain["explanation"]
    page = client.get("/explain", params={"who": name, "host": "www.example.org"}).text
    assert "supervised-only" in page
    assert re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}", page) is None, "an id on the page"
