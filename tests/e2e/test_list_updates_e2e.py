"""A real gateway and the real `schoolgate lists update` command: the list is fetched from a
loopback HTTP server, swapped in, and enforced without a restart; /healthz and /metrics show
each list's entries and age and the empty categories."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import (
    SCHOOLGATE,
    Gateway,
    free_port,
    running_gateway,
    wait_for,
    write_identity,
)

pytestmark = pytest.mark.e2e

POLICY = """\
name: "lists e2e policy"
roles: {pupil: Pupils, staff: Staff, social_media_manager: Official accounts}
default_role: pupil
categories:
  illegal_content: {locked: true, domains: [], description: "IWF slot"}
  adult: {lists: [adult.txt], description: "Adult content"}
calendar:
  timezone: Europe/London
  school_days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
  school_day: {start: "00:00", end: "23:59"}
  bank_holidays: none
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""
OLD = "# category: adult\n# description: d\n# compiled: 2026-11-01\n# source: s\nold.example\n"
FEED = b"# a feed\nlearning.test\nporn.example\n"


@pytest.fixture(scope="module")
def feed() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/adult/domains":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(FEED)))
            self.end_headers()
            self.wfile.write(FEED)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path, str]]:
    folder = tmp_path_factory.mktemp("lists-e2e")
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    (folder / "adult.txt").write_text(OLD)
    port = free_port()
    with running_gateway(
        folder,
        policy=policy,
        identity=write_identity(folder / "id"),
        extra_args=["--set", f"schoolgate_metrics_port={port}"],
    ) as gw:
        metrics = f"http://127.0.0.1:{port}"
        wait_for(lambda: _health(metrics) is not None, what="the metrics endpoint")
        yield gw, policy, metrics


def _health(metrics: str) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{metrics}/healthz", timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and "lists" in body else None


def _adult(metrics: str) -> dict[str, Any]:
    health = _health(metrics) or {}
    return next((s for s in health.get("lists", []) if s["list"] == "adult.txt"), {})


def test_update_is_enforced_without_restart(setup: tuple[Gateway, Path, str], feed: str) -> None:
    gw, policy, metrics = setup
    with gw.client("staff1") as client:
        assert client.get("http://learning.test/").status_code == 200
    health = _health(metrics)
    assert health is not None
    assert health["status"] == "ok"
    assert _adult(metrics)["entries"] == 1
    assert [e["category"] for e in health["empty_categories"]] == ["illegal_content"]
    assert "IWF" in health["empty_categories"][0]["how_to_fill"]
    (policy.parent / "lists.yaml").write_text(
        f"max_age_hours: 24\nsources:\n  - {{name: feed, category: adult, format: "
        f'ut1-domains, url: "{feed}/adult/domains"}}\n'
    )
    done = subprocess.run(
        [str(SCHOOLGATE), "lists", "update", "--policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adult.txt: updated, 2 entries" in done.stdout
    wait_for(lambda: _adult(metrics).get("entries") == 2, what="health to show the new list")
    assert _adult(metrics)["updated_by"] == "lists update"
    pid = gw.proc.pid
    with gw.client("staff1") as client:
        response = client.get("http://learning.test/")
        assert response.status_code == 403
    assert gw.proc.pid == pid
    assert gw.proc.poll() is None  # the same process: no restart
    text = httpx.get(f"{metrics}/metrics", timeout=5, trust_env=False).text
    assert 'schoolgate_list_entries{list="adult"} 2.0' in text
    assert 'schoolgate_category_empty{category="illegal_content"} 1.0' in text
    assert 'schoolgate_list_age_seconds{list="adult"}' in text


def test_a_failing_source_keeps_the_list_and_says_so(
    setup: tuple[Gateway, Path, str], feed: str
) -> None:
    gw, policy, metrics = setup
    (policy.parent / "lists.yaml").write_text(
        f'sources:\n  - {{name: feed, category: adult, format: ut1-domains, url: "{feed}/gone"}}\n'
    )
    done = subprocess.run(
        [str(SCHOOLGATE), "lists", "update", "--policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "NOT updated; the last good list stays in use" in done.stdout
    assert "HTTP 404" in done.stdout
    with gw.client("staff1") as client:
        assert client.get("http://learning.test/").status_code == 403
    # health says so within its re-read interval (30 s), and still counts the good list
    wait_for(
        lambda: "HTTP 404" in _adult(metrics).get("last_error", ""),
        timeout=45,
        what="health to show the failed update",
    )
    assert _adult(metrics)["entries"] == 2
