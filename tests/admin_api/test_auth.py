"""Sign-in and sessions: the demo directory, roles from groups, the break-glass administrator,
cookie flags, CSRF on every form, throttling, settings that refuse placeholder secrets, and a
hostile user name against a real slapd."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from admin_api.app import make_app
from admin_api.resources import Resources, make_resources
from admin_api.settings import Settings
from admin_api.throttle import SignInThrottle
from store.directory import hash_password
from tests.admin_api.conftest import CSRF, TEST_SECRET, settings_for, sign_in
from tests.support.slapd import SlapdServer, shared_slapd

__all__ = ["shared_slapd"]


def _form(client: TestClient, **fields: str) -> dict[str, str]:
    token = CSRF.search(client.get("/signin").text)
    assert token is not None
    return {**fields, "csrf_token": token.group(1)}


@pytest.mark.parametrize(("username", "roles"), [
    ("pupil1", ["pupil"]),
    ("teacher1", ["staff"]),
    ("bursar1", ["business_manager", "staff"]),
    ("DSL1", ["dsl", "staff"]),  # user names ignore case
    ("it1", ["it_technician", "staff"]),
])
def test_directory_groups_give_the_admin_roles(app: FastAPI, username: str,
                                               roles: list[str]) -> None:
    client = sign_in(app, username, f"{username.lower()}-demo")
    assert client.get("/api/me").json()["roles"] == roles


def test_the_session_cookie_is_httponly_samesite_and_signed_out_clears_it(app: FastAPI) -> None:
    client = TestClient(app, follow_redirects=False)
    answer = client.post("/signin", data=_form(client, username="pupil1",
                                               password="pupil1-demo"))
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "max-age=" in cookie
    assert client.get("/api/me").status_code == 200
    token = CSRF.search(client.get("/requests/mine").text)
    assert token is not None
    client.post("/signout", data={"csrf_token": token.group(1)})
    assert client.get("/api/me").status_code == 401


def test_secure_cookies_by_default(resources: Resources, tmp_path: Path) -> None:
    settings = settings_for(resources.settings.effective_database_url, tmp_path,
                            cookie_secure=True)
    client = TestClient(make_app(resources=make_resources(settings)))
    assert "secure" in client.get("/signin").headers["set-cookie"].lower()


@pytest.mark.parametrize(("password", "status"), [("wrong", 401), ("", 422)])
def test_a_wrong_password_is_refused_with_a_clear_message(app: FastAPI, password: str,
                                                          status: int) -> None:
    client = TestClient(app, follow_redirects=False)
    answer = client.post("/signin", data=_form(client, username="pupil1", password=password))
    assert answer.status_code == status
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_form_without_this_sessions_csrf_token_is_refused(app: FastAPI,
                                                            token: str | None) -> None:
    client = sign_in(app, "bursar1", "bursar1-demo")
    data = {"host": "csrf-test.example", "verdict": "block"}
    if token is not None:
        data["csrf_token"] = token
    answer = client.post("/lists", data=data)
    assert answer.status_code == 403
    assert "did not come from this site" in answer.text
    api = client.post("/api/lists", json=data)
    assert api.status_code == 403
    assert api.json()["error"] == "csrf_failed"
    assert "csrf-test.example" not in client.get("/lists").text


def test_sign_in_is_throttled_per_user_name(app: FastAPI, resources: Resources) -> None:
    client = TestClient(app, follow_redirects=False)
    for _ in range(5):
        answer = client.post("/signin", data=_form(client, username="teacher1", password="x"))
        assert answer.status_code == 401
    answer = client.post("/signin", data=_form(client, username="teacher1",
                                               password="teacher1-demo"))
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in answer.text
    # another person is not held up by it
    assert sign_in(app, "pupil1", "pupil1-demo").get("/api/me").status_code == 200


def test_sign_in_is_throttled_per_address(app: FastAPI, resources: Resources) -> None:
    resources.throttle = SignInThrottle(max_per_user=100, max_per_ip=3, window_seconds=60)
    client = TestClient(app, follow_redirects=False)
    for name in ("a1", "a2", "a3"):
        client.post("/signin", data=_form(client, username=name, password="x"))
    answer = client.post("/signin", data=_form(client, username="pupil1",
                                               password="pupil1-demo"))
    assert answer.status_code == 429


def test_the_throttle_forgets_after_its_window() -> None:
    now = [0.0]
    throttle = SignInThrottle(max_per_user=2, max_per_ip=100, window_seconds=60,
                              clock=lambda: now[0])
    throttle.failed("Pupil1", "10.0.0.1")
    throttle.failed("pupil1", "10.0.0.2")
    assert throttle.retry_after("PUPIL1", "10.0.0.3") == 61
    now[0] = 60.5
    assert throttle.retry_after("pupil1", "10.0.0.3") is None


def test_next_never_leads_off_the_site(app: FastAPI) -> None:
    client = TestClient(app, follow_redirects=False)
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        answer = client.post("/signin", data=_form(client, username="pupil1",
                                                   password="pupil1-demo", next=target))
        assert answer.headers["location"] == "/"


def test_the_break_glass_administrator(resources: Resources, tmp_path: Path) -> None:
    settings = settings_for(resources.settings.effective_database_url, tmp_path,
                            breakglass_username="rescue",
                            breakglass_password_hash=hash_password("a long rescue phrase"))
    app = make_app(resources=make_resources(settings))
    client = sign_in(app, "rescue", "a long rescue phrase")
    assert client.get("/api/me").json()["roles"] == ["business_manager", "it_technician",
                                                     "staff"]
    assert client.get("/system").status_code == 200
    refused = TestClient(app, follow_redirects=False)
    answer = refused.post("/signin", data=_form(refused, username="rescue", password="nope"))
    assert answer.status_code == 401


@pytest.mark.parametrize("secret", ["", "changeme", "CHANGE-ME-please-0123456789abcdefghij",
                                    "short"])
def test_placeholder_secrets_are_refused_outside_development(secret: str,
                                                             tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(session_secret=secret, data_dir=tmp_path)
    Settings(session_secret=secret, data_dir=tmp_path, environment="development")


def test_production_needs_a_session_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no session secret"):
        Settings(data_dir=tmp_path)
    assert Settings(session_secret=TEST_SECRET, data_dir=tmp_path).session_secret is not None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("SCHOOLGATE_SESSION_SECRET", TEST_SECRET)
    monkeypatch.setenv("SCHOOLGATE_SCHOOL_NAME", "West Kirby Primary")
    monkeypatch.setenv("SCHOOLGATE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.school_name == "West Kirby Primary"
    assert settings.session_secret is not None
    assert TEST_SECRET not in repr(settings)


HOSTILE_NAMES = ["*", "*)(uid=*", "pupil1)(|(uid=*", "admin*)((|userPassword=*)",
                 "\\2a", "pupil1\x00", "(&)", "é" * 300]


@pytest.mark.parametrize("username", HOSTILE_NAMES)
def test_a_hostile_user_name_against_real_ldap_signs_nobody_in(
        shared_slapd: SlapdServer, tmp_path: Path, resources: Resources,
        username: str) -> None:
    identity = shared_slapd.write_identity_config(tmp_path / "identity")
    settings = settings_for(resources.settings.effective_database_url, tmp_path,
                            identity_file=identity)
    app = make_app(resources=make_resources(settings))
    client = TestClient(app, follow_redirects=False)
    for password in ("pupil1-pass", "*"):
        answer = client.post("/signin", data=_form(client, username=username,
                                                   password=password))
        assert answer.status_code in (401, 422), answer.text[:300]
        assert client.get("/api/me").status_code == 401
    # and the real person still signs in through the same form
    assert sign_in(app, "pupil1", "pupil1-pass").get("/api/me").json()["username"] == "pupil1"


@pytest.mark.parametrize(("username", "role"), [
    ("bursar1", "business_manager"), ("dsl1", "dsl"), ("it1", "it_technician")])
def test_admin_roles_come_from_the_real_directorys_groups(
        shared_slapd: SlapdServer, tmp_path: Path, resources: Resources, username: str,
        role: str) -> None:
    identity = shared_slapd.write_identity_config(tmp_path / "identity")
    settings = settings_for(resources.settings.effective_database_url, tmp_path,
                            identity_file=identity)
    app = make_app(resources=make_resources(settings))
    me = sign_in(app, username, f"{username}-pass").get("/api/me").json()
    assert role in me["roles"]
    others = {"business_manager", "dsl", "it_technician"} - {role}
    assert not others & set(me["roles"])
