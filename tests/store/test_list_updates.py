"""`lists update` against sources served from a real HTTP server on loopback: verified, written
atomically, the last good list kept when a source fails; list freshness and the IT alerts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.policy.lists import DomainList, parse_domain_list
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.list_status import STATE_FILE, ListStatusReader, policy_stamp
from schoolgate.store.list_updates import (
    AlertKinds,
    ListsConfigError,
    load_config,
    raise_list_alerts,
    update_lists,
)
from schoolgate.store.models import AlertRow
from schoolgate.store.policy_files import load_policy

NOW = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)

POLICY = """
name: lists test
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  illegal_content: {locked: true, domains: [], description: IWF slot}
  adult: {lists: [adult.txt]}
  gambling: {domains: []}
calendar:
  timezone: Europe/London
  school_day: {start: "08:45", end: "15:15"}
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""

OLD_ADULT = (
    "# category: adult\n# description: d\n# compiled: 2026-11-01\n# source: s\nold.example\n"
)


class Origin:
    """A loopback HTTP server answering from `files` (path -> body); anything else is 404."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/slow":
                    time.sleep(3)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


@pytest.fixture
def school(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "adult.txt").write_text(OLD_ADULT)
    return tmp_path / "policy.yaml"


def write_config(policy: Path, body: str) -> Path:
    path = policy.parent / "lists.yaml"
    path.write_text(body)
    return path


def adult_domains(policy: Path) -> tuple[str, ...]:
    parsed = parse_domain_list((policy.parent / "adult.txt").read_text(), source="adult.txt")
    assert isinstance(parsed, DomainList), parsed
    return parsed.domains


def test_update_from_http_with_checksum_file(origin: Origin, school: Path) -> None:
    body = b"# UT1 adult\nporn.example\nwww.porn.example\nxxx.example\n10.1.2.3\n"
    origin.files["/adult/domains"] = body
    origin.files["/adult/domains.sha256"] = (
        f"{hashlib.sha256(body).hexdigest()}  domains\n".encode()
    )
    origin.files["/extra.txt"] = b"||ads.example^\n@@||ok.example^\n"
    config = write_config(
        school,
        f"""
max_age_hours: 24
sources:
  - {{name: ut1-adult, category: adult, format: ut1-domains, url: "{origin.url}/adult/domains",
     sha256_url: "{origin.url}/adult/domains.sha256", description: "Adult (UT1)"}}
  - {{name: extra, category: adult, format: adblock, url: "{origin.url}/extra.txt"}}
""",
    )
    report = update_lists(config, now=NOW, policy_path=school)
    assert report.ok, report
    assert adult_domains(school) == ("ads.example", "porn.example", "xxx.example")
    text = (school.parent / "adult.txt").read_text()
    assert "checksum verified" in text
    assert "no checksum offered" in text
    assert "# compiled: 2026-12-03" in text
    state = json.loads((school.parent / STATE_FILE).read_text())["lists"]["adult.txt"]
    assert state["entries"] == 3
    assert state["last_error"] == ""
    assert state["updated_at"] == NOW.isoformat()
    messages = "\n".join(report.outcomes[0].messages)
    assert "IP addresses" in messages
    assert "exception rules" in messages
    # the policy loads with the new list and blocks by it
    assert load_policy(school).domains.categories("www.porn.example") == ("adult",)
    assert not list(school.parent.glob(".adult.txt.*"))  # no temp file left behind


@pytest.mark.parametrize(
    ("files", "source", "why"),
    [
        (
            {"/d": b"porn.example\n"},
            'url: "{url}/d", sha256: "' + "0" * 64 + '"',
            "checksum mismatch",
        ),
        (
            {"/d": b"porn.example\n", "/d.sha256": b"nothex\n"},
            'url: "{url}/d", sha256_url: "{url}/d.sha256"',
            "does not start with a SHA-256",
        ),
        ({}, 'url: "{url}/missing"', "HTTP 404"),
        ({"/d": b"a.example\n" * 50}, 'url: "{url}/d", max_bytes: 100', "max_bytes"),
        ({"/d": b"# nothing\n"}, 'url: "{url}/d"', "fewer than min_entries"),
        ({"/d": b"good.example\n" + b"bad!name\n" * 40}, 'url: "{url}/d"', "not valid"),
        ({}, 'url: "http://127.0.0.1:9/d"', "cannot fetch"),
    ],
)
def test_a_failing_source_keeps_the_last_good_list(
    origin: Origin, school: Path, files: dict[str, bytes], source: str, why: str
) -> None:
    origin.files.update(files)
    spec = source.replace("{url}", origin.url)
    config = write_config(
        school, f"sources:\n  - {{name: s, category: adult, format: domains, {spec}}}\n"
    )
    report = update_lists(config, now=NOW, policy_path=school)
    assert not report.ok
    assert why in report.outcomes[0].error
    assert (school.parent / "adult.txt").read_text() == OLD_ADULT
    state = json.loads((school.parent / STATE_FILE).read_text())["lists"]["adult.txt"]
    assert why in state["last_error"]
    assert "updated_at" not in state


def test_one_failing_source_of_two_keeps_the_whole_list(origin: Origin, school: Path) -> None:
    origin.files["/a"] = b"a.example\n"
    config = write_config(
        school,
        f"""
