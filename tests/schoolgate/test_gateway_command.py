"""`schoolgate gateway`'s mitmdump command line: our defaults, and what the technician adds."""

from __future__ import annotations

from pathlib import Path

import pytest

from schoolgate.cli import make_parser
from schoolgate.commands.gateway import data_dir, mitmdump_arguments


def sets_of(argv: list[str]) -> list[tuple[str, str]]:
    return [
        tuple(argv[i + 1].split("=", 1))
        for i, a in enumerate(argv)  # type: ignore[misc]
        if a == "--set"
    ]


def command_for(tmp_path: Path, *extra: str) -> list[str]:
    args = make_parser().parse_args(["gateway", "--data-dir", str(tmp_path), *extra])
    return mitmdump_arguments(args, data_dir(args))


def test_safe_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHOOLGATE_DATABASE_URL", raising=False)
    sets = dict(sets_of(command_for(tmp_path)))
    assert sets["connection_strategy"] == "lazy"  # a blocked site is never contacted
    assert sets["onboarding"] == "false"
    assert sets["confdir"] == str((tmp_path / "ca").resolve())
    assert sets["schoolgate_database_url"] == f"sqlite:///{tmp_path}/schoolgate.db"
    # With a database, the overrides file is only where the last ones read are kept (for a
    # start while the database is down), never a second source.
    assert sets["schoolgate_overrides"] == str((tmp_path / "overrides-last.json").resolve())
    assert not any(name.startswith("emudhra") for name in sets)


def test_overrides_file_runs_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCHOOLGATE_DATABASE_URL", raising=False)
    sets = dict(sets_of(command_for(tmp_path, "--overrides", str(tmp_path / "o.json"))))
    assert sets["schoolgate_overrides"] == str((tmp_path / "o.json").resolve())
    assert "schoolgate_database_url" not in sets


def test_extra_sets_replace_defaults_and_list_options_keep_every_value(tmp_path: Path) -> None:
    argv = command_for(
        tmp_path,
        "--",
        "--set",
        "connection_strategy=eager",
        "--set",
        "schoolgate_connect_ports=80",
        "--set=schoolgate_connect_ports=443",
        "-s",
        "extra.py",
    )
    sets = sets_of(argv)
    assert [v for n, v in sets if n == "connection_strategy"] == ["eager"]
    assert [v for n, v in sets if n == "schoolgate_connect_ports"] == ["80", "443"]
    assert argv[-2:] == ["-s", "extra.py"]


def test_the_gateway_refuses_an_out_of_date_database_and_says_what_to_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    other = tmp_path / "elsewhere.db"  # not the embedded default: never migrated for you
    other.write_bytes(b"")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schoolgate"),
            "gateway",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen-port",
            "0",
            "--database",
            f"sqlite:///{other}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "schoolgate db upgrade --database" in result.stderr
