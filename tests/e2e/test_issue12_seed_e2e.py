"""Issue 12's promises, each through a real gateway running the shipped seed policy
(policy/data/seed.yaml, as it is: pupils `inspect: all` with safe search and YouTube strict,
staff `listed`, the seed's safeguarding terms, `on_threshold` left to its default), with the
search engines' and a bank's names routed to the loopback origins, which record what arrives.
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.support.gateway as harness
from schoolgate.store.db import upgrade
from schoolgate.store.models import (
    AlertRow,
    CircumventionAttemptRow,
    EventRow,
    SanctionRow,
    SanctionState,
)
from tests.e2e.test_inspect_e2e import Received, query_of, rows
from tests.e2e.test_refusals_e2e import events_for, recorded_with, send_raw
from tests.support.gateway import (
    PASSWORD,
    Gateway,
    running_gateway,
    wait_for,
    write_identity,
)

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"
PAGES = Path(__file__).resolve().parents[1] / "proxy_addons" / "proxy_pages"
REAL_START_ORIGIN = harness.start_origin
EXTRA_HOSTS = (
    "google.co.uk",
    "bing.com",
    "duckduckgo.com",
    "search.yahoo.com",
    "yahoo.com",
    "youtube.com",
    "ecosia.org",
    "barclays.co.uk",
)
ACT_SECONDS = 2


@dataclass
class Setup:
    gateway: Gateway
    db: str
    received: list[Received]

    def seen(self, host: str, path_start: str) -> list[Received]:
        return [
            r
            for r in list(self.received)
            if r.host.split(":")[0] == host and r.path.startswith(path_start)
        ]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("issue12-seed")
    db = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(db)
    received: list[Received] = []

    def recording_origin(ca: harness.OriginCA | None) -> harness.Origin:
        origin = REAL_START_ORIGIN(ca)
        base: Any = origin.server.RequestHandlerClass

        class Recording(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:
                received.append(
                    Received(
                        self.headers.get("Host", ""),
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
                if self.path.startswith("/glype/"):
                    body = (PAGES / "held_out" / "glypestrap.html").read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

        origin.server.RequestHandlerClass = Recording
        return origin

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(harness, "ORIGIN_HOSTS", (*harness.ORIGIN_HOSTS, *EXTRA_HOSTS))
        mp.setattr(harness, "start_origin", recording_origin)
        with running_gateway(
            folder / "gw",
            policy=SEED,
            identity=write_identity(folder / "identity"),
            extra_args=[
                "--set",
                f"schoolgate_database_url={db}",
                "--set",
                f"schoolgate_act_seconds={ACT_SECONDS}",
            ],
        ) as gw:
            yield Setup(gw, db, received)


def get(
    setup: Setup,
    user: str,
    url: str,
    *,
    trust: str = "gateway",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    with setup.gateway.client(user, trust=trust) as client:
        return client.get(url, headers=headers)


# --- inspection by role -----------------------------------------------------------------------


def test_fronting_on_an_unlisted_host_pupil_blocked_staff_relayed(setup: Setup) -> None:
    assert (
        get(setup, "pupil1", "https://learning.test/f", headers={"Host": "x.com"}).status_code
        == 403
    )
    assert not setup.seen("x.com", "/f")
    staff = get(
        setup, "staff1", "https://learning.test/g", headers={"Host": "x.com"}, trust="origin"
    )  # relayed unread: the origin's own certificate
    assert staff.status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "technique"),
    [
        ("/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", {}, "doh_content"),
        ("/resolve?name=x.com", {"Accept": "application/dns-json"}, "doh_content"),
        ("/browse.php?u=https%3A%2F%2Fx.com%2F&b=4", {}, "web_proxy"),
        ("/glype/index.php", {}, "web_proxy"),  # by its form, on an ordinary URL
        ("/masque", {"Upgrade": "connect-udp", "Connection": "Upgrade"}, "protocol_upgrade"),
        ("/.well-known/masque/udp/192.0.2.1/53/", {}, "tunnel_protocol"),
    ],
)
def test_circumvention_on_an_unlisted_host_is_blocked_and_recorded_once(
    setup: Setup, path: str, headers: dict[str, str], technique: str
) -> None:
    assert get(setup, "pupil1", f"https://learning.test{path}", headers=headers).status_code == 403
    bare = path.split("?")[0]

    def attempts() -> list[CircumventionAttemptRow]:
        events = {e.id for e in rows(setup.db, EventRow) if e.path == bare and e.verdict == "block"}
        return [a for a in rows(setup.db, CircumventionAttemptRow) if a.event_id in events]

    wait_for(lambda: bool(attempts()), what=f"the attempt at {path}")
    found = attempts()
    assert len(found) == 1
    assert found[0].technique == technique


def test_banking_is_never_decrypted_for_pupils(setup: Setup) -> None:
    assert get(setup, "pupil1", "https://www.barclays.co.uk/", trust="origin").status_code == 200


# --- safe search, search terms --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "param", "value"),
    [
        ("https://www.google.co.uk/search?q=cats&safe=off", "www.google.co.uk", "safe", "active"),
        ("https://www.bing.com/search?q=cats", "www.bing.com", "adlt", "strict"),
        ("https://duckduckgo.com/?q=cats", "duckduckgo.com", "kp", "1"),
        ("https://search.yahoo.com/search?p=cats", "search.yahoo.com", "vm", "r"),
    ],
)
def test_pupil_searches_are_made_safe(
    setup: Setup, url: str, host: str, param: str, value: str
) -> None:
    before = len(setup.seen(host, "/"))
    assert get(setup, "pupil1", url).status_code == 200
    arrived = setup.seen(host, "/")[before:]
    assert arrived
    assert query_of(arrived[-1]).get(param) == [value]


def test_youtube_is_restricted_for_pupils(setup: Setup) -> None:
    before = len(setup.seen("www.youtube.com", "/"))
    assert (
        get(
            setup,
            "pupil1",
            "https://www.youtube.com/results?search_query=volcano",
            headers={"YouTube-Restrict": "Off"},
        ).status_code
        == 200
    )
    assert setup.seen("www.youtube.com", "/")[before:][-1].headers["youtube-restrict"] == "Strict"


def test_a_search_that_cannot_be_made_safe_is_blocked_for_pupils(setup: Setup) -> None:
    answer = get(setup, "pupil1", "https://www.ecosia.org/search?q=cats")
    assert answer.status_code == 403
    assert "safe search" in answer.text


def test_search_terms_are_kept_and_a_seed_term_alerts_the_dsl(setup: Setup) -> None:
    assert get(setup, "pupil1", "https://www.bing.com/search?q=volcano+homework").status_code == 200
    assert (
        get(setup, "pupil1", "https://www.google.co.uk/search?q=i+want+to+kill+myself").status_code
        == 200
    )
    wait_for(
        lambda: any(e.search_terms == "volcano homework" for e in rows(setup.db, EventRow)),
        what="the search terms recorded",
    )
    wait_for(
        lambda: any(
            a.kind == "safeguarding_search" and a.user == "pupil1" for a in rows(setup.db, AlertRow)
        ),
        what="the safeguarding alert",
    )


# --- fair counting --------------------------------------------------------------------------------


def test_one_visit_is_one_attempt_and_the_threshold_only_recommends(setup: Setup) -> None:
    def counted() -> list[CircumventionAttemptRow]:
        return [
            a
            for a in rows(setup.db, CircumventionAttemptRow)
            if a.host.endswith("croxyproxy.com") and a.user == "staff1" and a.counted
        ]

    # one visit: the page, its favicon and a reload, at once
    with setup.gateway.client("staff1") as client:
        assert client.get("https://www.croxyproxy.com/").status_code == 403
        client.get("https://www.croxyproxy.com/favicon.ico", headers={"Sec-Fetch-Dest": "image"})
        client.get("https://www.croxyproxy.com/")
    wait_for(
        lambda: (
            len(
                [
                    a
                    for a in rows(setup.db, CircumventionAttemptRow)
                    if a.host.endswith("croxyproxy.com") and a.user == "staff1"
                ]
            )
            >= 3
        ),
        what="the visit's requests recorded",
    )
    assert len(counted()) == 1
    # two more deliberate tries, each after the act: three acts reach the seed's threshold
    for _ in range(2):
        time.sleep(ACT_SECONDS + 0.5)
        assert get(setup, "staff1", "https://www.croxyproxy.com/").status_code == 403
    wait_for(lambda: len(counted()) == 3, what="three acts")
    wait_for(
        lambda: any(s.user == "staff1" for s in rows(setup.db, SanctionRow)),
        what="the threshold reached",
    )
    (sanction,) = [s for s in rows(setup.db, SanctionRow) if s.user == "staff1"]
    assert sanction.state == SanctionState.RECOMMENDED  # the default: the DSL decides
    assert (
        get(setup, "staff1", "https://learning.test/still-fine", trust="origin").status_code == 200
    )  # nothing blocked by a recommendation


# --- every refusal recorded -------------------------------------------------------------------


def test_a_request_mitmproxy_refuses_is_recorded(setup: Setup) -> None:
    reply = send_raw(
        setup.gateway,
        b"GET http://pupil:hunter2@www.tiktok.com/ HTTP/1.1\r\nHost: www.tiktok.com\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 400")
    row = recorded_with(setup.db, "[redacted]@www.tiktok.com")
    assert "hunter2" not in repr(row.evidence)


def test_a_cut_handshake_to_a_blocked_host_is_recorded_once(setup: Setup) -> None:
    host = "tiktok.com"
    before = len(events_for(setup.db, host))
    auth = base64.b64encode(f"pupil1:{PASSWORD}".encode()).decode()
    with socket.create_connection(("127.0.0.1", setup.gateway.port), 10) as raw:
        raw.sendall(
            f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n"
            f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=str(setup.gateway.ca_pem))
        with context.wrap_socket(raw, server_hostname=host):
            pass  # no request: the client goes away
    wait_for(lambda: len(events_for(setup.db, host)) > before, what="the cut handshake")
    time.sleep(2)
    cut = events_for(setup.db, host)[before:]
    assert len(cut) == 1
    assert cut[0].verdict == "block"
    assert cut[0].user == "pupil1"
