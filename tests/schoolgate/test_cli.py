"""The IT technician's commands, run as they would run them: the installed `schoolgate`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schoolgate.store.policy_files import seed_policy_path

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCHOOLGATE, *args], capture_output=True, text=True, input=stdin, timeout=120, check=False
    )


def test_policy_check_seed() -> None:
    result = run("policy", "check", str(seed_policy_path()))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert result.stdout.count("\n") == 1  # a one-line summary


def test_policy_check_lists_every_problem(tmp_path: Path) -> None:
    text = seed_policy_path().read_text()
    text = text.replace("categories: [x, instagram]", "categories: [x, instagramm]")
    text = text.replace("default_role: pupil", "default_role: pupils")
    text = text.replace('start: "10:30"', 'start: "25:30"')
    bad = tmp_path / "policy.yaml"
    bad.write_text(text)
    for name in ("x.txt", "instagram.txt"):  # lists beside the policy are found first
        shutil.copy(seed_policy_path().parent / "lists" / name, tmp_path / name)
    result = run("policy", "check", str(bad))
    assert result.returncode == 1
    assert "3 problems" in result.stderr
    assert (
        "rule 1 'x-and-instagram' (rules[0].categories[1]): unknown category 'instagramm' "
        "(did you mean 'instagram'?" in result.stderr
    )
    assert "default_role: unknown role 'pupils'" in result.stderr
    assert "calendar.periods[0].start: '25:30' is not a time of day" in result.stderr


def test_policy_check_missing_file(tmp_path: Path) -> None:
    result = run("policy", "check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "does not exist (check the path and its spelling" in result.stderr
    assert "seed policy" not in result.stderr  # policy check's FILE cannot be left out


def test_policy_check_shows_every_problem_in_one_run(tmp_path: Path) -> None:
    """Newcomer review finding 11, as the review ran it: an unknown key, a bad time, an
    unknown category, a misspelt list and action, all in one run, with suggestions and rules
    numbered as people count them."""
    text = seed_policy_path().read_text()
    text = text.replace("default: allow", "defualt: allow")
    text = text.replace('start: "10:30"', 'start: "10:75"')
    text = text.replace("categories: [facebook, social]", "categories: [facebook, socail]", 1)
    text = text.replace("lists: [social.txt]", "lists: [socail.txt]")
    bad = tmp_path / "policy.yaml"
    bad.write_text(text)
    result = run("policy", "check", str(bad))
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    assert problems[0] == f"{bad}: 5 problems"
    words = "\n".join(problems)
    assert "defualt: unknown key (did you mean 'default'?" in words
    assert "calendar.periods[0].start: '10:75' is not a time of day" in words
    assert "unknown category 'socail' (did you mean 'social'?" in words
    assert "list file 'socail.txt' was not found (did you mean 'social.txt'?" in words
    shipped = sorted(p.name for p in (seed_policy_path().parent / "lists").glob("*.txt"))
    assert f"use a shipped list: {', '.join(shipped)})" in words
    assert "(rules[" in words
    assert "rule 0 " not in words


# The seed rules at the times that matter (Monday 23 November 2026 is a school day, GMT).
EXPLAIN = [
    ("staff", "www.facebook.com", "2026-11-23T10:29:59", "block", "2026-11-23T10:30:00+00:00"),
    ("staff", "www.facebook.com", "2026-11-23T10:30:00", "allow", None),
    ("staff", "www.facebook.com", "2026-11-23T10:45:00", "block", "2026-11-23T12:00:00+00:00"),
    ("staff", "www.facebook.com", "2026-11-23T12:30:00Z", "allow", None),
    ("staff", "www.facebook.com", "2027-06-14T09:35:00Z", "allow", None),  # 10:35 BST
    ("staff", "www.facebook.com", "2027-06-14T10:35:00Z", "block", "2027-06-14T12:00:00+01:00"),
    ("social_media_manager", "facebook.com", "2026-11-23T09:00", "allow", None),
    ("pupil", "facebook.com", "2026-11-23T12:30", "block", None),
    ("pupil", "vm.tiktok.com", "2026-11-23T12:30", "block", None),
    ("staff", "vm.tiktok.com", "2026-11-23T09:30", "block", "2026-11-23T10:30:00+00:00"),
    ("social_media_manager", "x.com", "2026-11-23T12:30", "block", None),
    ("staff", "www.instagram.com", "2026-11-23T12:30", "block", None),
    ("pupil", "dns.google", "2026-11-23T12:30", "block", None),
]


@pytest.mark.parametrize(("role", "host", "at", "verdict", "opens_at"), EXPLAIN)
def test_explain_json(role: str, host: str, at: str, verdict: str, opens_at: str | None) -> None:
    result = run("explain", "--role", role, "--host", host, "--at", at, "--json")
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["verdict"] == verdict
    assert decision["opens_at"] == opens_at
    assert decision["explanation"]


def test_explain_words_say_when_it_opens() -> None:
    result = run("explain", "--role", "staff", "--host", "facebook.com", "--at", "2026-11-23T09:00")
    assert result.returncode == 0
    assert "Blocked" in result.stdout
    assert "staff-social-media-otherwise" in result.stdout
    assert "Access next opens Monday 23 November 2026 at 10:30 (morning break)" in result.stdout


def test_explain_refuses_an_unknown_role() -> None:
    result = run("explain", "--role", "teacher", "--host", "x.com")
    assert result.returncode == 2
    assert "unknown role 'teacher' (known: pupil, staff, social_media_manager)" in result.stderr


def test_explain_batch_keeps_order_and_reports_bad_lines() -> None:
    lines = [
        {"role": "staff", "host": "facebook.com", "at": "2026-11-23T10:35:00Z"},
        {"role": "pupil", "host": "facebook.com", "at": "2026-11-23T10:35:00Z"},
        {"host": "x.com"},
        {"user": "somebody", "host": "tiktok.com", "at": "2026-11-23T10:35:00Z"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    result = run("explain", "--batch", "-", stdin=text)
    assert result.returncode == 1  # some lines were bad
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3, 4, 5]
    assert out[0]["verdict"] == "allow"
    assert out[1]["verdict"] == "block"
    assert "give 'role' or 'user'" in out[2]["error"]
    # without a directory, a user cannot be placed in a role: said, not defaulted
    assert "pass --identity FILE" in out[3]["error"]
    assert "error" in out[4]


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"role": "staff", "host": "x.com", "at": 1035}, "'at' must be a time written as text"),
        (
            {"role": "staff", "host": "x.com", "at": ["10:35"]},
            "'at' must be a time written as text",
        ),
        ({"role": "staff", "host": "x.com", "at": None}, "'at' must be a time written as text"),
        ({"role": ["staff"], "host": "x.com"}, "'role' must be a role's name written as text"),
        ({"role": 5, "host": "x.com"}, "'role' must be a role's name written as text"),
        ({"user": {"name": "a"}, "host": "x.com"}, "'user' must be a user name written as text"),
        ({"role": "staff", "host": "x.com", "groups": "staff"}, "'groups' must be a list"),
        ({"role": "staff", "host": "x.com", "groups": [1, 2]}, "'groups' must be a list"),
        ({"role": "staff", "host": 7}, "'host' is required and must be a host name"),
    ],
)
def test_explain_batch_names_a_malformed_row(row: dict[str, object], words: str) -> None:
    good = {"role": "staff", "host": "facebook.com", "at": "2026-11-23T10:35:00Z"}
    text = "\n".join(json.dumps(line) for line in (good, row, good)) + "\n"
    result = run("explain", "--batch", "-", stdin=text)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1  # a line could not be answered, as for the other bad lines
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == [1, 2, 3]
    assert out[0]["verdict"] == out[2]["verdict"] == "allow"
    assert out[1]["error"].startswith(f"line 2: {words}"), out[1]["error"]
    assert "like" in out[1]["error"]  # says what to write


def test_policy_table_for_the_governors() -> None:
    result = run("policy", "table", "--date", "2026-11-23", "--csv")
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in result.stdout.splitlines()]
    header = rows[0]
    assert header[:2] == ["role", "category"]
    assert any(h.startswith("morning break 10:30-10:45") for h in header)
    staff_facebook = next(r for r in rows if r[:2] == ["staff", "facebook"])
    by_period = dict(zip(header[2:], staff_facebook[2:], strict=True))
    assert by_period["morning break 10:30-10:45"] == "allow"
    assert by_period["lunch 12:00-13:00"] == "allow"
    assert by_period["lesson 08:45-10:30"] == "BLOCK"
    assert by_period["after school 15:15-23:59"] == "BLOCK"
    pupil_social = next(r for r in rows if r[:2] == ["pupil", "social"])
    assert set(pupil_social[2:]) == {"BLOCK"}
    # the seeds: staff use social media at break only, like Facebook
    staff_social = dict(
        zip(header[2:], next(r for r in rows if r[:2] == ["staff", "social"])[2:], strict=True)
    )
    assert staff_social == by_period
    official = next(r for r in rows if r[:2] == ["social_media_manager", "social"])
    assert set(official[2:]) == {"allow"}
    frontend = next(r for r in rows if r[:2] == ["staff", "platform_frontend"])
    assert set(frontend[2:]) == {"BLOCK"}


def test_policy_table_on_a_weekend() -> None:
    result = run("policy", "table", "--date", "2026-11-28")
    assert result.returncode == 0
    assert "is not a school day: weekend" in result.stdout


DEMO_IDENTITY = str(
    Path(__file__).resolve().parents[2] / "schoolgate" / "store" / "data" / "demo-identity.yaml"
)


@pytest.mark.parametrize(
    ("user", "role", "verdict"),
    [
        ("socialmedia1", "social_media_manager", "allow"),  # the official accounts, in lesson time
        ("teacher1", "staff", "block"),
        ("pupil1", "pupil", "block"),
    ],
)
def test_explain_user_gets_the_role_from_the_directory(user: str, role: str, verdict: str) -> None:
    result = run(
        "explain",
        "--user",
        user,
        "--identity",
        DEMO_IDENTITY,
        "--host",
        "facebook.com",
        "--at",
        "2026-11-23T09:00",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert (decision["role"], decision["verdict"]) == (role, verdict)


@pytest.mark.parametrize(
    ("role", "host"),
    [("pupil", "x.com"), ("staff", "www.instagram.com"), ("social_media_manager", "x.com")],
)
def test_explain_never_offers_to_ask_for_what_cannot_be_unblocked(role: str, host: str) -> None:
    """Newcomer review finding 6: X and Instagram cannot be unblocked at school, so explain
    says so, like the block page, instead of "ask the Business Manager"."""
    result = run("explain", "--role", role, "--host", host, "--at", "2026-11-23T12:30")
    assert result.returncode == 0, result.stderr
    assert "Blocked" in result.stdout
    assert "Business Manager" not in result.stdout
    assert "it cannot be unblocked at school, even if you ask." in result.stdout


def test_explain_tells_who_to_ask_where_an_unblock_is_possible() -> None:
    result = run("explain", "--role", "pupil", "--host", "facebook.com", "--at", "2026-11-23T12:30")
    assert result.returncode == 0, result.stderr
    assert "ask the Business Manager if you need it." in result.stdout


def test_explain_user_without_a_directory_is_refused_not_defaulted() -> None:
    """Newcomer review finding 8: --user teacher1 without --identity used to report
    'teacher1 (pupil)' silently."""
    result = subprocess.run(
        [SCHOOLGATE, "explain", "--user", "teacher1", "--host", "facebook.com"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "SCHOOLGATE_IDENTITY"},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "pass --identity FILE" in result.stderr
    assert "demo-identity.yaml" in result.stderr
    assert "or give --role ROLE" in result.stderr


def test_explain_reports_a_user_the_directory_does_not_know() -> None:
    result = run(
        "explain", "--user", "teacher11", "--identity", DEMO_IDENTITY, "--host", "facebook.com"
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nobody called 'teacher11' is in the directory" in result.stderr


def test_explain_help_says_what_the_exit_status_means() -> None:
    words = " ".join(run("explain", "--help").stdout.split())
    assert "Exit status: 0 when a decision was printed, whether it is allow or block" in words


@pytest.mark.parametrize(
    ("at", "clock"), [("10:35", "10:35"), ("9:05", "09:05"), ("13:45:10", "13:45:10")]
)
def test_explain_at_a_clock_time_means_today_at_school(at: str, clock: str) -> None:
    """Newcomer review finding 12: --at 10:35 gave "Invalid isoformat string"."""
    result = run("explain", "--role", "staff", "--host", "facebook.com", "--at", at, "--json")
    assert result.returncode == 0, result.stderr
    when = datetime.fromisoformat(json.loads(result.stdout)["at"])
    school = when.astimezone(ZoneInfo("Europe/London"))
    assert school.date() == datetime.now(ZoneInfo("Europe/London")).date()
    assert school.strftime("%H:%M:%S").startswith(clock if len(clock) > 5 else clock + ":00")


@pytest.mark.parametrize("at", ["10h35", "25:00", "tomorrow", "23/11/2026 10:35"])
def test_explain_names_the_times_it_can_read(at: str) -> None:
    result = run("explain", "--role", "staff", "--host", "facebook.com", "--at", at)
    assert result.returncode == 2
    assert f"cannot read the time {at!r}: write HH:MM for today (like 10:35)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("day", ["25/12/2026", "2026-12-25", "25/12/2026 "])
def test_policy_table_reads_a_day_as_a_uk_user_types_it(day: str) -> None:
    """Newcomer review finding 12: --date 25/12/2026 gave "invalid fromisoformat value"."""
    result = run("policy", "table", "--date", day)
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    assert "Friday 25 December 2026 is not a school day: bank holiday (Christmas Day)." in words


@pytest.mark.parametrize("day", ["31/02/2026", "12/25/2026", "tomorrow"])
def test_policy_table_names_the_day_forms_it_reads(day: str) -> None:
    result = run("policy", "table", "--date", day)
    assert result.returncode == 2
    assert f"argument --date: cannot read the day {day!r}: write it as DD/MM/YYYY" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_policy_table_fits_100_columns_and_csv_keeps_the_matrix() -> None:
    """Newcomer review finding 12: the rows were 196-264 characters wide."""
    text = run("policy", "table", "--date", "2026-11-23")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "   3  morning break 10:30-10:45" in lines
    staff = lines.index("staff:")
    assert lines[staff + 1].split() == ["category", "1", "2", "3", "4", "5", "6", "7"]
    facebook = next(line for line in lines[staff:] if line.split()[0] == "facebook")
    assert facebook.split()[1:] == ["BLOCK", "BLOCK", "allow", "BLOCK", "allow", "BLOCK", "BLOCK"]
    matrix = run("policy", "table", "--date", "2026-11-23", "--csv")
    assert len(matrix.stdout.splitlines()[0].split(",")) == 2 + 7  # the whole matrix, unchanged


@pytest.mark.parametrize(
    "args",
    [
        ("policy", "table", "--csv"),
        ("explain", "--role", "staff", "--host", "facebook.com"),
        ("pac", "--gateway", "gateway.school.lan:8080"),
    ],
)
def test_a_reader_that_stops_early_gets_no_traceback(args: tuple[str, ...]) -> None:
    """`schoolgate policy table --csv | head -1` ended in a BrokenPipeError traceback: the
    reader here stops before the first byte, which is what head does once it has a line."""
    process = subprocess.Popen(
        [SCHOOLGATE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.close()
    _, errors = process.communicate(timeout=120)
    assert "Traceback" not in errors
    assert "BrokenPipeError" not in errors
    assert process.returncode == 141


def test_pac_help_names_what_goes_direct() -> None:
    words = " ".join(run("pac", "--help").stdout.split())
    assert "never DIRECT)" not in words
    assert "Only these go DIRECT (not through the gateway): localhost, the gateway itself, " in (
        words
    )


def test_hash_password_makes_a_hash_the_users_file_takes() -> None:
    """An IT technician made a users file's password_hash by running Python (issue 17's
    run): `schoolgate hash-password` makes one, and a local directory signs in with it."""
    from schoolgate.store.directory import verify_password

    password = "walrus candle harbour"
    result = run("hash-password", stdin=password + "\n")
    assert result.returncode == 0, result.stderr
    made = result.stdout.strip()
    assert password not in result.stdout + result.stderr
    assert verify_password(password, made)
    assert not verify_password(password + "!", made)
    assert "password_hash" in result.stderr  # where to put it


def test_hash_password_refuses_a_short_one_in_words() -> None:
    result = run("hash-password", stdin="short\n")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "That password has 5 characters; use at least 10" in result.stderr


def test_hash_password_at_a_terminal_asks_twice() -> None:
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [SCHOOLGATE, "hash-password"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal: getpass reads the pty (stdin)
        text=True,
    )
    os.close(follower)
    assert process.stderr is not None

    def answer(prompt: str, line: bytes) -> None:
        # getpass empties the terminal's input when it turns echo off: answer after the prompt
        seen = ""
        while not seen.endswith(prompt):
            char = process.stderr.read(1)
            assert char, f"no {prompt!r} (stderr so far: {seen!r})"
            seen += char
        os.write(leader, line)

    answer("Password: ", b"walrus candle harbour\n")
    answer("The same again: ", b"walrus candle harbor\n")
    out, err = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 1
    assert out == ""
    assert "The two passwords differ; nothing was made." in err
