"""`schoolgate trust check`, run as a technician runs it, on real files: the seed policy as the
trust's base, two schools with their own calendars and lists (store/trust_files.py reads them)."""

from __future__ import annotations

from pathlib import Path

from schoolgate.store.policy_files import seed_policy_path
from tests.schoolgate.test_cli import run
from tests.support.trusts import list_text, write_trust

TRUST = """
name: Oak Learning Trust
base: base/policy.yaml
locks:
  categories: [social, adult]
  inspection: true
schools:
  oak:
    name: Oak Primary
    subnets: [10.1.0.0/16]
    policy: oak/policy.yaml
  elm:
    name: Elm Primary
    subnets: [10.2.0.0/16, "fd00:2::/48"]
"""

OAK = """
calendar:
  school_day: {start: "09:00", end: "15:30"}
  periods:
    - {name: morning break, kind: break, start: "11:00", end: "11:15"}
    - {name: lunch, kind: break, start: "12:30", end: "13:30"}
categories:
  clubs: {description: After-school clubs, lists: [clubs.txt]}
rules:
  - {name: clubs, roles: all, categories: [clubs], action: allow}
"""

CLUBS = list_text("clubs", "clubs.example", description="the after-school clubs' booking sites")


def make_trust(folder: Path, oak: str = OAK) -> Path:
    files = {
        "base/policy.yaml": seed_policy_path().read_text(),
        "oak/policy.yaml": oak,
        "oak/clubs.txt": CLUBS,
    }
    return write_trust(folder, TRUST, files)


