"""The search engine table, the safe-search mechanisms and the web-proxy / tunnel signatures
(pure functions; the gateway tests are in tests/e2e/test_inspect_e2e.py)."""

from __future__ import annotations

import pytest

from schoolgate.policy.inspection import SearchTerm, YouTubeMode
from schoolgate.proxy_addons.proxy_scripts import proxy_script_evidence, tunnel_upgrade_evidence
from schoolgate.proxy_addons.safesearch import (
    alert_severity,
    alert_summary,
    is_search_host,
    is_youtube_host,
    safe_query,
    unsafe_search_page,
    youtube_header,
)
from schoolgate.proxy_addons.search_terms import (
    CANNOT_ENFORCE,
    ENGINES,
    engine_terms,
    parse_sites,
    search_engine,
    search_terms,
)
from schoolgate.store.models import AlertSeverity


@pytest.mark.parametrize(
    ("host", "path", "name", "safe"),
    [
        ("www.google.co.uk", "/search", "google", (("safe", "active"),)),
        ("www.google.com.au", "/search", "google", (("safe", "active"),)),
        ("www.google.de", "/images", "google", (("safe", "active"),)),
        ("www.bing.com", "/images/search", "bing", (("adlt", "strict"),)),
        ("duckduckgo.com", "/", "duckduckgo", (("kp", "1"),)),
        ("html.duckduckgo.com", "/html/", "duckduckgo", (("kp", "1"),)),
        ("uk.search.yahoo.com", "/search", "yahoo", (("vm", "r"),)),
    ],
)
def test_every_listed_engine_has_its_documented_safe_parameter(
    host: str, path: str, name: str, safe: tuple[tuple[str, str], ...]
) -> None:
    engine = search_engine(host, path)
    assert engine is not None
    assert engine.name == name
    assert safe_query(engine) == safe


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("www.ecosia.org", "/search"),
        ("www.startpage.com", "/sp/search"),
        ("search.brave.com", "/search"),
        ("yandex.ru", "/search/"),
    ],
)
def test_engines_without_a_way_to_force_safe_search_say_so(host: str, path: str) -> None:
    engine = search_engine(host, path)
    assert engine is not None
    assert engine.safe == CANNOT_ENFORCE
    assert not engine.enforceable


@pytest.mark.parametrize(
    ("host", "path", "query", "terms"),
    [
        ("www.google.co.uk", "/search", "q=volcano+facts&safe=active", "volcano facts"),
        ("www.youtube.com", "/results", "search_query=cats", "cats"),
        ("search.yahoo.com", "/search", "p=rivers", "rivers"),
        ("www.bbc.co.uk", "/search", "q=weather", "weather"),
        ("en.wikipedia.org", "/w/index.php", "search=Roman+Britain", "Roman Britain"),
        ("www.google.co.uk", "/maps", "q=leeds", None),
        ("notgoogle.example", "/search", "q=x", None),
    ],
)
def test_search_terms_are_read_from_the_data_file(
    host: str, path: str, query: str, terms: str | None
) -> None:
    assert search_terms(host, path, query) == terms


def test_a_bad_engine_table_names_every_bad_entry() -> None:
    text = (
        "engines:\n  - {name: a, host: 'a\\.com$', path: '^/s$', params: [q], safe: maybe}\n"
        "  - {name: b, host: '(', path: '^/$', params: [q]}\n  - {name: c}\n"
    )
    with pytest.raises(ValueError, match=r"engines\[0\].*maybe") as caught:
        parse_sites(text, source="s.yaml")
    assert "engines[1]" in str(caught.value)
    assert "engines[2]" in str(caught.value)


def test_engine_terms_cap_and_collapse() -> None:
    engine = search_engine("www.bing.com", "/search")
    assert engine is not None
    assert engine_terms(engine, "q=" + "a+" * 1000) is not None
    assert len(engine_terms(engine, "q=" + "ab+" * 1000) or "") == 500
    assert engine_terms(engine, "") is None