sources:
  - {{name: a, category: adult, format: domains, url: "{origin.url}/a"}}
  - {{name: b, category: adult, format: domains, url: "{origin.url}/b"}}
""",
    )
    report = update_lists(config, now=NOW, policy_path=school)
    assert "source b" in report.outcomes[0].error
    assert adult_domains(school) == ("old.example",)


def test_ut1_directory_and_tarball(tmp_path: Path, origin: Origin) -> None:
    (tmp_path / "policy.yaml").write_text(
        POLICY.replace("gambling: {domains: []}", "gambling: {lists: [gambling.txt]}")
    )
    (tmp_path / "adult.txt").write_text(OLD_ADULT)
    (tmp_path / "gambling.txt").write_text(OLD_ADULT.replace("adult", "gambling"))
    folder = tmp_path / "ut1" / "gambling"
    folder.mkdir(parents=True)
    (folder / "domains").write_text("bet.example\ncasino.example\n")
    (folder / "urls").write_text("site.example/casino\nwhole.example\n")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (
            ("adult/domains", b"porn.example\n"),
            ("adult/urls", b"host.example/page\n"),
            ("adult/usage", b"black\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    origin.files["/adult.tar.gz"] = archive.getvalue()
    config = write_config(
        tmp_path / "policy.yaml",
        f"""
sources:
  - {{name: ut1-gambling, category: gambling, format: ut1-domains, path: ut1/gambling}}
  - {{name: ut1-adult, category: adult, format: ut1-domains, url: "{origin.url}/adult.tar.gz"}}
""",
    )
    report = update_lists(config, now=NOW, policy_path=tmp_path / "policy.yaml")
    assert report.ok, report
    gambling = parse_domain_list((tmp_path / "gambling.txt").read_text(), source="g")
    assert isinstance(gambling, DomainList)
    assert gambling.domains == ("bet.example", "casino.example", "whole.example")
    assert adult_domains(tmp_path / "policy.yaml") == ("porn.example",)


def test_gzip_source_and_bounded_unpacking(origin: Origin, school: Path) -> None:
    origin.files["/d.gz"] = gzip.compress(b"gz.example\n")
    origin.files["/bomb.gz"] = gzip.compress(b"a" * 1_000_000)
    config = write_config(
        school,
        f"""
sources:
  - {{name: gz, category: adult, format: domains, url: "{origin.url}/d.gz"}}
""",
    )
    assert update_lists(config, now=NOW).ok
    assert adult_domains(school) == ("gz.example",)
    config = write_config(
        school,
        f"""
sources:
  - {{name: gz, category: adult, format: domains, url: "{origin.url}/bomb.gz", max_bytes: 5000}}
""",
    )
    report = update_lists(config, now=NOW)
    assert "unpacks to more than max_bytes" in report.outcomes[0].error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sources: []", "sources"),
        (
            "sources:\n  - {name: a, category: adult, format: nope, url: 'http://127.0.0.1/'}",
            "format",
        ),
        ("sources:\n  - {name: a, category: adult, format: domains}", "exactly one of"),
        ("sources:\n  - {name: a, category: Adult, format: domains, path: x}", "category"),
        ("sources:\n  - {name: a, category: adult, format: domains, url: 'ftp://x/'}", "http"),
        (
            "sources:\n  - {name: a, category: a, format: domains, path: x}\n"
            "  - {name: a, category: a, format: domains, path: y}",
            "unique",
        ),
    ],
)
def test_bad_config_is_refused_with_its_place(school: Path, body: str, message: str) -> None:
    config = write_config(school, body)
    with pytest.raises(ListsConfigError, match=message) as info:
        load_config(config)
    assert str(config) in str(info.value)


def test_iwf_list_fills_the_locked_slot(origin: Origin, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        POLICY.replace(
            "illegal_content: {locked: true, domains: [], description: IWF slot}",
            "illegal_content: {locked: true, lists: [iwf.txt], description: IWF slot}",
        )
    )
    (tmp_path / "adult.txt").write_text(OLD_ADULT)
    (tmp_path / "iwf.txt").write_text(OLD_ADULT.replace("adult", "illegal_content"))
    origin.files["/iwf"] = b"http://bad.example/abc.jpg\nworse.example/\n"
    config = write_config(
        policy,
        f"""
