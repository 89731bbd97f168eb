"""Each school's own policy and calendar in the admin (docs/trust.md), on SQLite and
PostgreSQL: a trust of Oak and Elm (each with its own policy file) and Ash (none). A school's
IT technician sees the school's compiled policy and changes the school's own file, checked with
the whole trust (a loosened lock is refused in the trust's words and nothing is written), kept
as versions of that school; another school's staff never reach them (404); the trust's IT
narrows the pages to one school with `?school=`."""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from schoolgate.admin_api.app import make_app
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.roles import SignedInUser
from schoolgate.commands.admin import TrustWatcher
from schoolgate.policy.model import Reason, Verdict
from schoolgate.policy.term_dates import with_calendar_of
from schoolgate.store import policy_versions as versions
from schoolgate.store.db import upgrade
from schoolgate.store.models import EventRow, PolicyVersionRow
from schoolgate.store.policy_files import seed_policy_path
from schoolgate.store.trust_edits import add_school
from schoolgate.store.trust_files import load_trust
from tests.admin_api.conftest import client_for, settings_for
from tests.admin_api.test_calendar_pages import YEAR, _form
from tests.admin_api.test_school_isolation import TRUST_STAFF, school_users
from tests.support.postgres import postgres_session_url, shared_postgres_url

__all__ = ["postgres_session_url"]

OAK_TEXT = "# Oak Primary's own policy: the trust's, as it is, for now\n"
# Elm's morning break is earlier than the trust's (10:30 to 10:45).
ELM_TEXT = with_calendar_of("# Elm Primary\n", seed_policy_path().read_text()).replace(
    '"10:30", end: "10:45"', '"10:15", end: "10:30"'
)
LOOSENING = (
    "rules:\n  - name: tiktok-club\n    roles: [pupil]\n    categories: [social]\n"
    "    action: allow\n"
)
LOCK_WORDS = (
    "Rule 1 'tiktok-club' (rules[0]): the trust locks 'social': a school may not allow it "
    "(a school may block more; ask the trust to change its policy)"
)


@dataclass
class TrustAdmin:
    app: FastAPI
    resources: Resources
    folder: Path

    def text(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")

    def versions(self, kind: str) -> list[PolicyVersionRow]:
        with self.resources.sessions() as session:
            return list(versions.history(session, kind))


@pytest.fixture(params=["sqlite", "postgresql"])
def trust(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrustAdmin]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'schoolgate.db'}"
    else:
        url = shared_postgres_url(request.getfixturevalue("postgres_session_url"))
    upgrade(url)
    (tmp_path / "base.yaml").write_text(seed_policy_path().read_text())
    for name, text in (("oak/policy.yaml", OAK_TEXT), ("elm/policy.yaml", ELM_TEXT)):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_text(text)
    (tmp_path / "trust.yaml").write_text(
        "name: Test Trust\nbase: base.yaml\nlocks: {categories: [social]}\nschools:\n"
        "  oak: {name: Oak Primary, subnets: [10.1.0.0/16], policy: oak/policy.yaml}\n"
        "  elm: {name: Elm Primary, subnets: [10.2.0.0/16], policy: elm/policy.yaml}\n"
        "  ash: {name: Ash Infants, subnets: [10.3.0.0/16]}\n"
    )
    resources = make_resources(
        settings_for(
            url,
            tmp_path / "data",
            trust_file=tmp_path / "trust.yaml",
            policy_file=tmp_path / "base.yaml",
        )
    )
    app = make_app(resources=resources)
    yield TrustAdmin(app, resources, tmp_path)
    app.dependency_overrides.clear()
    resources.close()


def _as(trust: TrustAdmin, user: SignedInUser) -> tuple[TestClient, str]:
    from schoolgate.admin_api.deps import current_user, optional_user

    trust.app.dependency_overrides[current_user] = lambda: user
    trust.app.dependency_overrides[optional_user] = lambda: user
    return client_for(trust.app, "anonymous")


def _it(school: str) -> SignedInUser:
    return school_users(school)["it_technician"]


def _save_policy(client: TestClient, csrf: str, text: str, query: str = "") -> httpx.Response:
    return client.post(
        f"/policy/edit{query}",
        data={"csrf_token": csrf, "text": text, "reason": "our own rules", "action": "save"},
    )


