"""The front door with a trust (issues 15 and 17): a real lean gateway given a trust file, and
real clients bound to each school's subnet. An allowed tunnel is spliced by the front door,
decided with the client's own school's policy; a client in no school's subnets is refused
exactly as the hooks refuse it, and nothing is spliced for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_frontdoor_e2e import door_counts
from tests.e2e.test_trust_gateway import (
    ELM,
    NOWHERE,
    OAK,
    calendar,
    client_from,
    refusal_recorded,
)
from tests.support.gateway import Gateway, free_port, noon_zone, policy_text, wait_for
from tests.support.trusts import list_text, running_trust_gateway, two_schools, write_trust

pytestmark = pytest.mark.e2e

OAK_POLICY = """\
categories:
  news: {lists: [news.txt]}
rules:
  - {name: oak-no-news, roles: all, categories: [news], action: block}
"""


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    tmp = tmp_path_factory.mktemp("door-trust")
    now = datetime.now(UTC)
    zone = noon_zone(now)
    earlier = (now - timedelta(hours=4), now - timedelta(hours=3, minutes=30))
    trust = write_trust(
        tmp,
        two_schools(oak=f"{OAK}/32", elm=f"{ELM}/32", oak_policy="oak.yaml"),
        {
            "base.yaml": policy_text(break_from=earlier[0], break_until=earlier[1], zone=zone),
            "oak.yaml": OAK_POLICY + calendar(zone, *earlier),
            "news.txt": list_text("news", "bbc.co.uk", "explode.test"),
        },
    )
    metrics = free_port()
    with running_trust_gateway(
        tmp, trust, "--set", f"schoolgate_metrics_port={metrics}", engine="lean"
    ) as gw:
        gw.metrics_port = metrics  # type: ignore[attr-defined]
        yield gw, tmp


def issuer(gw: Gateway, address: str, url: str) -> tuple[int, str]:
    """GET `url` from `address` as a signed-in member of staff: the status and who issued the
    certificate the client was shown."""
    with client_from(gw, address) as client:
        assert client.get("http://learning.test/").status_code == 200  # signs in (directory)
        response = client.get(url)
        stream = response.extensions["network_stream"]
        cert = stream.get_extra_info("ssl_object").getpeercert()
    names = dict(pair[0] for pair in cert["issuer"])
    return response.status_code, str(names.get("commonName", ""))


def test_each_schools_allowed_tunnels_are_spliced_by_the_front_door(
    trust: tuple[Gateway, Path],
) -> None:
    gw, _ = trust
    before = door_counts(gw)
    for address in (OAK, ELM):
        status, by = issuer(gw, address, "https://learning.test/")
        assert status == 200
        assert "origin" in by  # the origin's own certificate: passed through
    wait_for(
        lambda: door_counts(gw).get("spliced", 0) >= before.get("spliced", 0) + 2,
        what="both schools' tunnels spliced by the front door",
    )


def test_the_front_door_decides_with_the_clients_own_school(trust: tuple[Gateway, Path]) -> None:
    gw, _ = trust
    before = door_counts(gw)
    status, by = issuer(gw, ELM, "https://www.bbc.co.uk/")  # Elm: uncategorised, relayed
    assert status == 200
    assert "origin" in by
    wait_for(
        lambda: door_counts(gw).get("spliced", 0) >= before.get("spliced", 0) + 1,
        what="Elm's tunnel spliced",
    )
    spliced = door_counts(gw).get("spliced", 0)
    status, by = issuer(gw, OAK, "https://www.bbc.co.uk/")  # Oak blocks news: the block page
    assert status == 403
    assert "origin" not in by  # the school CA: decrypted to show the page, never relayed
    assert door_counts(gw).get("spliced", 0) == spliced


def test_a_client_in_no_schools_subnets_is_refused_and_never_spliced(
    trust: tuple[Gateway, Path],
) -> None:
    gw, tmp = trust
    before = door_counts(gw)
    with client_from(gw, NOWHERE) as stranger, pytest.raises(httpx.ProxyError, match="403"):
        stranger.get("https://learning.test/")
    assert door_counts(gw).get("spliced", 0) == before.get("spliced", 0)
    refusal_recorded(tmp, NOWHERE, "learning.test")


def test_plain_http_is_served_by_the_front_door_for_the_clients_own_school(
    trust: tuple[Gateway, Path],
) -> None:
    gw, _ = trust
    for address in (ELM, OAK):  # signs in (the directory); that connection stays mitmproxy's
        with client_from(gw, address) as client:
            assert client.get("http://learning.test/").status_code == 200
    before = door_counts(gw)
    with client_from(gw, ELM) as elm:
        assert elm.get("http://explode.test/").status_code == 200  # Elm: allowed, served here
    wait_for(
        lambda: door_counts(gw).get("http_requests", 0) >= before.get("http_requests", 0) + 1,
        what="Elm's plain request served by the front door",
    )
    served = door_counts(gw).get("http_requests", 0)
    with client_from(gw, OAK) as oak:
        blocked = oak.get("http://explode.test/")  # Oak blocks news: mitmproxy's block page
    assert blocked.status_code == 403
    assert door_counts(gw).get("http_requests", 0) == served