sources:
  - {{name: iwf, category: illegal_content, list: iwf.txt, format: iwf, url: "{origin.url}/iwf"}}
""",
    )
    assert update_lists(config, now=NOW, policy_path=policy).ok
    loaded = load_policy(policy)
    assert loaded.domains.categories("bad.example") == ("illegal_content",)
    assert loaded.categories["illegal_content"].locked


def test_status_ages_counts_empty_categories_and_stale(origin: Origin, school: Path) -> None:
    origin.files["/d"] = b"a.example\nb.example\n"
    config = write_config(
        school,
        f"max_age_hours: 24\nsources:\n  - {{name: s, category: "
        f'adult, format: domains, url: "{origin.url}/d"}}\n',
    )
    update_lists(config, now=NOW, policy_path=school)
    reader = ListStatusReader()
    fresh = reader.read(school, now=NOW + timedelta(hours=1))
    (adult,) = fresh.lists
    assert (adult.name, adult.entries, adult.updated_by, adult.stale) == (
        "adult.txt",
        2,
        "lists update",
        False,
    )
    assert adult.age_seconds == 3600
    assert [e.name for e in fresh.empty] == ["illegal_content", "gambling"]
    assert "IWF" in fresh.empty[0].how_to_fill
    assert "lists update" in fresh.empty[1].how_to_fill
    old = reader.read(school, now=NOW + timedelta(hours=25))
    assert [s.name for s in old.stale] == ["adult.txt"]
    assert old.as_json()["stale_lists"] == ["adult.txt"]


def test_seed_lists_report_their_compiled_date_and_are_never_stale() -> None:
    report = ListStatusReader().read(None, now=NOW)
    x = next(s for s in report.lists if s.name == "x.txt")
    assert x.updated_by == "compiled"
    assert x.entries > 5
    assert not x.stale
    assert x.updated_at is not None
    assert x.updated_at.date() <= NOW.date()


def test_policy_stamp_changes_when_a_list_appears_or_changes(school: Path) -> None:
    first = policy_stamp(school)
    (school.parent / "adult.txt").write_text(OLD_ADULT + "new.example\n")
    second = policy_stamp(school)
    assert second != first
    assert policy_stamp(school) == second


def test_alerts_for_stale_and_failed_lists_raised_once(
    origin: Origin, school: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    origin.files["/d"] = b"a.example\n"
    config = write_config(
        school,
        f"max_age_hours: 1\nsources:\n  - {{name: s, category: "
        f'adult, format: domains, url: "{origin.url}/d"}}\n',
    )
    update_lists(config, now=NOW, policy_path=school)
    del origin.files["/d"]
    failed = update_lists(config, now=NOW + timedelta(hours=3), policy_path=school)
    report = ListStatusReader().read(school, now=NOW + timedelta(hours=3))
    engine = make_engine(url)
    try:
        for _ in range(2):  # the second run finds them open and adds none
            with Session(engine) as session, session.begin():
                raise_list_alerts(
                    session=session,
                    report=report,
                    failures=[o for o in failed.outcomes if o.error],
                    at=NOW + timedelta(hours=3),
                )
        with Session(engine) as session:
            rows = session.scalars(select(AlertRow)).all()
            kinds = sorted(r.kind for r in rows)
            summaries = " ".join(r.summary for r in rows)
    finally:
        engine.dispose()
    assert kinds == [AlertKinds.LIST_STALE, AlertKinds.LIST_UPDATE_FAILED]
    assert "adult.txt" in summaries
    assert "HTTP 404" in summaries


def test_a_source_that_hangs_times_out(origin: Origin, school: Path) -> None:
    origin.files["/slow"] = b"late.example\n"
    config = write_config(
        school,
        f"timeout_seconds: 0.5\nsources:\n  - {{name: s, category: "
        f'adult, format: domains, url: "{origin.url}/slow"}}\n',
    )
    started = time.monotonic()
    report = update_lists(config, now=NOW, policy_path=school)
    assert time.monotonic() - started < 3
    assert "cannot fetch" in report.outcomes[0].error
    assert adult_domains(school) == ("old.example",)


def test_checksum_file_listing_several_files(origin: Origin, school: Path) -> None:
    body = b"sum.example\n"
    origin.files["/lists/adult.txt"] = body
    origin.files["/lists/SHA256SUMS"] = (
        f"{'1' * 64}  gambling.txt\n{hashlib.sha256(body).hexdigest()} *adult.txt\n"
    ).encode()
    config = write_config(
        school,
        f"sources:\n  - {{name: s, category: adult, format: domains, "
        f'url: "{origin.url}/lists/adult.txt", '
        f'sha256_url: "{origin.url}/lists/SHA256SUMS"}}\n',
    )
    assert update_lists(config, now=NOW, policy_path=school).ok
    assert adult_domains(school) == ("sum.example",)
