"""schoolgate/commands/admin.py: settings from flags and environment, and the database check."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from schoolgate.commands.admin import DEMO_IDENTITY, prepare_database, settings_from
from schoolgate.store.db import default_database_url


def _args(tmp_path: Path, **extra: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "identity": None,
        "policy": None,
        "trust": None,
        "gateway_url": None,
        "database": None,
    }
    values.update(extra)
    return argparse.Namespace(**values)


def test_the_demo_directory_means_development_and_http_cookies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "SCHOOLGATE_ENVIRONMENT",
        "SCHOOLGATE_COOKIE_SECURE",
        "SCHOOLGATE_SESSION_SECRET",
        "SCHOOLGATE_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = settings_from(_args(tmp_path, identity=DEMO_IDENTITY))
    assert settings.environment.value == "development"
    assert settings.cookie_secure is False
    assert settings.embedded_database


def test_elsewhere_production_wants_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCHOOLGATE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("SCHOOLGATE_SESSION_SECRET", raising=False)
    other = tmp_path / "identity.yaml"
    other.write_text("{}\n")
    with pytest.raises(ValueError, match="no session secret"):
        settings_from(_args(tmp_path, identity=other))


def test_the_trust_flag_gives_the_trust_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHOOLGATE_TRUST_FILE", str(tmp_path / "from-environment.yaml"))
    assert settings_from(_args(tmp_path, identity=DEMO_IDENTITY)).trust_file == (
        tmp_path / "from-environment.yaml"
    )
    flag = tmp_path / "trust.yaml"
    assert settings_from(_args(tmp_path, identity=DEMO_IDENTITY, trust=flag)).trust_file == flag


def test_the_embedded_database_is_migrated_and_any_other_is_only_checked(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    assert prepare_database(url, embedded=True) is None
    other = f"sqlite:///{tmp_path / 'other.db'}"
    problem = prepare_database(other, embedded=False)
    assert problem is not None
    assert "run: schoolgate db upgrade --database" in problem


# --- H1: never a sign-in that silently fails; HTTPS from the school CA --------------------------

import os  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402

from schoolgate.commands.admin import plain_http_problem  # noqa: E402

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")


@pytest.mark.parametrize(
    ("secure", "host", "tls", "proxied", "refused"),
    [
        (True, "0.0.0.0", False, False, True),
        (True, "10.1.2.3", False, False, True),
        (True, "127.0.0.1", False, False, False),  # behind a local HTTPS reverse proxy
        (True, "0.0.0.0", True, False, False),
        (True, "0.0.0.0", False, True, False),
        (False, "0.0.0.0", False, False, False),  # the plain-HTTP trial, on purpose
    ],
)
def test_a_secure_cookie_over_plain_http_beyond_loopback_is_refused(
    secure: bool, host: str, tls: bool, proxied: bool, refused: bool
) -> None:
    problem = plain_http_problem(
        cookie_secure=secure, listen_host=host, tls=tls, behind_proxy=proxied
    )
    assert (problem is not None) == refused
    if problem:
        assert "SCHOOLGATE_COOKIE_SECURE=false" in problem
        assert "--tls-cert" in problem


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_admin_command_refuses_to_start_where_nobody_could_sign_in(tmp_path: Path) -> None:
    env = {**os.environ, "SCHOOLGATE_COOKIE_SECURE": "true"}
    proc = subprocess.run(
        [
            SCHOOLGATE,
            "admin",
            "--listen-host",
            "0.0.0.0",
            "--listen-port",
            str(_port()),
            "--data-dir",
            str(tmp_path),
            "--identity",
            str(DEMO_IDENTITY),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "nobody could sign in" in proc.stderr


@pytest.mark.e2e
def test_the_admin_serves_https_with_a_certificate_from_the_school_ca(tmp_path: Path) -> None:
    from schoolgate.cli import main

    data, tls = tmp_path / "data", tmp_path / "tls"
    assert (
        main(
            [
                "ca",
                "server-cert",
                "--data-dir",
                str(data),
                "--host",
                "localhost",
                "--host",
                "127.0.0.1",
                "--out-dir",
                str(tls),
            ]
        )
        == 0
    )
    port = _port()
    env = {**os.environ, "SCHOOLGATE_COOKIE_SECURE": "true"}
    proc = subprocess.Popen(
        [
            SCHOOLGATE,
            "admin",
            "--listen-host",
            "0.0.0.0",
            "--listen-port",
            str(port),
            "--data-dir",
            str(data),
            "--identity",
            str(DEMO_IDENTITY),
            "--tls-cert",
            str(tls / "admin-cert.pem"),
            "--tls-key",
            str(tls / "admin-key.pem"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ca = str(data / "ca" / "mitmproxy-ca-cert.pem")
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(
                    f"https://127.0.0.1:{port}/signin",
                    timeout=5,
                    trust_env=False,
                    verify=ssl.create_default_context(cafile=ca),
                )
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline
                time.sleep(0.3)
        assert page.status_code == 200
        assert "Secure" in page.headers.get("set-cookie", "Secure")
    finally:
        proc.terminate()
        proc.wait(20)


# --- L7: the admin follows the policy file ------------------------------------------------------

SEED = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"


def test_the_admin_reloads_a_changed_policy_and_keeps_the_old_on_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from schoolgate.commands.admin import PolicyWatcher
    from schoolgate.store.policy_files import load_policy

    folder = tmp_path / "cm"
    (folder / "..v1").mkdir(parents=True)
    (folder / "..v1" / "policy.yaml").write_text(SEED.read_text())
    (folder / "..data").symlink_to("..v1")
    (folder / "policy.yaml").symlink_to("..data/policy.yaml")
    resources = argparse.Namespace(policy=load_policy(folder / "policy.yaml"))
    first = resources.policy
    watcher = PolicyWatcher(resources, folder / "policy.yaml")
    assert watcher.check() is False  # unchanged

    (folder / "..v2").mkdir()
    (folder / "..v2" / "policy.yaml").write_text(
        SEED.read_text().replace(
            'name: "Seed social-media policy (UK primary school)"', 'name: "Updated"'
        )
    )
    (folder / "..tmp").symlink_to("..v2")
    os.replace(folder / "..tmp", folder / "..data")  # kubelet's swap
    assert watcher.check() is True
    assert resources.policy is not first
    assert resources.policy.name == "Updated"

    (folder / "..v3").mkdir()
    (folder / "..v3" / "policy.yaml").write_text("rules: [\n")
    (folder / "..tmp").symlink_to("..v3")
    os.replace(folder / "..tmp", folder / "..data")
    with caplog.at_level("WARNING", logger="schoolgate.admin"):
        assert watcher.check() is False
    assert resources.policy.name == "Updated"
    assert "refused" in caplog.text