def test_a_schools_it_changes_its_calendar_in_its_own_file_only(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    assert "Autumn term" not in client.get("/calendar").text
    answer = client.post("/calendar/edit", data=_form(csrf, YEAR, reason="LA dates", action="save"))
    assert answer.status_code == 303, answer.text[:500]
    assert answer.headers["location"].endswith("&school=oak")
    oak = trust.text("oak/policy.yaml")
    assert oak.startswith(OAK_TEXT)  # the school's own lines are kept
    assert "Autumn term" in oak
    assert "morning break" in oak
    assert trust.text("elm/policy.yaml") == ELM_TEXT
    assert trust.text("base.yaml") == seed_policy_path().read_text()
    newest = trust.versions(versions.school_kind("oak"))[0]
    assert (newest.author, newest.reason) == ("oak-it1", "school calendar: LA dates")
    assert newest.text == oak
    assert trust.versions(versions.school_kind("elm")) == []
    # The gateway compiles the trust with it: Oak has the term, Elm does not.
    compiled = load_trust(trust.folder / "trust.yaml").policies
    assert any(t.name == "Autumn term" for t in compiled["oak"].calendar.terms)
    assert not compiled["elm"].calendar.terms
    assert "Autumn term" in client.get("/calendar?year=2026").text
    elm, _ = _as(trust, _it("elm"))
    assert "Autumn term" not in elm.get("/calendar?year=2026").text


def test_a_loosened_lock_is_refused_in_the_trusts_words_and_nothing_written(
    trust: TrustAdmin,
) -> None:
    client, csrf = _as(trust, _it("oak"))
    for action in ("save", "preview"):
        answer = client.post(
            "/policy/edit",
            data={"csrf_token": csrf, "text": LOOSENING, "reason": "club", "action": action},
        )
        assert answer.status_code == 422, answer.text[:500]
        assert LOCK_WORDS in html.unescape(answer.text)
    assert trust.text("oak/policy.yaml") == OAK_TEXT
    assert [v.text for v in trust.versions(versions.school_kind("oak"))] == [OAK_TEXT]


def test_a_school_may_block_more_and_sees_its_compiled_policy(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    tighter = LOOSENING.replace("allow", "block").replace("tiktok-club", "no-social")
    assert _save_policy(client, csrf, tighter).status_code == 303
    assert trust.text("oak/policy.yaml") == tighter
    page = client.get("/policy").text
    assert "Oak Primary: the policy" in page
    assert html.escape(tighter, quote=False) in page  # its own file, to edit
    oak = load_trust(trust.folder / "trust.yaml").policies["oak"]
    assert oak.rules[0].name == "no-social"  # the school's rule first, then the trust's


def test_each_school_sees_its_own_break_times(trust: TrustAdmin) -> None:
    elm, _ = _as(trust, _it("elm"))
    assert "10:15" in str(elm.get("/api/policy/table").json()["header"])
    oak, _ = _as(trust, _it("oak"))
    header = str(oak.get("/api/policy/table").json()["header"])
    assert "10:30" in header
    assert "10:15" not in header


def test_another_schools_versions_are_not_found(trust: TrustAdmin) -> None:
    oak, csrf = _as(trust, _it("oak"))
    tighter = "default: block\n"
    assert _save_policy(oak, csrf, tighter).status_code == 303
    mine = trust.versions(versions.school_kind("oak"))[0].id
    assert oak.get(f"/policy/versions/{mine}").status_code == 200
    assert "our own rules" in oak.get("/policy/versions").text
    elm, csrf = _as(trust, _it("elm"))
    assert elm.get(f"/policy/versions/{mine}").status_code == 404
    assert "our own rules" not in elm.get("/policy/versions").text
    restore = elm.post(
        f"/policy/versions/{mine}/restore", data={"csrf_token": csrf, "reason": "mine now"}
    )
    assert restore.status_code == 404
    assert "our own rules" not in str(elm.get("/api/policy/versions").json())
    assert trust.text("elm/policy.yaml") == ELM_TEXT
    # Nor does a school's IT reach the trust's base policy's versions.
    base = trust.versions(versions.POLICY)
    if base:
        assert oak.get(f"/policy/versions/{base[0].id}").status_code == 404


def test_a_school_restores_its_own_version(trust: TrustAdmin) -> None:
    oak, csrf = _as(trust, _it("oak"))
    assert _save_policy(oak, csrf, "default: block\n").status_code == 303
    first = trust.versions(versions.school_kind("oak"))[-1]  # the file as first seen
    answer = oak.post(
        f"/policy/versions/{first.id}/restore", data={"csrf_token": csrf, "reason": "undo"}
    )
    assert answer.status_code == 303, answer.text[:500]
    assert trust.text("oak/policy.yaml") == OAK_TEXT


def test_the_trusts_it_narrows_the_pages_to_one_school(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, TRUST_STAFF)
    base = client.get("/policy").text
    assert "<h1>The policy</h1>" in base  # the trust's base, as before
    assert 'id="school-policy"' not in base
    page = client.get("/policy?school=elm").text
    assert "Elm Primary: the policy" in page
    assert 'action="/policy/edit?school=elm"' in page
    assert "10:15" in page  # Elm's break, in Elm's table
    text = ELM_TEXT + "default: block\n"
    answer = _save_policy(client, csrf, text, "?school=elm")
    assert answer.status_code == 303, answer.text[:500]
    assert trust.text("elm/policy.yaml") == text
    assert trust.text("oak/policy.yaml") == OAK_TEXT
    assert trust.text("base.yaml") == seed_policy_path().read_text()
    newest = trust.versions(versions.school_kind("elm"))[0]
    assert (newest.author, newest.text) == ("trust-lead1", text)
    assert client.get("/policy?school=nowhere").status_code == 404
    # The trust's base policy is edited as before, without `?school=`.
    assert "Oak Primary: school calendar" not in client.get("/calendar").text
    assert "Oak Primary: school calendar" in client.get("/calendar?school=oak").text


def test_a_schools_staff_cannot_narrow_to_another_school(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    assert "Elm Primary" not in client.get("/policy?school=elm").text
    answer = _save_policy(client, csrf, "default: block\n", "?school=elm")
    assert answer.status_code == 303
    assert trust.text("elm/policy.yaml") == ELM_TEXT  # Oak's own file was changed
    assert trust.text("oak/policy.yaml") == "default: block\n"


@pytest.mark.parametrize("role", ["business_manager", "dsl"])
def test_business_manager_and_dsl_read_their_schools_calendar(trust: TrustAdmin, role: str) -> None:
    it, csrf = _as(trust, _it("oak"))
    it.post("/calendar/edit", data=_form(csrf, YEAR, reason="LA dates", action="save"))
    client, csrf = _as(trust, school_users("oak")[role])
    page = client.get("/calendar?year=2026").text
    assert "Oak Primary: school calendar" in page
    assert "Autumn term" in page
    assert "/calendar/edit" not in page
    assert client.get("/policy").status_code == 403  # the policy table is IT's, as before
    before = trust.text("oak/policy.yaml")
    answer = client.post("/calendar/edit", data=_form(csrf, [], reason="x", action="save"))
    assert answer.status_code == 403
    assert trust.text("oak/policy.yaml") == before
    elm, _ = _as(trust, school_users("elm")[role])
    assert "Autumn term" not in elm.get("/calendar?year=2026").text


def test_a_school_without_its_own_file_is_told_how_the_trust_adds_one(
    trust: TrustAdmin,
) -> None:
    client, csrf = _as(trust, _it("ash"))
    page = html.unescape(client.get("/policy").text)
    words = "in the trust file, under the school 'ash', add 'policy: ash/policy.yaml'"
    assert "Ash Infants runs the trust's policy as it is" in page
    assert words in page
    answer = _save_policy(client, csrf, "default: block\n")
    assert answer.status_code == 409
    assert words in html.unescape(answer.text)
    assert client.get("/calendar/edit").status_code == 409
    assert "Ash Infants: school calendar" in client.get("/calendar").text


def test_shadow_mode_stays_the_trusts(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    answer = client.get("/policy/shadow")
    assert answer.status_code == 403
    assert "every school of the trust" in answer.text
    shadow = client.post(
        "/policy/edit",
        data={"csrf_token": csrf, "text": OAK_TEXT, "reason": "try", "action": "shadow"},
    )
    assert shadow.status_code == 403
    assert not (trust.folder / "oak" / versions.SHADOW_POLICY).exists()
    assert 'value="shadow"' not in client.get("/policy").text


def test_a_change_of_the_trusts_base_is_checked_with_every_school(trust: TrustAdmin) -> None:
    """A base rule taking the name of a school's own rule would stop the gateway loading the
    trust: it is refused, naming the school, and the base is left as it was."""
    (trust.folder / "oak" / "policy.yaml").write_text(
        "rules:\n  - {name: oak-extra, roles: all, categories: [gambling], action: block}\n"
    )
    base = trust.text("base.yaml")
    clash = base.replace(
        "\nrules:\n",
        "\nrules:\n  - {name: oak-extra, roles: all, categories: [gambling], action: block}\n",
        1,
    )
    client, csrf = _as(trust, TRUST_STAFF)
    answer = _save_policy(client, csrf, clash)
    assert answer.status_code == 422, answer.text[:500]
    assert "school 'oak'" in html.unescape(answer.text).lower()
    assert "already has a rule named 'oak-extra'" in html.unescape(answer.text)
    assert trust.text("base.yaml") == base
    fine = base.replace(
        "\nrules:\n",
        "\nrules:\n  - {name: trust-extra, roles: all, categories: [gambling], action: block}\n",
        1,
    )
    assert _save_policy(client, csrf, fine).status_code == 303
    assert trust.text("base.yaml") == fine


def test_another_schools_broken_file_is_not_shown_and_blocks_a_save(trust: TrustAdmin) -> None:
    (trust.folder / "elm" / "policy.yaml").write_text("rules: [{name: elm-secret-rule}]\n")
    client, csrf = _as(trust, _it("oak"))
    page = client.get("/policy")
    assert page.status_code == 200  # Oak's own policy still compiles
    assert "elm-secret-rule" not in page.text
    answer = _save_policy(client, csrf, "default: block\n")
    assert answer.status_code == 422
    assert "elm-secret-rule" not in answer.text
    assert "ask the trust's IT team" in html.unescape(answer.text)
    assert trust.text("oak/policy.yaml") == OAK_TEXT  # the gateway would not take it up


def test_a_schools_preview_replays_its_own_visits(trust: TrustAdmin) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    with trust.resources.sessions() as session:
        for i, school in enumerate(["oak", "oak", "elm", "elm", "elm"]):
            session.add(
                EventRow(
                    id=str(uuid.uuid4()),
                    replica="r",
                    seq=i,
                    at=at,
                    user=f"{school}-teacher",
                    role="staff",
                    host="www.facebook.com",
                    verdict=Verdict.ALLOW,
                    reason=Reason.RULE_ALLOW.value,
                    intercepted=False,
                    school=school,
                )
            )
        session.commit()
    client, csrf = _as(trust, _it("oak"))
    answer = client.post(
        "/policy/edit",
        data={
            "csrf_token": csrf,
            "text": "default: block\n",
            "reason": "",
            "days": "1",
            "action": "preview",
        },
    )
    assert answer.status_code == 200, answer.text[:500]
    assert "2 decisions from the last 1 days replayed" in answer.text


def test_a_schools_file_broken_on_the_server_can_be_put_right_here(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    assert client.get("/policy").status_code == 200  # seen once, good
    broken = "rules: [{name: half-a-rule}]\n"
    (trust.folder / "oak" / "policy.yaml").write_text(broken)
    page = client.get("/policy")
    assert page.status_code == 200  # the last good policy, as the gateway keeps it
    assert html.escape(broken, quote=False) in page.text  # the file as it is, to correct
    assert _save_policy(client, csrf, OAK_TEXT).status_code == 303
    assert trust.text("oak/policy.yaml") == OAK_TEXT


def test_a_schools_file_broken_before_the_admin_saw_it_is_said_in_words(
    trust: TrustAdmin,
) -> None:
    broken = "rules: [{name: half-a-rule}]\n"
    (trust.folder / "oak" / "policy.yaml").write_text(broken)
    client, csrf = _as(trust, _it("oak"))
    page = client.get("/policy")
    assert page.status_code == 200
    words = html.unescape(page.text)
    assert "Oak Primary's policy cannot be shown:" in words
    assert "half-a-rule" in words
    assert html.escape(broken, quote=False) in page.text  # the editor, to put it right
    assert _save_policy(client, csrf, OAK_TEXT).status_code == 303
    assert "Oak Primary's policy cannot be shown" not in html.unescape(client.get("/policy").text)


def test_a_school_taken_out_of_the_trust_file_meanwhile_is_said_in_words(
    trust: TrustAdmin,
) -> None:
    """The admin read the trust file at start; a school removed from it since is not a crash."""
    trust_file = trust.folder / "trust.yaml"
    trust_file.write_text(
        "\n".join(line for line in trust_file.read_text().splitlines() if "oak:" not in line) + "\n"
    )
    client, csrf = _as(trust, _it("oak"))
    page = client.get("/policy")
    assert page.status_code == 200
    assert "there is no school 'oak' any more" in html.unescape(page.text)
    answer = _save_policy(client, csrf, "default: block\n")
    assert answer.status_code == 422
    assert "the trust file no longer names this school" in html.unescape(answer.text).lower()
    assert trust.text("oak/policy.yaml") == OAK_TEXT


def test_a_schools_check_box_checks_a_text_as_the_schools_own_part(trust: TrustAdmin) -> None:
    client, csrf = _as(trust, _it("oak"))
    refused = client.post("/policy/check", data={"csrf_token": csrf, "text": LOOSENING})
    assert refused.status_code == 200
    assert LOCK_WORDS[1:] in html.unescape(refused.text)  # as a save would say it
    fine = client.post("/policy/check", data={"csrf_token": csrf, "text": "default: block\n"})
    assert "No problems" in fine.text
    assert trust.text("oak/policy.yaml") == OAK_TEXT  # only checked


@pytest.mark.parametrize("page", ["/policy", "/calendar"])
def test_the_trusts_it_chooses_a_school_from_the_page(trust: TrustAdmin, page: str) -> None:
    client, _ = _as(trust, TRUST_STAFF)
    shown = client.get(page).text
    for school in ("oak", "elm", "ash"):
        assert f'href="{page}?school={school}"' in shown
    narrowed = client.get(f"{page}?school=oak").text
    assert f'<a href="{page}">the trust</a>' in narrowed
    assert "<strong>Oak Primary</strong>" in narrowed
    oak, _ = _as(trust, _it("oak"))
    assert 'id="schools"' not in oak.get(page).text  # a school's staff see their own only


def test_explain_answers_with_the_viewers_schools_own_policy(trust: TrustAdmin) -> None:
    """Elm's morning break is 10:15-10:30, the trust's 10:30-10:45: at 10:20 on a Monday Elm's
    staff may use Facebook and Oak's may not, and Explain says so to each school's staff."""
    question = {"role": "staff", "host": "www.facebook.com", "at": "2026-12-07T10:20"}
    verdicts = {}
    for school in ("oak", "elm"):
        client, _ = _as(trust, _it(school))
        answer = client.get("/api/explain", params=question)
        assert answer.status_code == 200, answer.text
        verdicts[school] = answer.json()["verdict"]
    assert verdicts == {"oak": "block", "elm": "allow"}
    client, _ = _as(trust, TRUST_STAFF)
    narrowed = client.get("/api/explain", params={**question, "school": "elm"})
    assert narrowed.json()["verdict"] == "allow", narrowed.text


def test_a_request_is_judged_and_shown_with_its_schools_own_times(trust: TrustAdmin) -> None:
    """The request form's lesson and break times are the person's school's (Elm's break
    starts at 10:15)."""
    client, _ = _as(trust, school_users("elm")["business_manager"])
    page = client.get("/requests/new").text
    assert "10:15" in page, page[:2000]
    client, _ = _as(trust, school_users("oak")["business_manager"])
    assert "10:15" not in client.get("/requests/new").text


def test_a_local_allow_is_judged_by_the_schools_own_policy(trust: TrustAdmin) -> None:
    """Oak's own policy never unblocks its games category; a local allow of a games site is
    refused on Oak's list (it could never work there) and taken on Elm's."""
    (trust.folder / "oak/policy.yaml").write_text(
        OAK_TEXT + "categories:\n  games:\n    description: Online games\n"
        "    domains: [games-oak.example]\n    not_unblockable_for: all\n"
        "rules:\n  - {name: no-games, roles: all, categories: [games], action: block}\n"
    )
    site = {"host": "games-oak.example", "verdict": "allow", "note": "a maths game"}
    answers = {}
    for school in ("oak", "elm"):
        client, csrf = _as(trust, school_users(school)["business_manager"])
        answers[school] = client.post("/api/lists", json=site, headers={"X-CSRF-Token": csrf})
    assert answers["oak"].status_code == 422, answers["oak"].text[:300]
    assert "can never be unblocked" in answers["oak"].text
    assert answers["elm"].status_code == 201, answers["elm"].text[:300]


def test_a_school_added_on_the_command_line_reaches_the_running_admin(trust: TrustAdmin) -> None:
    """`schoolgate trust add-school` (or another admin replica) changes the trust file: the
    running admin's watcher reads it again (every second under `schoolgate admin`; here at
    once); a broken change is not taken and the running trust stays."""
    watcher = TrustWatcher(trust.resources, trust.folder / "trust.yaml")
    client, _ = _as(trust, TRUST_STAFF)

    def schools() -> set[str]:
        watcher.check()
        answer = client.get("/api/trust/summary")
        assert answer.status_code == 200, answer.text[:300]
        return {row["school"] for row in answer.json()["schools"]}

    assert schools() == {"oak", "elm", "ash"}
    add_school(
        trust.folder / "trust.yaml", "fir", name="Fir Juniors", subnets=["10.4.0.0/16"], policy=None
    )
    assert schools() == {"oak", "elm", "ash", "fir"}
    text = (trust.folder / "trust.yaml").read_text()
    (trust.folder / "trust.yaml").write_text(text + "  yew: {name: Yew, subnets: [10.1.0.0/16]}\n")
    assert schools() == {"oak", "elm", "ash", "fir"}  # Oak's range twice: refused, kept
