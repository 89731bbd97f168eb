"""The shipped seed policy with the shipped lists, through a real gateway: a well-known site of
each DfE content category is blocked for pupils, with that category and rule on the block page
(an empty content list would be a leak), and the everyone-categories for staff too."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import Gateway, running_gateway, write_identity

pytestmark = pytest.mark.e2e

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"

# (category, rule, host): some from the vendored upstream feeds, some from the hand-kept core.
SAMPLES = [
    ("adult", "content-for-everyone", "www.xvideos.com"),
    ("adult", "content-for-everyone", "pornhub.com"),
    ("adult", "content-for-everyone", "www.onlyfans.com"),
    ("gambling", "content-for-everyone", "www.bet365.com"),
    ("gambling", "content-for-everyone", "sports.williamhill.com"),
    ("malware_phishing", "content-for-everyone", "www.internetbadguys.com"),
    ("malware_phishing", "content-for-everyone", "malware.testcategory.com"),
    ("piracy", "content-for-everyone", "thepiratebay.org"),
    ("piracy", "content-for-everyone", "www.1337x.to"),
    ("violence", "content-for-pupils", "www.kaotic.com"),
    ("self_harm", "content-for-pupils", "sanctioned-suicide.net"),
    ("extremism", "content-for-pupils", "www.stormfront.org"),
    ("discrimination", "content-for-pupils", "kiwifarms.net"),
    ("drugs", "content-for-pupils", "erowid.org"),
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("seed")
    policy = folder / "policy.yaml"
    shutil.copy(SEED, policy)  # no lists beside it: the shipped ones are used
    with running_gateway(folder, policy=policy, identity=write_identity(folder / "id")) as gw:
        yield gw


def _get(gw: Gateway, user: str, host: str) -> httpx.Response:
    with gw.client(user, trust="gateway") as client:
        return client.get(f"https://{host}/")


@pytest.mark.parametrize(("category", "rule", "host"), SAMPLES)
def test_content_is_blocked_for_pupils_with_its_reason(
    seeded: Gateway, category: str, rule: str, host: str
) -> None:
    response = _get(seeded, "pupil1", host)
    assert response.status_code == 403, (host, response.text[:300])
    assert f"<dt>Category</dt><dd>{category}</dd>" in response.text
    assert f"<dt>Rule</dt><dd>{rule}</dd>" in response.text
    assert not seeded.contacted(host)


@pytest.mark.parametrize("host", [h for _, r, h in SAMPLES if r == "content-for-everyone"])
def test_content_for_everyone_is_blocked_for_staff(seeded: Gateway, host: str) -> None:
    response = _get(seeded, "staff1", host)
    assert response.status_code == 403, (host, response.text[:300])
    assert "<dt>Rule</dt><dd>content-for-everyone</dd>" in response.text
