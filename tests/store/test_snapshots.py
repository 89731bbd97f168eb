"""The overrides snapshot file: parsing with located errors, atomic replacement, keep-on-error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schoolgate.policy.model import (
    ApprovedException,
    LocalListEntry,
    Overrides,
    Sanction,
    Scope,
    SupervisedSession,
    TargetKind,
    Verdict,
)
from schoolgate.store.snapshots import (
    FileOverridesSource,
    SnapshotError,
    dump_overrides,
    parse_overrides,
    write_overrides_atomically,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
FULL = Overrides(
    exceptions=(
        ApprovedException("e1", Scope.GROUP, TargetKind.CATEGORY, "social", T0, T1, "Year6"),
        ApprovedException("e2", Scope.USER, TargetKind.HOST, "www.tiktok.com", T0, None, "pupil1"),
        ApprovedException(
            "e3", Scope.ROLE, TargetKind.HOST, "www.bbc.co.uk", T0, T1, "pupil", school="oak"
        ),
    ),
    sanctions=(Sanction("s1", "pupil2", T0, T1),),
    supervised_sessions=(SupervisedSession("pupil2", T0, T1),),
    local_list=(
        LocalListEntry("bad.example", Verdict.BLOCK, "reported by staff"),
        LocalListEntry("bad.example", Verdict.ALLOW, "oak's own", school="oak"),
    ),
)


def test_round_trip() -> None:
    assert parse_overrides(dump_overrides(FULL), source="t") == FULL


def test_hosts_are_normalised() -> None:
    text = json.dumps({"local_list": [{"host": "BAD.Example.", "verdict": "block"}]})
    assert parse_overrides(text, source="t").local_list[0].host == "bad.example"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        (
            '{"sanctions": [{"id": "s", "user": "u", "starts": "2026-01-01T09:00:00"}]}',
            "sanctions.0.starts",
        ),
        ('{"exceptions": [], "surprise": 1}', "surprise"),
        ('{"local_list": [{"host": "a b", "verdict": "block"}]}', "local_list.0.host"),
        ('{"local_list": [{"host": "a.example", "verdict": "maybe"}]}', "local_list.0.verdict"),
    ],
)
def test_problems_are_located(text: str, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        parse_overrides(text, source="overrides.json")


async def test_broken_or_missing_file_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    source = FileOverridesSource(path)
    assert await source.load() == Overrides()
    assert source.last_problem is not None
    assert "does not exist" in source.last_problem
    write_overrides_atomically(path, FULL)
    assert await source.load() == FULL
    path.write_text('{"exceptions": [')
    assert await source.load() == FULL
    assert source.last_problem is not None
    assert "not valid JSON" in source.last_problem
    write_overrides_atomically(path, Overrides())
    assert await source.load() == Overrides()
    assert source.last_problem is None


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    write_overrides_atomically(path, FULL)
    write_overrides_atomically(path, Overrides())
    assert [p.name for p in tmp_path.iterdir()] == ["overrides.json"]
