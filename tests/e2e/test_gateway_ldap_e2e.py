"""The real gateway signing people in against a real slapd: directory users get their groups'
roles, wrong or unknown credentials get a 407, and when LDAP stops signed-in users keep their
role while credentials nobody could check get a 407 (never the default role), until LDAP is
back."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import Gateway, running_gateway, wait_for, write_policy
from tests.support.needs import need_program
from tests.support.slapd import SlapdServer, start_slapd

pytestmark = pytest.mark.e2e


def fetch(gw: Gateway, user: str, password: str, url: str) -> httpx.Response:
    """GET `url` through the gateway signed in as `user` (trusting the school and origin CAs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(gw.ca_pem))
    context.load_verify_locations(cafile=str(gw.test_ca.ca_pem))
    proxy = httpx.Proxy(f"http://127.0.0.1:{gw.port}", auth=(user, password))
    with httpx.Client(proxy=proxy, verify=context, timeout=20, trust_env=False) as client:
        return client.get(url)


@contextlib.contextmanager
def _gateway(folder: Path, ldap: SlapdServer) -> Iterator[Gateway]:
    """A gateway in lesson time whose identity file points at `ldap`; refused sign-ins and
    fallbacks are remembered for 1 s only, so a recovery shows at once."""
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    identity = ldap.write_identity_config(
        folder / "identity", cache={"positive_seconds": 600, "negative_seconds": 1}
    )
    with running_gateway(folder, policy=policy, identity=identity) as gw:
        yield gw


@pytest.fixture(scope="module")
def ldap_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    need_program("slapd", "slapd")
    folder = tmp_path_factory.mktemp("ldap-gateway")
    ldap = start_slapd(folder)
    try:
        with _gateway(folder, ldap) as gw:
            yield gw
    finally:
        ldap.stop()


# (user, url, status in lesson time): group -> role -> the seed rules.
BY_GROUP = [
    ("pupil1", "https://www.tiktok.com/", 403),  # Pupils -> pupil: no social media
    ("pupil1", "https://learning.test/", 200),
    ("teacher1", "https://violence.test/", 200),  # Staff -> staff (content for pupils only)
    ("pupil1", "https://violence.test/", 403),
    ("teacher1", "https://www.tiktok.com/", 403),  # staff: social media at break only
    ("teacher1", "https://www.facebook.com/", 403),  # staff: Facebook only at break
    ("socialmedia1", "https://www.facebook.com/", 200),  # SocialMedia -> the official accounts
    ("socialmedia1", "https://x.com/", 403),  # X is blocked for everyone
    ("visitor1", "https://www.tiktok.com/", 403),  # no mapped group -> the default role (pupil)
]


@pytest.mark.parametrize(("user", "url", "status"), BY_GROUP)
def test_directory_users_browse_with_their_groups_role(
    ldap_gateway: Gateway, user: str, url: str, status: int
) -> None:
    response = fetch(ldap_gateway, user, f"{user}-pass", url)
    assert response.status_code == status, (user, url, response.text[:300])
    if status == 403:
        assert "This website is blocked at school" in response.text
    else:
        assert "hello from the origin" in response.text


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("teacher1", "not-the-password"),  # wrong password
        ("teacher1", ""),  # empty password: never an anonymous bind
        ("nobody", "nobody-pass"),  # not in the directory
        ("*", "teacher1-pass"),  # a filter wildcard is a name, not a pattern
    ],
)
def test_refused_sign_ins_get_407(ldap_gateway: Gateway, user: str, password: str) -> None:
    response = fetch(ldap_gateway, user, password, "http://learning.test/")
    assert response.status_code == 407
    assert response.headers["proxy-authenticate"].startswith("Basic")
    with pytest.raises(httpx.ProxyError, match="407"):  # HTTPS: refused at CONNECT
        fetch(ldap_gateway, user, password, "https://learning.test/")


def test_ldap_outage_keeps_signed_in_users_and_asks_new_ones_again(tmp_path: Path) -> None:
    need_program("slapd", "slapd")
    ldap = start_slapd(tmp_path)
    try:
        with _gateway(tmp_path, ldap) as gw:
            assert (
                fetch(gw, "teacher1", "teacher1-pass", "https://violence.test/").status_code == 200
            )
            ldap.stop()

            # Signed in before the outage: keeps the staff role.
            assert (
                fetch(gw, "teacher1", "teacher1-pass", "https://violence.test/").status_code == 200
            )
            # New sign-ins could not be checked: asked again, never browsing as nobody
            # (finding 11 of the December security review).
            assert fetch(gw, "dsl1", "dsl1-pass", "http://learning.test/").status_code == 407
            assert fetch(gw, "nobody", "x", "http://learning.test/").status_code == 407
            with pytest.raises(httpx.ProxyError, match="407"):
                fetch(gw, "socialmedia1", "socialmedia1-pass", "https://www.facebook.com/")
            assert "directory is unavailable" in gw.log_text()

            ldap.start()
            # Someone never seen before signs in at once (or after the short hold,
            # negative_seconds, in which the gateway does not wait on a down directory).
            wait_for(
                lambda: fetch(gw, "it1", "it1-pass", "http://learning.test/").status_code == 200,
                what="a new sign-in once LDAP is back",
            )
            assert fetch(gw, "it1", "it1-pass", "https://violence.test/").status_code == 200
            wait_for(
                lambda: (
                    fetch(
                        gw, "socialmedia1", "socialmedia1-pass", "https://www.facebook.com/"
                    ).status_code
                    == 200
                ),
                what="the social media manager's role once LDAP is back",
            )
            assert fetch(gw, "teacher1", "wrong", "http://learning.test/").status_code == 407
    finally:
        ldap.stop()
