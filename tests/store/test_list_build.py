"""`schoolgate lists build`: deterministic and byte for byte on a small upstream fixture the test
writes itself, and the shipped lists from the pinned upstream files vendored in the repository."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schoolgate.cli import main
from schoolgate.commands.lists import SHIPPED_MANIFEST, VENDORED_UPSTREAM
from schoolgate.policy.lists import DomainList, parse_domain_list
from schoolgate.store.list_build import BUILT_MARK, BuildError, build_lists, load_manifest
from schoolgate.store.list_status import ListStatusReader
from schoolgate.store.policy_files import shipped_lists_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"
UPSTREAM = {
    "v2": {
        "data/chirp": "# Chirp\ninclude:chirp-ads\ninclude:chirp-cn @-cn\ndomain:chirp.example\n"
        "full:api.chirp.example\nkeyword:chirp\nregexp:^chirp[0-9]+\\.net$\n"
        "chirp.map.cdn.example\n",
        "data/chirp-ads": "ads-chirp.example @ads\n",
        "data/chirp-cn": "chirp.cn.example @cn\nchirp-global.example\n",
    },
    "adg": {
        "services/chirp.yml": "id: chirp\nname: Chirp\nrules:\n  - '||chirp.example^'\n"
        "  - '||chirpimg.example^'\n  - '||chirpp.example^'\n"
        "group: social_network\n",
    },
}
HAND = """\
chirp.txt:
  add:
    - {domain: chrp.example, reason: "Chirp's short links (seen on its site)"}
  remove:
    - {domain: chirp.map.cdn.example, reason: "a CDN CNAME target, never asked for by name"}
    - {domain: chirpp.example, reason: "a typo-squat, not the platform"}
