"""The real gateway against a real slapd: password guessing through the proxy is backed off
(shared through the gateway's database), and credentials a hung directory cannot check never
browse (findings 3 and 11 of the December security review)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_gateway_ldap_e2e import fetch
from tests.support.gateway import Gateway, running_gateway, write_policy
from tests.support.needs import need_program
from tests.support.slapd import SlapdServer, start_slapd

pytestmark = pytest.mark.e2e


@pytest.fixture
def ldap(tmp_path: Path) -> Iterator[SlapdServer]:
    need_program("slapd", "slapd")
    server = start_slapd(tmp_path)
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.fixture
def gateway(tmp_path: Path, ldap: SlapdServer) -> Iterator[Gateway]:
    policy = tmp_path / "policy.yaml"
    write_policy(policy, in_break=False)
    identity = ldap.write_identity_config(
        tmp_path / "identity", cache={"positive_seconds": 600, "negative_seconds": 1}
    )
    with running_gateway(tmp_path, policy=policy, identity=identity) as gw:
        yield gw


def test_guessing_a_teachers_password_is_backed_off(gateway: Gateway) -> None:
    # Before: 400 guesses in 26 s, the right password accepted at the end.
    for n in range(3):
        response = fetch(gateway, "teacher1", f"guess{n}", "http://learning.test/")
        assert response.status_code == 407
        assert "retry-after" not in response.headers
    for user, password in [
        ("teacher1", "guess3"),
        ("teacher1", "teacher1-pass"),
        ("ｔｅａｃｈｅｒ１", "teacher1-pass"),
        ("Teacher1", "teacher1-pass"),
    ]:
        response = fetch(gateway, user, password, "http://learning.test/")
        assert response.status_code == 407, user
        assert 500 < int(response.headers["retry-after"]) <= 600
        assert "Too many wrong passwords" in response.text
        with pytest.raises(httpx.ProxyError, match="407"):
            fetch(gateway, user, password, "https://learning.test/")
    # Others still sign in; the count is kept in the gateway's database.
    assert fetch(gateway, "pupil1", "pupil1-pass", "http://learning.test/").status_code == 200
    assert (gateway.data_dir / "schoolgate.db").exists()


def test_a_hung_directory_lets_nobody_in_unchecked(gateway: Gateway, ldap: SlapdServer) -> None:
    # Before: with slapd stopped (SIGSTOP), any credentials browsed with the default role.
    assert fetch(gateway, "teacher1", "teacher1-pass", "http://learning.test/").status_code == 200
    ldap.pause()
    assert fetch(gateway, "teacher1", "teacher1-pass", "http://learning.test/").status_code == 200
    for user, password in [("pupil1", "wrong"), ("nobody", "x"), ("dsl1", "dsl1-pass")]:
        response = fetch(gateway, user, password, "http://learning.test/")
        assert response.status_code == 407, user
    assert "directory is unavailable" in gateway.log_text()