def test_trust_check_says_what_each_school_gets(tmp_path: Path) -> None:
    result = run("trust", "check", str(make_trust(tmp_path)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Oak Learning Trust: 2 schools, base policy base/policy.yaml"
    assert lines[1].startswith("  oak: Oak Primary: its own policy oak/policy.yaml (")
    assert lines[1].endswith("clients 10.1.0.0/16")
    assert lines[2].startswith("  elm: Elm Primary: the base policy (")
    assert lines[2].endswith("clients 10.2.0.0/16, fd00:2::/48")
    assert lines[3] == "Locked by the trust: categories adult, social; inspection"
    assert lines[4] == "A device in no school's subnets is refused."


def test_trust_check_names_each_schools_listeners_and_directory(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    trust.write_text(
        TRUST.replace(
            "    policy: oak/policy.yaml\n",
            "    policy: oak/policy.yaml\n    listeners: ['10.9.0.1:3128', '[fd00::1]:3128']\n"
            "    directory: {group: OakPupils, ou: 'ou=Oak,dc=trust,dc=org'}\n",
        )
    )
    result = run("trust", "check", str(trust))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].endswith(
        "clients 10.1.0.0/16; listeners 10.9.0.1:3128, [fd00::1]:3128; "
        "people in the group OakPupils or under ou=Oak,dc=trust,dc=org"
    )
    assert lines[2].endswith("clients 10.2.0.0/16, fd00:2::/48")
    assert lines[4] == (
        "A device in no school's listeners, subnets, directory groups or OUs is refused."
    )


def test_trust_check_refuses_a_school_loosening_a_lock(tmp_path: Path) -> None:
    oak = OAK + "  - {name: tiktok-club, roles: [pupil], categories: [social], action: allow}\n"
    oak += "inspection:\n  pupil: {inspect: listed}\n"
    result = run("trust", "check", str(make_trust(tmp_path, oak=oak)))
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"{tmp_path / 'trust.yaml'}: 4 problems" in result.stderr
    assert (
        "school 'oak' (oak/policy.yaml): rule 2 'tiktok-club' (rules[1]): the trust locks 'social': "
        "a school may not allow it" in result.stderr
    )
    assert (
        "school 'oak' (oak/policy.yaml): inspection.pupil.inspect: the trust locks inspection "
        "and decrypts all for 'pupil': a school may not make it 'listed'" in result.stderr
    )


def test_trust_check_finds_a_schools_list_beside_its_policy_only(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    (tmp_path / "oak" / "clubs.txt").unlink()
    result = run("trust", "check", str(trust))
    assert result.returncode == 1
    assert (
        "school 'oak' (oak/policy.yaml): categories.clubs.lists[0]: list file 'clubs.txt' "
        "was not found" in result.stderr
    )


def test_trust_check_names_missing_files(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    (tmp_path / "oak" / "policy.yaml").unlink()
    (tmp_path / "base" / "policy.yaml").unlink()
    result = run("trust", "check", str(trust))
    assert result.returncode == 1
    assert "2 problems" in result.stderr
    assert "base: the file" in result.stderr
    assert "schools.oak.policy: the file" in result.stderr
    assert "does not exist (paths are relative to the trust file)" in result.stderr
    missing = run("trust", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert "the trust file" in missing.stderr
    assert "does not exist" in missing.stderr


def test_add_school_keeps_the_file_and_starts_the_school_on_the_base(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    trust.write_text("# Oak Learning Trust's schools\n" + TRUST)
    result = run(
        "trust", "add-school", str(trust), "ash", "--name", "Ash Infants",
        "--subnet", "10.3.0.0/16", "--subnet", "10.4.0.0/16", "--policy", "ash/policy.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = trust.read_text()
    assert text.startswith("# Oak Learning Trust's schools\n" + TRUST.rstrip("\n"))
    assert text.endswith(
        '\n  ash: {"name": "Ash Infants", "subnets": ["10.3.0.0/16", "10.4.0.0/16"], '
        '"policy": "ash/policy.yaml"}\n'
    )
    made = tmp_path / "ash" / "policy.yaml"
    assert made.read_text().startswith("# Ash Infants's own policy")
    assert f"Added ash (Ash Infants) to {trust}." in result.stdout
    assert "  ash: Ash Infants: its own policy ash/policy.yaml (" in result.stdout
    check = run("trust", "check", str(trust))
    assert check.returncode == 0, check.stderr
    assert "clients 10.3.0.0/16, 10.4.0.0/16" in check.stdout


def test_add_school_refuses_what_would_break_the_trust(tmp_path: Path) -> None:
    trust = make_trust(tmp_path)
    before = trust.read_text()
    taken = run(
        "trust", "add-school", str(trust), "oak", "--name", "Oak", "--subnet", "10.9.0.0/16"
    )
    assert taken.returncode == 1
    assert "there is already a school 'oak': choose another id" in taken.stderr
    clash = run(
        "trust", "add-school", str(trust), "ash", "--name", "Ash",
        "--subnet", "10.1.0.0/16", "--policy", "ash.yaml",
    )  # fmt: skip
    assert clash.returncode == 1
    assert "the school was not added" in clash.stderr
    assert "10.1.0.0/16 is already given to the school 'oak'" in clash.stderr
    assert trust.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "oak", "trust.yaml"]
    trust.write_text(before.replace("schools:\n  oak:", "schools: {oak: {}}\nold:\n  oak:"))
    flow = run("trust", "add-school", str(trust), "ash", "--name", "Ash", "--subnet", "10.3.0.0/16")
    assert flow.returncode == 1
    assert "add-school needs 'schools:' written as a block" in flow.stderr


def test_add_school_takes_listeners_and_a_directory_group(tmp_path: Path) -> None:
    """A school attributed by the gateway address its devices use and its people's group,
    with no subnet of its own (docs/trust.md: attribution)."""
    trust = make_trust(tmp_path)
    result = run(
        "trust", "add-school", str(trust), "ash", "--name", "Ash Infants",
        "--listener", "10.9.0.1:3128", "--group", "AshPeople",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert trust.read_text().endswith(
        '\n  ash: {"name": "Ash Infants", "subnets": [], "listeners": ["10.9.0.1:3128"], '
        '"directory": {"group": "AshPeople"}}\n'
    )
    check = run("trust", "check", str(trust))
    assert check.returncode == 0, check.stderr
    assert "10.9.0.1:3128" in check.stdout
    assert "AshPeople" in check.stdout
    before = trust.read_text()
    taken = run(
        "trust", "add-school", str(trust), "fir", "--name", "Fir", "--listener", "10.9.0.1:3128"
    )
    assert taken.returncode == 1
    assert "10.9.0.1:3128" in taken.stderr
    assert trust.read_text() == before


def test_explain_answers_for_one_school_of_a_trust(tmp_path: Path) -> None:
    """`schoolgate explain` read one policy file: a trust's technician could not ask what a
    school's own policy gives (found running issue 17). With --trust and --school it decides
    with that school's compiled policy (its own rules on the trust's base)."""
    trust = str(make_trust(tmp_path))
    asked = ["explain", "--trust", trust, "--role", "pupil", "--host", "clubs.example", "--json"]
    oak = run(*asked, "--school", "oak")
    assert oak.returncode == 0, oak.stderr
    assert '"rule": "clubs"' in oak.stdout
    assert '"verdict": "allow"' in oak.stdout
    elm = run(*asked, "--school", "elm")
    assert elm.returncode == 0, elm.stderr
    assert '"rule": "clubs"' not in elm.stdout
    unnamed = run(*asked)
    assert unnamed.returncode == 2
    assert "give --school: one of elm, oak" in unnamed.stderr
    unknown = run(*asked, "--school", "ash")
    assert unknown.returncode == 2
    assert "there is no school 'ash'" in unknown.stderr
    both = run(*asked, "--school", "oak", "--policy", str(seed_policy_path()))
    assert both.returncode == 2
    assert "--policy or --trust, not both" in both.stderr