"""
EXPECTED = f"""\
# category: chirp
# description: Chirp: the site and its CDN
# compiled: 2026-11-21
# source: https://example.test/v2 data/chirp (commit {COMMIT})
# source: https://example.test/adg services/chirp.yml (commit {COMMIT})
# source: hand-added entries, each with its reason (hand-added.yaml)
# {BUILT_MARK}
ads-chirp.example  # v2@0123456789ab data/chirp
chirp-global.example  # v2@0123456789ab data/chirp
chirp.example  # v2@0123456789ab data/chirp
chirpimg.example  # adg@0123456789ab services/chirp.yml
chrp.example  # hand: Chirp's short links (seen on its site)
"""


def write_fixture(root: Path) -> Path:
    """The upstream checkouts under root/upstream and a manifest pinning them."""
    pins: dict[str, dict[str, str]] = {}
    for source, files in UPSTREAM.items():
        for path, text in files.items():
            target = root / "upstream" / source / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            pins.setdefault(source, {})[path] = hashlib.sha256(text.encode()).hexdigest()
    lines = ["sources:"]
    for source, files in pins.items():
        lines += [
            f"  {source}:",
            f"    repository: https://example.test/{source}",
            f"    commit: {COMMIT}",
            "    files:",
        ]
        lines += [f"      {path}: {digest}" for path, digest in files.items()]
    lines += [
        "hand_added: hand-added.yaml",
        "outputs:",
        "  - list: chirp.txt",
        "    category: chirp",
        "    description: 'Chirp: the site and its CDN'",
        "    compiled: 2026-11-21",
        "    feeds:",
        "      - {source: v2, kind: v2fly, name: chirp}",
        "      - {source: adg, kind: adguard-service, name: chirp}",
    ]
    manifest = root / "sources.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    (root / "hand-added.yaml").write_text(HAND)
    return manifest


def test_build_is_byte_for_byte_and_deterministic(tmp_path: Path) -> None:
    manifest, hand = load_manifest(write_fixture(tmp_path))
    first = build_lists(manifest, hand, tmp_path / "upstream")
    second = build_lists(manifest, hand, tmp_path / "upstream")
    assert first == second
    (built,) = first
    assert built.text == EXPECTED
    parsed = parse_domain_list(built.text, source="chirp.txt")
    assert isinstance(parsed, DomainList), parsed


def test_cli_build_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_fixture(tmp_path)
    args = [
        "lists",
        "build",
        "--manifest",
        str(manifest),
        "--upstream",
        str(tmp_path / "upstream"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--check"]) == 1  # nothing built yet
    assert main(args) == 0
    assert (tmp_path / "out" / "chirp.txt").read_text() == EXPECTED
    assert main([*args, "--check"]) == 0
    (tmp_path / "out" / "chirp.txt").write_text(EXPECTED + "extra.example\n")
    assert main([*args, "--check"]) == 1
    assert "chirp.txt: DIFFERS" in capsys.readouterr().out


def test_a_changed_or_missing_upstream_file_is_refused(tmp_path: Path) -> None:
    manifest, hand = load_manifest(write_fixture(tmp_path))
    (tmp_path / "upstream" / "v2" / "data" / "chirp-ads").write_text("evil.example\n")
    (tmp_path / "upstream" / "adg" / "services" / "chirp.yml").unlink()
    with pytest.raises(BuildError) as info:
        build_lists(manifest, hand, tmp_path / "upstream")
    message = str(info.value)
    assert "chirp-ads: sha256" in message
    assert f"check out commit {COMMIT}" in message
    assert "chirp.yml: cannot read it" in message
    with pytest.raises(BuildError, match=r"missing: check out https://example\.test/v2"):
        build_lists(manifest, hand, tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("commit: " + COMMIT, "commit: abc"), "40-digit"),
        (("name: chirp}", "name: chirp, bogus: 1}"), "Extra inputs"),
        (("source: adg,", "source: nope,"), "not under 'sources'"),
    ],
)
def test_bad_manifest_is_refused_with_its_place(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    manifest = write_fixture(tmp_path)
    manifest.write_text(manifest.read_text().replace(*change, 1))
    with pytest.raises(BuildError, match=message) as info:
        load_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_hand_entries_need_a_reason(tmp_path: Path) -> None:
    manifest = write_fixture(tmp_path)
    (tmp_path / "hand-added.yaml").write_text("chirp.txt:\n  add:\n    - {domain: a.example}\n")
    with pytest.raises(BuildError, match="reason"):
        load_manifest(manifest)


def test_the_shipped_manifest_is_valid() -> None:
    manifest, hand = load_manifest(SHIPPED_MANIFEST)
    assert {o.list for o in manifest.outputs} <= {p.name for p in shipped_lists_dir().iterdir()}
    assert all(item.reason for h in hand.values() for item in (*h.add, *h.remove))


def test_every_shipped_list_is_the_build_of_the_vendored_pinned_sources() -> None:
    """The pinned upstream files are vendored (policy/data/upstream, with their licences), so
    this runs on any machine: build them twice, identically (every file's sha256 checked), and
    every shipped list must be exactly what the build gives, each entry naming its source."""
    manifest, hand = load_manifest(SHIPPED_MANIFEST)
    built = build_lists(manifest, hand, VENDORED_UPSTREAM)
    assert built == build_lists(manifest, hand, VENDORED_UPSTREAM)
    assert sorted(item.name for item in built) == sorted(
        p.name for p in shipped_lists_dir().glob("*.txt")
    )
    for item in built:
        shipped = (shipped_lists_dir() / item.name).read_text(encoding="utf-8")
        assert BUILT_MARK in shipped, item.name
        assert shipped == item.text, f"{item.name}: run 'schoolgate lists build' and review"
        for line in shipped.splitlines():
            if line and not line.startswith("#"):
                assert re.search(r"  # (v2fly@[0-9a-f]{12} data/\S+|hand: .{3,})$", line), line


def test_every_vendored_file_is_pinned_and_licensed() -> None:
    """Only the files the manifest reads are vendored, each with its sha256 in the manifest,
    beside the source's licence and a README naming the source and commit."""
    manifest, _ = load_manifest(SHIPPED_MANIFEST)
    readme = (VENDORED_UPSTREAM / "README.md").read_text(encoding="utf-8")
    for name, source in manifest.sources.items():
        root = VENDORED_UPSTREAM / name
        present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
        assert present == set(source.files), name
        assert "LICENSE" in source.files, name
        assert source.commit in readme, name
        assert source.repository in readme, name


def test_the_seed_ships_no_empty_content_category() -> None:
    """What `lists status`, /healthz and the System page show for the shipped seed: every
    content category has entries and an age; only the licensed illegal-content slot is empty."""
    report = ListStatusReader().read(None, now=datetime(2026, 12, 3, tzinfo=UTC))
    assert [e.name for e in report.empty] == ["illegal_content"]
    by_category = {c: s for s in report.lists for c in s.categories}
    for category in (
        "adult",
        "gambling",
        "malware_phishing",
        "piracy",
        "violence",
        "self_harm",
        "extremism",
        "discrimination",
        "drugs",
    ):
        status = by_category[category]
        assert status.entries > 0, status
        assert status.age_seconds is not None, status
        assert status.updated_by == "compiled"
        assert not status.stale
    assert by_category["adult"].entries > 5000  # v2fly's category-porn, not only the core


def test_exact_hosts_grouped_reasons_and_stale_removals(tmp_path: Path) -> None:
    """v2fly's `full:` stays one host; several names may share one reason; a removal that no
    feed gives any more is reported (so the hand-kept file cannot rot); a whole top-level
    domain (`domain:adult`) is skipped, not an error."""
    manifest = write_fixture(tmp_path)
    data = tmp_path / "upstream" / "v2" / "data" / "chirp"
    text = data.read_text() + "full:cdn.shared.example\nadult\n"
    data.write_text(text)
    manifest.write_text(
        manifest.read_text().replace(
            hashlib.sha256(UPSTREAM["v2"]["data/chirp"].encode()).hexdigest(),
            hashlib.sha256(text.encode()).hexdigest(),
        )
    )
    (tmp_path / "hand-added.yaml").write_text(
        HAND.replace(
            '    - {domain: chirpp.example, reason: "a typo-squat, not the platform"}\n',
            '    - reason: "typo-squats, not the platform"\n'
            "      domains: [chirpp.example, chirp-global.example]\n",
        )
    )
    loaded, hand = load_manifest(manifest)
    (built,) = build_lists(loaded, hand, tmp_path / "upstream")
    assert "full:cdn.shared.example  # v2@0123456789ab data/chirp\n" in built.text
    assert "chirp-global.example" not in built.text
    assert "\nadult" not in built.text
    (tmp_path / "hand-added.yaml").write_text(
        HAND + '    - {domain: gone.example, reason: "no longer upstream"}\n'
    )
    loaded, hand = load_manifest(manifest)
    with pytest.raises(BuildError, match=r"remove 'gone\.example': no feed gives it"):
        build_lists(loaded, hand, tmp_path / "upstream")