def test_every_engine_host_is_decrypted_for_safe_search_roles() -> None:
    assert all(e.words for e in ENGINES)
    for host in (
        "www.google.fr",
        "www.bing.com",
        "duckduckgo.com",
        "search.yahoo.com",
        "www.ecosia.org",
        "www.youtube.com",
        "youtubei.googleapis.com",
    ):
        assert is_search_host(host), host
    assert not is_search_host("learning.test")


def test_youtube_restricted_mode_header() -> None:
    assert youtube_header(YouTubeMode.STRICT) == "Strict"
    assert youtube_header(YouTubeMode.MODERATE) == "Moderate"
    assert youtube_header(YouTubeMode.OFF) is None
    assert is_youtube_host("m.youtube.com")
    assert is_youtube_host("www.youtube-nocookie.com")
    assert not is_youtube_host("notyoutube.com")


def test_the_unsafe_search_page_is_plain_and_escaped() -> None:
    page = unsafe_search_page("ecosia", "<b>ecosia.org</b>")
    assert page.status_code == 403
    text = page.get_text() or ""
    assert "safe search" in text
    assert "<b>ecosia" not in text


def test_alert_words_and_severity() -> None:
    urgent = (SearchTerm("kill myself", "suicide"),)
    assert alert_severity(urgent) is AlertSeverity.HIGH
    assert alert_severity((SearchTerm("isis", "extremism"),)) is AlertSeverity.MEDIUM
    summary = alert_summary("pupil1", "i want to kill myself", urgent, "google")
    assert summary == 'pupil1 searched google for "i want to kill myself" (suicide)'


@pytest.mark.parametrize(
    ("path", "query", "script"),
    [
        ("/browse.php", "u=https%3A%2F%2Fx.com%2F&b=4", "glype"),
        ("/proxy/browse.php", "u=aHR0cHM6Ly94LmNvbS8%3D&b=4", "glype"),
        ("/includes/process.php", "action=update", "glype"),
        ("/index.php", "q=aHR0cHM6Ly94LmNvbS8%3D&hl=3ed", "phproxy"),
        ("/index.php", "q=https%3A%2F%2Fwww.tiktok.com", "phproxy"),
        ("/cgi-bin/nph-proxy.cgi/010110A/https/x.com/", "", "cgiproxy"),
        ("/nph-proxy.pl/en/00/http/x.com/", "", "cgiproxy"),
        ("/miniProxy.php", "https://x.com/", "miniproxy"),
        ("/", "__cpo=aHR0cHM6Ly94LmNvbQ", "croxyproxy"),
    ],
)
def test_web_proxy_scripts_are_recognised_by_their_url_shapes(
    path: str, query: str, script: str
) -> None:
    found = proxy_script_evidence(path, query)
    assert found is not None
    assert found["script"] == script


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/index.php", "q=volcanoes"),  # an ordinary site search
        ("/browse.php", "category=books"),
        ("/search", "q=https://x.com"),  # a search for a URL is not a proxy
        ("/", "q=https%3A%2F%2Fx.com&hl=en"),
        ("/article", ""),
    ],
)
def test_ordinary_pages_are_not_web_proxies(path: str, query: str) -> None:
    assert proxy_script_evidence(path, query) is None


@pytest.mark.parametrize(
    ("path", "upgrade", "value"),
    [
        ("/masque", "connect-udp", "connect-udp"),
        ("/", "connect-ip", "connect-ip"),
        ("/.well-known/masque/udp/1.1.1.1/53/", "", "/.well-known/masque/"),
        ("/", "my-tunnel/1", "my-tunnel"),
    ],
)
def test_tunnel_upgrades_are_recognised(path: str, upgrade: str, value: str) -> None:
    found = tunnel_upgrade_evidence(path, upgrade)
    assert found is not None
    assert found["value"] == value


@pytest.mark.parametrize("upgrade", ["", "websocket", "WebSocket", "h2c"])
def test_websockets_are_not_tunnel_upgrades(upgrade: str) -> None:
    assert tunnel_upgrade_evidence("/chat", upgrade) is None
