"""`schoolgate lists status | update` as a technician runs them, and `schoolgate run` naming the
empty categories."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from schoolgate.cli import main
from schoolgate.commands.run import banner
from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.models import AlertRow

POLICY = """
name: cli lists
roles: {pupil: Pupils, staff: Staff}
default_role: pupil
categories:
  illegal_content: {locked: true, domains: [], description: IWF slot}
  adult: {lists: [adult.txt]}
calendar: {timezone: Europe/London, school_day: {start: "08:45", end: "15:15"}}
rules:
  - {name: adult, roles: all, categories: [adult], action: block}
default: allow
"""
ADULT = "# category: adult\n# description: d\n# compiled: 2026-11-01\n# source: s\nold.example\n"


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "adult.txt").write_text(ADULT)
    (tmp_path / "feed.txt").write_text("new.example\nother.example\n")
    return tmp_path / "policy.yaml"


def test_update_then_status(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policy.parent / "lists.yaml").write_text(
        "sources:\n  - {name: feed, category: adult, format: domains, path: feed.txt}\n"
    )
    assert main(["lists", "update", "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "adult.txt: updated, 2 entries (category adult)" in out
    assert "EMPTY: 'illegal_content' is empty" in out
    assert main(["lists", "status", "--policy", str(policy), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["lists"][0]["entries"] == 2
    assert status["lists"][0]["updated_by"] == "lists update"
    assert [e["category"] for e in status["empty_categories"]] == ["illegal_content"]


def test_update_failure_and_bad_config_exit_codes(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy.parent / "lists.yaml").write_text(
        "sources:\n  - {name: feed, category: adult, format: domains, path: nowhere.txt}\n"
    )
    assert main(["lists", "update", "--policy", str(policy)]) == 1
    assert "NOT updated; the last good list stays in use" in capsys.readouterr().out
    assert (policy.parent / "adult.txt").read_text() == ADULT
    (policy.parent / "lists.yaml").write_text("sources: [{name: x}]\n")
    assert main(["lists", "update", "--policy", str(policy)]) == 2
    assert "lists.yaml: sources.0.category" in capsys.readouterr().err


def test_status_exit_code_for_a_missing_list(
    policy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a list of the school's own (schoolgate ships no list of that name to fall back on)
    policy.write_text(POLICY.replace("adult.txt", "adult-local.txt"))
    (policy.parent / "adult-local.txt").write_text(ADULT)
    assert main(["lists", "status", "--policy", str(policy)]) == 0
    assert "adult-local.txt" in capsys.readouterr().out
    (policy.parent / "adult-local.txt").unlink()
    assert main(["lists", "status", "--policy", str(policy)]) == 1
    assert "missing" in capsys.readouterr().out


def test_run_banner_names_the_empty_categories(policy: Path) -> None:
    args = argparse.Namespace(
        listen_host="127.0.0.1",
        listen_port=8080,
        admin_port=8081,
        policy=policy,
        data_dir=Path("var"),
        public_name=None,
    )
    text = banner(args, {"gateway"})
    assert "Empty categories (they block nothing yet): illegal_content." in text
    assert "schoolgate lists update" in text


def test_status_raises_a_stale_alert_in_the_database(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    upgrade(url)
    (policy.parent / "lists.yaml").write_text(
        "max_age_hours: 1\nsources:\n  - {name: feed, "
        "category: adult, format: domains, "
        "path: feed.txt}\n"
    )
    old = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    (policy.parent / "lists-state.json").write_text(
        json.dumps({"lists": {"adult.txt": {"updated_at": old, "last_error": ""}}})
    )
    assert main(["lists", "status", "--policy", str(policy), "--database", url]) == 1
    assert "raised 1 alert(s) for IT" in capsys.readouterr().out
    assert main(["lists", "status", "--policy", str(policy), "--database", url]) == 1
    assert "raised" not in capsys.readouterr().out  # already open: not raised twice
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(AlertRow)).all()
    finally:
        engine.dispose()
    assert [(r.kind, r.details["list"]) for r in rows] == [("list_stale", "adult.txt")]
