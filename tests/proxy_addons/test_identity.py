"""proxy_addons/identity.py: the Identify addon with mitmproxy's taddons/tflow, against the demo
users file and a real slapd."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import mode_specs
from mitmproxy.test import taddons, tflow

from schoolgate.proxy_addons import context
from schoolgate.proxy_addons.context import Identity, IdentitySource
from schoolgate.proxy_addons.identity import DEFAULT, Identify, parse_basic
from schoolgate.store.db import upgrade
from tests.support.postgres import database_url, postgres_session_url
from tests.support.slapd import PEOPLE_DN, SlapdServer

__all__ = ["database_url", "postgres_session_url"]

DATA = Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data"
DEMO = DATA / "demo-identity.yaml"
ROLES = [
    {"group": "SocialMedia", "role": "social_media_manager"},
    {"group": "Staff", "role": "staff"},
    {"group": "Pupils", "role": "pupil"},
]


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def make_flow(
    *,
    auth: str | None = None,
    peer: str = "192.0.2.10",
    mode: str = "regular",
    connect: bool = False,
    client: object | None = None,
) -> http.HTTPFlow:
    flow = tflow.tflow(client_conn=client) if client is not None else tflow.tflow()
    flow.client_conn.peername = (peer, 50123)
    flow.client_conn.proxy_mode = mode_specs.ProxyMode.parse(mode)
    if connect:
        flow.request.method = "CONNECT"
    if auth is not None:
        flow.request.headers["Proxy-Authorization"] = auth
    return flow


@pytest.fixture
def addon() -> Iterator[Identify]:
    identify = Identify()
    with taddons.context(identify):
        yield identify
    identify.done()


def configure(addon: Identify, path: Path | str) -> None:
    """Set the option as mitmproxy would: `configure` runs, an OptionsError rolls it back."""
    assert addon in ctx.master.addons
    ctx.options.update(schoolgate_identity=str(path))


def write_config(folder: Path, **document: object) -> Path:
    path = folder / "identity.yaml"
    document.setdefault("groups_to_roles", ROLES)
    path.write_text(yaml.safe_dump(document))
    return path


def local_config(folder: Path, **extra: object) -> Path:
    return write_config(
        folder, directory={"kind": "local", "users_file": str(DATA / "demo-users.yaml")}, **extra
    )


def identity_of(flow: http.HTTPFlow) -> Identity | None:
    found = flow.metadata.get(context.IDENTITY)
    assert found is None or isinstance(found, Identity)
    return found


def challenged(flow: http.HTTPFlow) -> bool:
    return (
        flow.response is not None
        and flow.response.status_code == 407
        and flow.response.headers["Proxy-Authenticate"] == 'Basic realm="schoolgate"'
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("pupil1", "pw"), ("pupil1", "pw")),
        (basic("pupil1", "p:w:x"), ("pupil1", "p:w:x")),  # passwords may contain colons
        (basic("Zoë", "pässword"), ("Zoë", "pässword")),
        ("basic " + base64.b64encode(b"a:b").decode(), ("a", "b")),
        (basic("", "pw"), None),
        ("Basic " + base64.b64encode(b"no colon").decode(), None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"\xff:x").decode(), None),
        ("Bearer abc", None),
        ("", None),
    ],
)
def test_parse_basic(header: str, expected: tuple[str, str] | None) -> None:
    assert parse_basic(header) == expected


async def test_without_a_configuration_everyone_gets_the_default_role(addon: Identify) -> None:
    flow = make_flow(auth=basic("pupil1", "pupil1-demo"))
    await addon.requestheaders(flow)
    assert identity_of(flow) == DEFAULT
    assert flow.response is None
    assert "Proxy-Authorization" not in flow.request.headers


@pytest.mark.parametrize(
    ("username", "role"),
    [
        ("pupil1", "pupil"),
        ("teacher1", "staff"),
        ("socialmedia1", "social_media_manager"),
        ("bursar1", "staff"),
        ("dsl1", "staff"),
        ("it1", "staff"),
    ],
)
async def test_demo_users_get_their_role(addon: Identify, username: str, role: str) -> None:
    configure(addon, DEMO)
    password = f"{username}-demo"
    flow = make_flow(auth=basic(username, password))
    await addon.requestheaders(flow)
    found = identity_of(flow)
    assert found is not None
    assert (found.user, found.role, found.source) == (username, role, IdentitySource.LOCAL)
    assert flow.response is None
    assert "Proxy-Authorization" not in flow.request.headers  # never forwarded upstream
    assert password not in repr(flow.metadata)


@pytest.mark.parametrize(
    "auth",
    [
        basic("pupil1", "wrong"),
        basic("nobody", "pupil1-demo"),
        "Basic garbage",
        "Negotiate abc",
        None,
    ],
)
async def test_wrong_or_missing_credentials_get_407(addon: Identify, auth: str | None) -> None:
    configure(addon, DEMO)
    for connect in (True, False):
        flow = make_flow(auth=auth, connect=connect)
        await (addon.http_connect(flow) if connect else addon.requestheaders(flow))
        assert challenged(flow)
        assert identity_of(flow) is None
        assert "Proxy-Authorization" not in flow.request.headers


async def test_without_auth_required_a_client_without_credentials_gets_the_default(
    addon: Identify, tmp_path: Path
) -> None:
    configure(addon, local_config(tmp_path, auth_required=False))
    flow = make_flow()
    await addon.requestheaders(flow)
    assert identity_of(flow) == DEFAULT
    wrong = make_flow(auth=basic("pupil1", "wrong"))  # credentials given are still checked
    await addon.requestheaders(wrong)
    assert challenged(wrong)


SUBNETS = [
    {"cidr": "10.20.0.0/16", "role": "pupil", "without_auth": True},
    {"cidr": "10.30.0.0/16", "role": "staff"},
]


@pytest.mark.parametrize(
    ("peer", "mode", "auth", "expected"),
    [
        ("10.20.1.1", "regular", None, Identity("pupil", IdentitySource.SUBNET)),
        ("::ffff:10.20.1.1", "regular", None, Identity("pupil", IdentitySource.SUBNET)),
        ("10.30.1.1", "regular", None, None),  # a subnet that must still sign in: 407
        ("10.30.1.1", "transparent", None, Identity("staff", IdentitySource.SUBNET)),
        ("10.99.1.1", "transparent", None, DEFAULT),  # no proxy auth possible, no subnet
        ("10.99.1.1", "wireguard", basic("teacher1", "teacher1-demo"), DEFAULT),
        # Credentials beat the subnet: a teacher signing in on a pupil device.
        (
            "10.20.1.1",
            "regular",
            basic("teacher1", "teacher1-demo"),
            Identity(
                "staff", IdentitySource.LOCAL, "teacher1", frozenset({"Staff", "Teachers-Year5"})
            ),
        ),
    ],
)
async def test_subnets_map_devices_that_cannot_sign_in(
    addon: Identify,
    tmp_path: Path,
    peer: str,
    mode: str,
    auth: str | None,
    expected: Identity | None,
) -> None:
    configure(addon, local_config(tmp_path, subnets=SUBNETS))
    flow = make_flow(peer=peer, mode=mode, auth=auth)
    await addon.requestheaders(flow)
    assert identity_of(flow) == expected
    assert challenged(flow) is (expected is None)


async def test_a_clients_subnet_is_looked_up_once_per_configuration(
    addon: Identify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(addon, local_config(tmp_path, subnets=SUBNETS))
    asked: list[str] = []
    config = addon._setup.config
    looked_up = type(config).subnet_for

    def counting(self: object, address: str) -> object:
        asked.append(address)
        return looked_up(config, address)

    monkeypatch.setattr(type(config), "subnet_for", counting)
    for _ in range(3):  # the front door's first look, then Identify, on every connection
        assert addon.identify_now(None, ("10.20.1.1", 50123)) == Identity(
            "pupil", IdentitySource.SUBNET
        )
        flow = make_flow(peer="10.20.1.1", connect=True)
        await addon.http_connect(flow)
        assert identity_of(flow) == Identity("pupil", IdentitySource.SUBNET)
    assert asked == ["10.20.1.1"]


async def test_a_new_configuration_looks_the_subnet_up_again(
    addon: Identify, tmp_path: Path
) -> None:
    configure(addon, local_config(tmp_path, subnets=SUBNETS))
    assert addon.identify_now(None, ("10.20.1.1", 1)) == Identity("pupil", IdentitySource.SUBNET)
    moved = [{"cidr": "10.20.0.0/16", "role": "staff", "without_auth": True}]
    (tmp_path / "again").mkdir()
    configure(addon, local_config(tmp_path / "again", subnets=moved))
    assert addon.identify_now(None, ("10.20.1.1", 1)) == Identity("staff", IdentitySource.SUBNET)
    (tmp_path / "none").mkdir()
    configure(addon, local_config(tmp_path / "none", subnets=[]))
    assert addon.identify_now(None, ("10.20.1.1", 1)) == addon.identify_now(None, None)


async def test_a_tunnel_is_checked_once_and_its_requests_share_the_identity(
    addon: Identify,
) -> None:
    configure(addon, DEMO)
    connect = make_flow(auth=basic("socialmedia1", "socialmedia1-demo"), connect=True)
    await addon.http_connect(connect)
    inside = make_flow(client=connect.client_conn)  # a request inside the tunnel: no header
    await addon.requestheaders(inside)
    assert identity_of(inside) == identity_of(connect)
    assert identity_of(inside) is not None
    assert addon.stats.directory_lookups == 1
    addon.client_disconnected(connect.client_conn)
    after = make_flow(client=connect.client_conn)
    await addon.requestheaders(after)
    assert challenged(after)


async def test_plain_http_uses_the_cache_not_the_directory(addon: Identify) -> None:
    configure(addon, DEMO)
    for _ in range(3):
        flow = make_flow(auth=basic("pupil1", "pupil1-demo"))
        await addon.requestheaders(flow)
        assert identity_of(flow) is not None
    for _ in range(2):
        await addon.requestheaders(wrong := make_flow(auth=basic("pupil1", "nope")))
        assert challenged(wrong)
    assert addon.stats.directory_lookups == 2  # one sign-in, one refusal; the rest cached
    assert addon.stats.cache_hits == 3


async def test_simultaneous_sign_ins_ask_the_directory_once(addon: Identify) -> None:
    configure(addon, DEMO)
    flows = [make_flow(auth=basic("teacher1", "teacher1-demo")) for _ in range(6)]
    await asyncio.gather(*(addon.requestheaders(flow) for flow in flows))
    assert {identity_of(flow) for flow in flows} == {
        Identity("staff", IdentitySource.LOCAL, "teacher1", frozenset({"Staff", "Teachers-Year5"}))
    }
    assert addon.stats.directory_lookups == 1


async def test_a_positive_answer_expires_after_its_ttl(addon: Identify, tmp_path: Path) -> None:
    configure(addon, local_config(tmp_path, cache={"positive_seconds": 60}))
    now = [1000.0]
    addon.clock = lambda: now[0]
    for at in (1000.0, 1059.0, 1061.0):
        now[0] = at
        await addon.requestheaders(make_flow(auth=basic("it1", "it1-demo")))
    assert addon.stats.directory_lookups == 2


async def test_an_earlier_addons_answer_is_left_alone(addon: Identify) -> None:
    configure(addon, DEMO)
    flow = make_flow(auth=basic("pupil1", "wrong"))
    flow.response = http.Response.make(200, b"PAC file")
    await addon.requestheaders(flow)
    assert flow.response.status_code == 200
    assert identity_of(flow) is None
    assert "Proxy-Authorization" not in flow.request.headers
    assert addon.stats.directory_lookups == 0


async def test_an_error_inside_the_hook_fails_closed(addon: Identify) -> None:
    configure(addon, DEMO)

    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    addon.clock = broken_clock
    # Credentials nobody could check are asked for again (finding 11: never the default role).
    flow = make_flow(auth=basic("teacher1", "teacher1-demo"), connect=True)
    await addon.http_connect(flow)
    assert challenged(flow)
    assert identity_of(flow) is None
    assert "Proxy-Authorization" not in flow.request.headers
    assert addon.stats.identify_errors == 1
    # Without credentials (a transparent client), the most restrictive role.
    plain = make_flow(mode="transparent", connect=True)
    addon._setup = dataclasses.replace(
        addon._setup, config=dataclasses.replace(addon._setup.config, subnets=())
    )
    addon._identify = broken_identify  # type: ignore[method-assign]
    await addon.http_connect(plain)
    assert identity_of(plain) == DEFAULT
    inside = make_flow(client=plain.client_conn)
    await addon.requestheaders(inside)
    assert identity_of(inside) == DEFAULT


async def broken_identify(flow: http.HTTPFlow) -> Identity:
    raise RuntimeError("identify broke")


async def test_a_bad_configuration_is_refused_and_the_running_one_kept(
    addon: Identify, tmp_path: Path
) -> None:
    configure(addon, DEMO)
    bad = tmp_path / "identity.yaml"
    bad.write_text("groups_to_roles: [{group: Staff, role: Staff}]\ncolour: blue\n")
    with pytest.raises(exceptions.OptionsError) as raised:
        configure(addon, bad)
    assert str(raised.value).splitlines() == [
        "identity.yaml: groups_to_roles[0].role: 'Staff' is not a role name "
        "(lower case letters, digits, underscores)",
        "identity.yaml: colour: unknown setting (check the spelling)",
    ]
    flow = make_flow(auth=basic("teacher1", "teacher1-demo"))
    await addon.requestheaders(flow)
    found = identity_of(flow)
    assert found is not None
    assert found.role == "staff"


# --- against a real slapd --------------------------------------------------------------------


@pytest.mark.ldap
async def test_ldap_sign_in_gives_role_and_groups(
    addon: Identify, shared_slapd: SlapdServer, tmp_path: Path
) -> None:
    configure(addon, shared_slapd.write_identity_config(tmp_path))
    flow = make_flow(auth=basic("pupil1", "pupil1-pass"), connect=True)
    await addon.http_connect(flow)
    assert identity_of(flow) == Identity(  # with their entry's DN, for a school's OU
        "pupil",
        IdentitySource.DIRECTORY,
        "pupil1",
        frozenset({"Pupils", "Year5"}),
        f"uid=pupil1,{PEOPLE_DN}",
    )
    wrong = make_flow(auth=basic("pupil1", "pupil2-pass"), connect=True)
    await addon.http_connect(wrong)
    assert challenged(wrong)
    unmapped = make_flow(auth=basic("visitor1", "visitor1-pass"))
    await addon.requestheaders(unmapped)
    assert identity_of(unmapped) == Identity(
        None, IdentitySource.DIRECTORY, "visitor1", dn=f"uid=visitor1,{PEOPLE_DN}"
    )


@pytest.mark.ldap
async def test_ldap_down_mid_run_only_the_exact_pairs_verified_before_get_in(
    addon: Identify, slapd_server: SlapdServer, tmp_path: Path
) -> None:
    # Finding 11: while the directory was down, any credentials got the default role.
    configure(addon, slapd_server.write_identity_config(tmp_path))
    now = [0.0]
    addon.clock = lambda: now[0]
    teacher = basic("teacher1", "teacher1-pass")
    await addon.requestheaders(first := make_flow(auth=teacher))
    staff = Identity(
        "staff",
        IdentitySource.DIRECTORY,
        "teacher1",
        frozenset({"Staff"}),
        f"uid=teacher1,{PEOPLE_DN}",
    )
    assert identity_of(first) == staff

    slapd_server.stop()
    await addon.requestheaders(cached := make_flow(auth=teacher))
    assert identity_of(cached) == staff  # from the cache: the directory was not asked
    assert (addon.stats.directory_lookups, addon.stats.directory_errors) == (1, 0)

    await addon.requestheaders(new := make_flow(auth=basic("socialmedia1", "socialmedia1-pass")))
    assert challenged(new)  # could not be checked: asked again, never let in anonymously
    assert identity_of(new) is None
    assert addon.stats.directory_errors == 1
    for auth in (basic("nobody", "x"), basic("teacher1", "a-guess"), basic("pupil1", "pw")):
        await addon.requestheaders(guess := make_flow(auth=auth))
        assert challenged(guess)
        assert identity_of(guess) is None
    assert addon.stats.directory_lookups == 2  # the directory is not waited on again at once

    now[0] = 3600.0  # past the positive TTL while the directory is still down
    await addon.requestheaders(stale := make_flow(auth=teacher))
    assert identity_of(stale) == staff  # the exact user and password verified before
    assert addon.stats.directory_errors == 2
    assert addon.stats.unverified == 4

    slapd_server.start()
    now[0] = 7200.0  # past the short hold of answers given while the directory was down
    await addon.requestheaders(back := make_flow(auth=basic("socialmedia1", "socialmedia1-pass")))
    found = identity_of(back)
    assert found is not None
    assert found.role == "social_media_manager"


# --- one name, and no password guessing (findings 3 and 6) ------------------------------------


@pytest.mark.parametrize("typed", ["PUPIL1", "ｐｕｐｉｌ１", " Pupil1 "])
async def test_the_subjects_user_is_the_canonical_name(addon: Identify, typed: str) -> None:
    configure(addon, DEMO)
    await addon.requestheaders(flow := make_flow(auth=basic(typed, "pupil1-demo")))
    found = identity_of(flow)
    assert found is not None
    assert found.user == "pupil1"


async def test_a_user_name_with_control_characters_is_not_tried(addon: Identify) -> None:
    configure(addon, DEMO)
    await addon.requestheaders(flow := make_flow(auth=basic("pupil\x001", "pupil1-demo")))
    assert challenged(flow)
    assert addon.stats.directory_lookups == 0


def retry_after(flow: http.HTTPFlow) -> int:
    assert challenged(flow)
    assert flow.response is not None
    return int(flow.response.headers.get("Retry-After", "0"))


async def test_guessing_stops_after_three_wrong_passwords_and_the_directory_is_not_asked(
    addon: Identify,
) -> None:
    # Finding 3: ~930 guesses a minute, the right password accepted at the end.
    configure(addon, DEMO)
    for n in range(3):
        await addon.requestheaders(flow := make_flow(auth=basic("teacher1", f"guess{n}")))
        assert retry_after(flow) == 0
    for auth in (
        basic("teacher1", "guess3"),
        basic("teacher1", "teacher1-demo"),
        basic("ｔｅａｃｈｅｒ１", "teacher1-demo"),
        basic("TEACHER1", "guess4"),
    ):
        await addon.requestheaders(flow := make_flow(auth=auth, peer="192.0.2.77"))
        assert 500 < retry_after(flow) <= 600, auth
        assert flow.response is not None
        assert b"Too many wrong passwords" in flow.response.content
    assert addon.stats.directory_lookups == 3
    assert addon.stats.throttled == 4
    # Someone else from the same room is not affected.
    await addon.requestheaders(other := make_flow(auth=basic("pupil1", "pupil1-demo")))
    assert identity_of(other) is not None


async def test_people_signed_in_before_are_not_locked_out_by_a_guesser(
    addon: Identify, tmp_path: Path
) -> None:
    configure(addon, local_config(tmp_path, cache={"positive_seconds": 60}))
    now = [0.0]
    addon.clock = lambda: now[0]
    await addon.requestheaders(flow := make_flow(auth=basic("teacher1", "teacher1-demo")))
    assert identity_of(flow) is not None
    for n in range(5):
        await addon.requestheaders(
            make_flow(auth=basic("teacher1", f"guess{n}"), peer="192.0.2.66")
        )
    now[0] = 120.0  # her cached sign-in has expired; her name is backed off
    await addon.requestheaders(again := make_flow(auth=basic("teacher1", "teacher1-demo")))
    found = identity_of(again)
    assert found is not None
    assert found.user == "teacher1"


async def test_one_address_trying_many_names_is_backed_off(addon: Identify) -> None:
    configure(addon, DEMO)
    ctx.options.update(schoolgate_signin_failures_per_address=4)
    for name in ("teacher1", "dsl1", "it1", "bursar1"):
        await addon.requestheaders(flow := make_flow(auth=basic(name, "guess"), peer="192.0.2.66"))
        assert retry_after(flow) == 0
    await addon.requestheaders(
        flow := make_flow(auth=basic("pupil1", "pupil1-demo"), peer="192.0.2.66")
    )
    assert retry_after(flow) > 0
    await addon.requestheaders(
        flow := make_flow(auth=basic("pupil1", "pupil1-demo"), peer="192.0.2.67")
    )
    assert identity_of(flow) is not None


def test_bad_throttle_options_are_refused(addon: Identify) -> None:
    with pytest.raises(exceptions.OptionsError, match="at least 1"):
        ctx.options.update(schoolgate_signin_failures_per_user=0)


async def test_every_worker_and_replica_shares_the_count(database_url: str) -> None:
    upgrade(database_url)
    for worker in range(4):  # four gateway processes, one after another, one database
        identify = Identify()
        with taddons.context(identify):
            configure(identify, DEMO)
            ctx.options.update(schoolgate_database_url=database_url)
            await identify.requestheaders(
                flow := make_flow(auth=basic("dsl1", f"g{worker}"), peer=f"192.0.2.{worker + 1}")
            )
            assert (retry_after(flow) > 0) is (worker == 3), worker
        identify.done()
