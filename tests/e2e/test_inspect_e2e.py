"""Per-role inspection, SafeSearch and search terms through a real gateway (issue 12): pupils
(`inspect: all`, safe search, YouTube strict) against staff (`inspect: listed`), with the search
engines' names routed to the loopback origins, which record the headers they receive."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import tests.support.gateway as harness
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow, EventRow
from tests.support.gateway import Gateway, running_gateway, wait_for, write_identity, write_policy

ENGINE_HOSTS = (
    "bing.com",
    "duckduckgo.com",
    "yahoo.com",
    "search.yahoo.com",
    "ecosia.org",
    "youtube.com",
    "google.co.uk",
    "google.fr",
    "push.apple.com",
    "startpage.com",
)
POLICY_TAIL = """
inspection:
  pupil: {inspect: all, safe_search: true, youtube: strict}
  staff: {inspect: listed}
search:
  alert_terms: [worrying.terms]
# many attempts here, by one pupil: no sanction may stop the later tests
circumvention: {threshold: {attempts: 1000, within_minutes: 1}}
"""


@dataclass
class Received:
    host: str
    path: str
    headers: dict[str, str]


@dataclass
class Setup:
    gateway: Gateway
    db: str
    received: list[Received]
    pushed: list[dict[str, Any]] = field(default_factory=list)

    def seen(self, host: str, path_start: str) -> list[Received]:
        return [
            r
            for r in list(self.received)
            if r.host.split(":")[0] == host and r.path.startswith(path_start)
        ]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("inspect")
    db = f"sqlite:///{folder / 'schoolgate.db'}"
    upgrade(db)
    policy = folder / "policy.yaml"
    write_policy(policy, in_break=False)
    pinned = "  pinned_apps: {lists: [pinned_apps.txt], sensitive: true}\n"
    text = policy.read_text().replace("categories:\n", "categories:\n" + pinned, 1)
    policy.write_text(text + POLICY_TAIL)
    (folder / "worrying.terms").write_text("# topic: self_harm\nself harm\nhurt myself\n")
    received: list[Received] = []
    real_start_origin = harness.start_origin

    def recording_origin(ca: harness.OriginCA | None) -> harness.Origin:
        origin = real_start_origin(ca)
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
                super().do_GET()

        origin.server.RequestHandlerClass = Recording
        return origin

    pushed: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            pushed.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    push = folder / "push.yaml"
    push.write_text(f"webhook: {{url: 'http://127.0.0.1:{hook.server_address[1]}/hook'}}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(harness, "ORIGIN_HOSTS", (*harness.ORIGIN_HOSTS, *ENGINE_HOSTS))
        mp.setattr(harness, "start_origin", recording_origin)
        identity = write_identity(folder / "identity")
        with running_gateway(
            folder / "gw",
            policy=policy,
            identity=identity,
            extra_args=[
                "--set",
                f"schoolgate_database_url={db}",
                "--set",
                f"schoolgate_alert_push={push}",
            ],
        ) as gw:
            yield Setup(gw, db, received, pushed)
    hook.shutdown()


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


def query_of(received: Received) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(received.path.partition("?")[2])


# --- SafeSearch: the origin sees the enforced parameter or header -----------------------------


@pytest.mark.parametrize(
    ("url", "host", "path", "param", "value"),
    [
        (
            "https://www.google.co.uk/search?q=cats&safe=off",
            "www.google.co.uk",
            "/search",
            "safe",
            "active",
        ),
        ("https://www.google.fr/search?q=chats", "www.google.fr", "/search", "safe", "active"),
        (
            "https://www.google.com/search?q=dogs&safe=images",
            "www.google.com",
            "/search",
            "safe",
            "active",
        ),
        (
            "https://www.bing.com/search?q=cats&adlt=off",
            "www.bing.com",
            "/search",
            "adlt",
            "strict",
        ),
        (
            "https://www.bing.com/images/search?q=cats",
            "www.bing.com",
            "/images/search",
            "adlt",
            "strict",
        ),
        ("https://duckduckgo.com/?q=cats&kp=-2", "duckduckgo.com", "/?", "kp", "1"),
        ("https://html.duckduckgo.com/html/?q=cats", "html.duckduckgo.com", "/html/", "kp", "1"),
        ("https://search.yahoo.com/search?p=cats&vm=p", "search.yahoo.com", "/search", "vm", "r"),
        ("https://uk.search.yahoo.com/search?p=cats", "uk.search.yahoo.com", "/search", "vm", "r"),
    ],
)
def test_pupil_searches_reach_the_engine_with_safe_search_forced(
    setup: Setup, url: str, host: str, path: str, param: str, value: str
) -> None:
    before = len(setup.seen(host, path))
    response = get(setup, "pupil1", url)
    assert response.status_code == 200, response.text
    arrived = setup.seen(host, path)[before:]
    assert arrived, f"the origin saw no request for {host}{path}"
    assert query_of(arrived[-1]).get(param) == [value]


@pytest.mark.parametrize(
    "url",
    ["https://www.youtube.com/results?search_query=cats", "https://m.youtube.com/watch?v=abc"],
)
def test_pupil_youtube_requests_carry_restricted_mode(setup: Setup, url: str) -> None:
    host = httpx.URL(url).host
    before = len(setup.seen(host, "/"))
    response = get(setup, "pupil1", url, headers={"YouTube-Restrict": "Off"})
    assert response.status_code == 200
    arrived = setup.seen(host, "/")[before:]
    assert arrived
    assert arrived[-1].headers.get("youtube-restrict") == "Strict"


def test_staff_searches_pass_through_unchanged(setup: Setup) -> None:
    # staff: inspect listed, no safe search: google.co.uk is relayed, not decrypted
    before = len(setup.seen("www.google.co.uk", "/search"))
    response = get(
        setup, "staff1", "https://www.google.co.uk/search?q=lesson&safe=off", trust="origin"
    )
    assert response.status_code == 200
    arrived = setup.seen("www.google.co.uk", "/search")[before:]
    assert arrived
    assert query_of(arrived[-1]).get("safe") == ["off"]


@pytest.mark.parametrize(
    "url",
    ["https://www.ecosia.org/search?q=cats", "https://www.startpage.com/sp/search?query=cats"],
)
def test_a_search_that_cannot_be_made_safe_is_blocked_for_pupils(setup: Setup, url: str) -> None:
    host = httpx.URL(url).host
    response = get(setup, "pupil1", url)
    assert response.status_code == 403
    assert "safe search" in response.text
    assert not setup.seen(host, "/")
    staff = get(setup, "staff1", url, trust="both")
    assert staff.status_code == 200  # staff have no forced safe search


# --- inspection per role ----------------------------------------------------------------------


def test_pupil_fronting_on_an_unlisted_host_is_blocked_staff_passes_through(setup: Setup) -> None:
    before = len(setup.seen("x.com", "/fronted"))
    pupil = get(setup, "pupil1", "https://learning.test/fronted", headers={"Host": "x.com"})
    assert pupil.status_code == 403
    assert not setup.seen("x.com", "/fronted")[before:]
    staff = get(
        setup,
        "staff1",
        "https://learning.test/fronted-staff",
        headers={"Host": "x.com"},
        trust="origin",
    )  # relayed untouched: the origin's own certificate
    assert staff.status_code == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", {}),
        ("/resolve?name=x.com", {"Accept": "application/dns-json"}),
        ("/browse.php?u=https%3A%2F%2Fx.com%2F&b=4", {}),
        ("/index.php?q=aHR0cHM6Ly94LmNvbS8%3D&hl=3ed", {}),
        ("/cgi-bin/nph-proxy.cgi/010110A/https/x.com/", {}),
        ("/masque", {"Upgrade": "connect-udp", "Connection": "Upgrade"}),
    ],
)
def test_pupil_circumvention_on_an_unlisted_host_is_seen(
    setup: Setup, path: str, headers: dict[str, str]
) -> None:
    response = get(setup, "pupil1", f"https://learning.test{path}", headers=headers)
    assert response.status_code == 403
    assert not setup.seen("learning.test", path.split("?")[0])


def test_staff_unlisted_hosts_are_not_decrypted(setup: Setup) -> None:
    response = get(
        setup, "staff1", "https://learning.test/browse.php?u=https%3A%2F%2Fx.com", trust="origin"
    )
    assert response.status_code == 200  # relayed: only the origin's certificate is trusted


@pytest.mark.parametrize("url", ["https://bank.test/account", "https://push.apple.com/push"])
def test_never_decrypted_for_pupils_either(setup: Setup, url: str) -> None:
    response = get(setup, "pupil1", url, trust="origin")
    assert response.status_code == 200


def test_pupil_ordinary_unlisted_site_is_decrypted_and_allowed(setup: Setup) -> None:
    with pytest.raises(httpx.ConnectError):
        get(setup, "pupil1", "https://learning.test/page", trust="origin")  # not the origin's cert
    assert get(setup, "pupil1", "https://learning.test/page").status_code == 200


# --- search terms and safeguarding alerts -----------------------------------------------------


def rows(db: str, model: type[Any]) -> list[Any]:
    engine = make_engine(db)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(model)))
    finally:
        engine.dispose()


def test_a_worrying_search_raises_an_alert_with_the_term_user_time_and_page(setup: Setup) -> None:
    response = get(setup, "pupil1", "https://www.google.co.uk/search?q=how+to+Self-Harm")
    assert response.status_code == 200
    wait_for(
        lambda: any(a.kind == "safeguarding_search" for a in rows(setup.db, AlertRow)),
        what="a safeguarding alert",
    )
    alert = next(a for a in rows(setup.db, AlertRow) if a.kind == "safeguarding_search")
    details = alert.details if isinstance(alert.details, dict) else json.loads(alert.details)
    assert alert.user == "pupil1"
    assert alert.at is not None
    assert details["search_terms"] == "how to Self-Harm"
    assert details["matched"] == ["self harm"]
    assert details["page"] == "www.google.co.uk/search"
    assert "Self-Harm" in alert.summary
    # self-harm is urgent: pushed at once to the school's webhook, and marked as pushed
    wait_for(
        lambda: any(p.get("kind") == "safeguarding_search" for p in setup.pushed),
        what="the alert pushed to the webhook",
    )
    sent = next(p for p in setup.pushed if p.get("kind") == "safeguarding_search")
    assert sent["user"] == "pupil1"
    wait_for(
        lambda: any(
            a.pushed_at is not None
            for a in rows(setup.db, AlertRow)
            if a.kind == "safeguarding_search"
        ),
        what="the alert marked pushed",
    )


def test_an_ordinary_search_is_recorded_without_an_alert(setup: Setup) -> None:
    response = get(setup, "pupil1", "https://www.bing.com/search?q=volcano+facts")
    assert response.status_code == 200, response.text
    wait_for(
        lambda: any(e.search_terms == "volcano facts" for e in rows(setup.db, EventRow)),
        what="the search terms in the events",
    )
    alerts = [a for a in rows(setup.db, AlertRow) if a.kind == "safeguarding_search"]
    assert all("volcano" not in a.summary for a in alerts)


@pytest.mark.parametrize(
    ("path", "rule", "technique"),
    [
        ("/glype/browse.php?u=https%3A%2F%2Finstagram.com%2F&b=4", "web-proxy-script", "web_proxy"),
        ("/.well-known/masque/udp/192.0.2.1/53/", "tunnel-upgrade", "tunnel_protocol"),
    ],
)
def test_signatures_on_unlisted_hosts_are_recorded_as_attempts(
    setup: Setup, path: str, rule: str, technique: str
) -> None:
    assert get(setup, "pupil1", f"https://learning.test{path}").status_code == 403

    def recorded() -> bool:
        return any(
            e.rule == rule
            and e.technique == technique
            and e.user == "pupil1"
            and e.host == "learning.test"
            for e in rows(setup.db, EventRow)
        )

    wait_for(recorded, what=f"an attempt event for {rule}")
