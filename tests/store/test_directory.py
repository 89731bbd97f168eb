"""store/directory.py against a real slapd and the demo users file."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schoolgate.store.directory import (
    DirectoryUnavailable,
    DirectoryUser,
    LdapDirectory,
    LocalDirectory,
    hash_password,
    parse_users_file,
    verify_password,
)
from schoolgate.store.identity_config import IdentityConfigError, LdapSettings, load_identity_config
from tests.support.slapd import MAIL, PEOPLE, PEOPLE_DN, SlapdServer, start_slapd

pytestmark = pytest.mark.ldap
DEMO_USERS = (
    Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data" / "demo-users.yaml"
)


def settings_for(
    server: SlapdServer, folder: Path, *, group_mode: str = "member_of", **changes: object
) -> LdapSettings:
    config = load_identity_config(server.write_identity_config(folder, group_mode=group_mode))
    assert isinstance(config.directory, LdapSettings)
    return dataclasses.replace(config.directory, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=["member_of", "search"])
async def directory(
    request: pytest.FixtureRequest, shared_slapd: SlapdServer, tmp_path: Path
) -> AsyncIterator[LdapDirectory]:
    ldap = LdapDirectory(settings_for(shared_slapd, tmp_path, group_mode=request.param))
    yield ldap
    ldap.close()


@pytest.mark.parametrize("username", list(PEOPLE))
async def test_each_person_signs_in_with_their_groups(
    directory: LdapDirectory, username: str
) -> None:
    display, password, groups = PEOPLE[username]
    user = await directory.authenticate(username, password)
    assert user == DirectoryUser(
        username, frozenset(groups), display, MAIL.get(username, ""), f"uid={username},{PEOPLE_DN}"
    )


async def test_user_names_ignore_case_and_come_back_as_the_directory_spells_them(
    directory: LdapDirectory,
) -> None:
    user = await directory.authenticate("TEACHER1", "teacher1-pass")
    assert user is not None
    assert user.username == "teacher1"


@pytest.mark.parametrize("username", list(PEOPLE))
async def test_lookup_finds_groups_without_a_password(
    directory: LdapDirectory, username: str
) -> None:
    display, _password, groups = PEOPLE[username]
    assert await directory.lookup(username) == DirectoryUser(
        username, frozenset(groups), display, MAIL.get(username, ""), f"uid={username},{PEOPLE_DN}"
    )


@pytest.mark.parametrize("username", ["nobody", "", "*", "pupil*", "*)(uid=*"])
async def test_lookup_of_unknown_or_hostile_names_finds_nobody(
    directory: LdapDirectory, username: str
) -> None:
    assert await directory.lookup(username) is None


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("pupil1", "teacher1-pass"),  # someone else's password
        ("pupil1", "PUPIL1-PASS"),  # passwords do not ignore case
        ("pupil1", ""),  # an empty password would be an unauthenticated bind, which LDAP accepts
        ("nobody", "pupil1-pass"),
        ("", "pupil1-pass"),
    ],
)
async def test_wrong_credentials_and_unknown_users_are_refused(
    directory: LdapDirectory, username: str, password: str
) -> None:
    assert await directory.authenticate(username, password) is None


@pytest.mark.parametrize(
    "username",
    [
        "*)(uid=*",
        "*",
        "pupil*",
        "pupil1)(uid=*",
        "*)(|(uid=*",
        "pupil1)(objectClass=*",
        "\\2a",
        "pupil1\x00",
        "uid=pupil1,ou=people,dc=school,dc=test",
    ],
)
@pytest.mark.parametrize("password", ["pupil1-pass", "teacher1-pass"])
async def test_filter_metacharacters_in_the_username_match_nobody(
    directory: LdapDirectory, username: str, password: str
) -> None:
    assert await directory.authenticate(username, password) is None


async def test_a_stopped_server_is_unavailable_then_comes_back(
    slapd_server: SlapdServer, tmp_path: Path
) -> None:
    ldap = LdapDirectory(settings_for(slapd_server, tmp_path))
    try:
        assert await ldap.authenticate("it1", "it1-pass") is not None  # a pooled connection
        slapd_server.stop()
        with pytest.raises(DirectoryUnavailable, match=r"[Cc]onnection refused"):
            await ldap.authenticate("it1", "it1-pass")
        slapd_server.start()
        user = await ldap.authenticate("it1", "it1-pass")
        assert user is not None
        assert user.groups == {"Staff", "ITTechnicians"}
    finally:
        ldap.close()


async def test_a_server_that_never_answers_times_out(
    slapd_server: SlapdServer, tmp_path: Path
) -> None:
    settings = settings_for(slapd_server, tmp_path)
    quick = dataclasses.replace(
        settings,
        timeouts=dataclasses.replace(
            settings.timeouts, connect_seconds=1, receive_seconds=1, total_seconds=1
        ),
    )
    ldap = LdapDirectory(quick)
    slapd_server.pause()  # the kernel still accepts the connection; nobody answers
    try:
        with pytest.raises(DirectoryUnavailable, match="did not answer within 1 s"):
            await ldap.authenticate("it1", "it1-pass")
    finally:
        slapd_server.resume()
        ldap.close()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bind_dn": "cn=nobody,dc=school,dc=test"}, "service account cn=nobody"),
        (
            {"user_search_base": "ou=missing,dc=school,dc=test"},
            "searching for the user: noSuchObject",
        ),
    ],
)
async def test_a_misconfigured_directory_is_unavailable_not_a_wrong_password(
    shared_slapd: SlapdServer, tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    ldap = LdapDirectory(settings_for(shared_slapd, tmp_path, **changes))
    try:
        with pytest.raises(DirectoryUnavailable, match=message):
            await ldap.authenticate("pupil1", "pupil1-pass")
    finally:
        ldap.close()


async def test_start_tls_with_the_school_ca(tmp_path: Path) -> None:
    server = start_slapd(tmp_path, tls=True)
    try:
        settings = settings_for(server, tmp_path / "conf")
        assert settings.start_tls
        ldap = LdapDirectory(settings)
        user = await ldap.authenticate("dsl1", "dsl1-pass")
        assert user is not None
        assert user.groups == {"Staff", "DSL"}
        ldap.close()
        # Without the school's CA the certificate is not trusted: no password is sent.
        untrusted = LdapDirectory(dataclasses.replace(settings, ca_file=None))
        with pytest.raises(DirectoryUnavailable, match="certificate verify failed"):
            await untrusted.authenticate("dsl1", "dsl1-pass")
        untrusted.close()
    finally:
        server.stop()


def test_a_missing_bind_password_file_is_a_configuration_error(
    shared_slapd: SlapdServer, tmp_path: Path
) -> None:
    settings = settings_for(shared_slapd, tmp_path)
    missing = dataclasses.replace(settings, bind_password_file=tmp_path / "missing")
    with pytest.raises(IdentityConfigError, match="cannot read the bind password"):
        LdapDirectory(missing)


# --- the local users file --------------------------------------------------------------------

DEMO = {  # user -> groups, as documented at the top of store/data/demo-users.yaml
    "pupil1": {"Pupils", "Year5"},
    "pupil2": {"Pupils", "Year6"},
    "teacher1": {"Staff", "Teachers-Year5"},
    "socialmedia1": {"Staff", "SocialMedia"},
    "bursar1": {"Staff", "BusinessManagers"},
    "dsl1": {"Staff", "DSL"},
    "it1": {"Staff", "ITTechnicians"},
}


@pytest.mark.parametrize(("username", "groups"), DEMO.items())
async def test_demo_accounts_sign_in_with_the_documented_passwords(
    username: str, groups: set[str]
) -> None:
    directory = LocalDirectory(DEMO_USERS)
    user = await directory.authenticate(username, f"{username}-demo")
    assert user is not None
    assert (user.username, user.groups) == (username, groups)
    assert await directory.authenticate(username.upper(), f"{username}-demo") == user
    assert await directory.authenticate(username, f"{username}-DEMO") is None


async def test_the_users_file_answers_lookups() -> None:
    directory = LocalDirectory(DEMO_USERS)
    found = await directory.lookup("DSL1")
    assert found is not None
    assert (found.username, found.groups) == ("dsl1", {"Staff", "DSL"})
    assert found.mail == "dsl1@demo.school.example"  # the demo directory gives addresses
    assert await directory.lookup("nobody") is None


async def test_an_address_that_could_inject_mail_headers_is_left_out(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    digest = hash_password("a-pass")
    users.write_text(
        f"users:\n  a: {{password_hash: '{digest}', mail: \"a@x.test\\nBcc: b@y.test\"}}\n"
    )
    found = await LocalDirectory(users).lookup("a")
    assert found is not None
    assert found.mail == ""


@pytest.mark.parametrize(
    ("username", "password"),
    [("nobody", "pupil1-demo"), ("", ""), ("pupil1", ""), ("*", "pupil1-demo")],
)
async def test_the_users_file_refuses_unknown_users_and_wrong_passwords(
    username: str, password: str
) -> None:
    assert await LocalDirectory(DEMO_USERS).authenticate(username, password) is None


@pytest.mark.parametrize(
    "encoded",
    [
        hash_password("correct horse"),
        # pbkdf2_sha256, 1000 rounds, salt "salt": made elsewhere (e.g. by a migration script)
        "pbkdf2_sha256$1000$c2FsdA==$"
        + base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"correct horse", b"salt", 1000)).decode(),
    ],
)
def test_password_hashes_verify(encoded: str) -> None:
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse ", encoded)


def test_hashes_are_salted() -> None:
    assert hash_password("same") != hash_password("same")


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "users:\n  a: {password_hash: 'md5$abc'}\n",
            [
                "users.yaml: users.a.password_hash: not a password hash: expected scrypt$n$r$p$salt$digest"
                " or pbkdf2_sha256$iterations$salt$digest (make one with hash_password)"
            ],
        ),
        (
            "users:\n  a: {password_hash: 'scrypt$3$8$1$AA==$AA=='}\n",
            [
                "users.yaml: users.a.password_hash: malformed scrypt password hash "
                "(scrypt parameters out of range)"
            ],
        ),
        (
            "users:\n  a: {groups: [Staff]}\n",
            ["users.yaml: users.a.password_hash: required setting is missing"],
        ),
        (
            "users:\n  a: {password_hash: x, group: [Staff]}\n",
            [
                "users.yaml: users.a.password_hash: not a password hash: expected "
                "scrypt$n$r$p$salt$digest or pbkdf2_sha256$iterations$salt$digest "
                "(make one with hash_password)",
                "users.yaml: users.a.group: unknown setting (check the spelling)",
            ],
        ),
        (
            f"users:\n  Ann: {{password_hash: '{hash_password('x')}'}}\n"
            f"  ann: {{password_hash: '{hash_password('y')}'}}\n",
            ["users.yaml: users.ann: same user as 'Ann' (user names ignore case and width)"],
        ),
        (
            "people: []\n",
            [
                "users.yaml: users: required setting is missing",
                "users.yaml: people: unknown setting (check the spelling)",
            ],
        ),
    ],
)
def test_users_file_problems_are_located(text: str, problems: list[str]) -> None:
    with pytest.raises(IdentityConfigError) as raised:
        parse_users_file(text, source="users.yaml")
    assert list(raised.value.problems) == problems


# --- one canonical name (finding 6) and no user-existence oracle (finding 22) ---------------


@pytest.mark.parametrize("typed", ["ｔｅａｃｈｅｒ１", "TEACHER１", " Teacher1 "])
async def test_every_spelling_signs_in_as_the_canonical_name(
    directory: LdapDirectory, typed: str
) -> None:
    user = await directory.authenticate(typed, "teacher1-pass")
    assert user is not None
    assert user.username == "teacher1"
    found = await directory.lookup(typed)
    assert found is not None
    assert found.username == "teacher1"


@pytest.mark.parametrize("typed", ["ｐｕｐｉｌ１", "PUPIL1", "pupil1 "])
async def test_the_users_file_knows_every_spelling_by_the_canonical_name(typed: str) -> None:
    local = LocalDirectory(DEMO_USERS)
    user = await local.authenticate(typed, "pupil1-demo")
    assert user is not None
    assert user.username == "pupil1"
    found = await local.lookup(typed)
    assert found is not None
    assert found.username == "pupil1"


def test_a_users_file_name_with_control_characters_is_refused() -> None:
    encoded = hash_password("x")
    with pytest.raises(IdentityConfigError) as raised:
        parse_users_file(
            f'users:\n  "ann\\x07": {{password_hash: "{encoded}"}}\n', source="users.yaml"
        )
    assert "control or invisible characters" in raised.value.problems[0]


class CountingLdap(LdapDirectory):
    """The real directory, counting the connections it opens to the server."""

    opened = 0

    def _connect(self, user: str, password: str):  # type: ignore[no-untyped-def]
        CountingLdap.opened += 1
        return super()._connect(user, password)


async def test_an_unknown_user_costs_the_directory_what_a_wrong_password_costs(
    shared_slapd: SlapdServer, tmp_path: Path
) -> None:
    # Finding 22: a wrong password bound as the user, an unknown user did not (~1 ms less).
    ldap = CountingLdap(settings_for(shared_slapd, tmp_path))
    try:
        await ldap.authenticate("teacher1", "warm-the-pool")
        cost = {}
        for name in ("teacher1", "nobody-at-all"):
            CountingLdap.opened = 0
            assert await ldap.authenticate(name, "wrong-password") is None
            cost[name] = CountingLdap.opened
        assert cost["nobody-at-all"] == cost["teacher1"] == 1
    finally:
        ldap.close()


async def test_the_directory_lists_everyone_with_their_groups(directory: LdapDirectory) -> None:
    listed = {user.username: user for user in directory.list_users_sync()}
    assert set(listed) == set(PEOPLE)
    for name, (display, _, groups) in PEOPLE.items():
        assert listed[name] == DirectoryUser(
            name, frozenset(groups), display, MAIL.get(name, ""), f"uid={name},{PEOPLE_DN}"
        )


def test_a_directory_larger_than_the_cap_is_not_listed(
    shared_slapd: SlapdServer, tmp_path: Path
) -> None:
    ldap = LdapDirectory(settings_for(shared_slapd, tmp_path))
    try:
        with pytest.raises(DirectoryUnavailable, match="more than 3 users"):
            ldap.list_users_sync(max_users=3)
    finally:
        ldap.close()


def test_a_stopped_directory_cannot_be_listed(slapd_server: SlapdServer, tmp_path: Path) -> None:
    ldap = LdapDirectory(settings_for(slapd_server, tmp_path))
    try:
        slapd_server.stop()
        try:
            with pytest.raises(DirectoryUnavailable):
                ldap.list_users_sync()
        finally:
            slapd_server.start()
    finally:
        ldap.close()
