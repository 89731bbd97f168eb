"""Reading a trust from its files (store/trust_files.py): the trust file, the base policy and
each school's file, with the lists each names; what a missing or unreadable file says; and the
stamp and version the gateway reloads by."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.policy.errors import PolicyError
from schoolgate.store.trust_files import load_trust, load_trust_file, trust_stamp, trust_version
from tests.support.policies import POLICY_TEXT
from tests.support.trusts import list_text, write_trust

TRUST = """
name: Test Trust
base: base.yaml
schools:
  oak: {name: Oak, subnets: [10.1.0.0/16], policy: oak/oak.yaml}
  elm: {name: Elm, subnets: [10.2.0.0/16]}
"""
GAMES = list_text("games", "games.example")
OAK = "categories:\n  games: {lists: [games.txt]}\n"


def make_trust(folder: Path) -> Path:
    files = {"base.yaml": POLICY_TEXT, "oak/oak.yaml": OAK, "oak/games.txt": GAMES}
    return write_trust(folder, TRUST, files)


def test_a_trust_is_read_with_each_schools_lists_beside_its_file(tmp_path: Path) -> None:
    trust = load_trust(make_trust(tmp_path))
    assert set(trust.policies) == {"oak", "elm"}
    assert trust.policies["oak"].domains.categories("www.games.example") == ("games",)
    assert trust.policies["elm"].domains is trust.base.domains
    assert "games" not in trust.policies["elm"].categories


def test_missing_and_unreadable_files_are_named(tmp_path: Path) -> None:
    path = make_trust(tmp_path)
    (tmp_path / "base.yaml").unlink()
    (tmp_path / "oak" / "oak.yaml").write_bytes(b"\xff\xfe not text")
    with pytest.raises(PolicyError) as caught:
        load_trust(path)
    base, oak = caught.value.problems
    assert base.startswith(f"base: the file {tmp_path / 'base.yaml'} does not exist")
    assert oak.startswith(f"schools.oak.policy: cannot read {tmp_path / 'oak' / 'oak.yaml'}")


def test_an_unreadable_list_is_named(tmp_path: Path) -> None:
    path = make_trust(tmp_path)
    (tmp_path / "oak" / "games.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match=r"list file .*games.txt: cannot read it"):
        load_trust(path)


def test_a_missing_or_unreadable_trust_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"the trust file .* does not exist"):
        load_trust_file(tmp_path / "nope.yaml")
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(PolicyError, match="cannot read the trust file"):
        load_trust_file(tmp_path / "folder.yaml")


def test_stamp_and_version_change_with_any_of_the_trusts_files(tmp_path: Path) -> None:
    path = make_trust(tmp_path)
    stamp, version = trust_stamp(path), trust_version(path)
    assert len(version) == 12
    assert trust_stamp(path) == stamp  # nothing changed
    (tmp_path / "oak" / "games.txt").write_text(GAMES + "more.example\n")  # a school's list
    assert trust_stamp(path) != stamp
    assert trust_version(path) == version  # the version is of the policy files themselves
    (tmp_path / "oak" / "oak.yaml").write_text(OAK + "default: block\n")
    assert trust_version(path) != version
    (tmp_path / "oak" / "oak.yaml").unlink()
    assert trust_version(path) == "unreadable"
    path.write_text("schools: [not, a, mapping]\n")  # a broken trust file: itself only
    assert len(trust_stamp(path)) == 1
