"""deploy/compose and the Dockerfile: compose's own parser accepts the file, refuses to start while
a required secret is unset, and the services wait for what they need (healthy database,
finished migrations); the image runs as a non-root user with the data directory as a volume."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.needs import need, need_program

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SECRETS = {
    "SCHOOLGATE_DB_PASSWORD": "db-password-0123456789abcdef",
    "SCHOOLGATE_SESSION_SECRET": "session-secret-0123456789abcdef0123456789",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password-0123456789",
    "SCHOOLGATE_SCHOOL_NAME": "Example Primary School",
    "SCHOOLGATE_GATEWAY_HOST": "gateway.school.lan",
    "SCHOOLGATE_ADMIN_HOST": "admin.school.lan",
    "SCHOOLGATE_ADMIN_URL": "https://admin.school.lan:8081",
}


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) if it works here, else Debian's `docker-compose` (v1.29)."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30
        ).returncode
        == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    need(
        legacy is not None,
        "docker compose (or docker-compose)",
        "install Debian's 'docker-compose' or Docker's compose plugin",
    )
    assert legacy is not None
    return [legacy]


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Given as --env-file so that a technician's own .env in the checkout cannot interfere."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def run_config(env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "config"],
        cwd=COMPOSE,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(empty_env_file: Path) -> dict[str, Any]:
    result = run_config(SECRETS, empty_env_file)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def test_every_service_is_there(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {
        "postgres",
        "migrate",
        "admin-cert",
        "gateway",
        "admin",
        "purge",
        "notify",
        "alertmanager",
        "prometheus",
        "grafana",
    }


@pytest.mark.parametrize(
    "service", ["postgres", "gateway", "admin", "purge", "alertmanager", "prometheus", "grafana"]
)
def test_long_running_services_have_healthchecks(config: dict[str, Any], service: str) -> None:
    check = config["services"][service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert config["services"][service]["restart"] == "unless-stopped"


@pytest.mark.parametrize("service", ["gateway", "admin"])
def test_the_gateway_and_admin_wait_for_migrations_and_the_database(
    config: dict[str, Any], service: str
) -> None:
    depends = config["services"][service]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_migrations_are_a_one_shot_step(config: dict[str, Any]) -> None:
    migrate = config["services"]["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_secrets_reach_the_services(config: dict[str, Any]) -> None:
    admin = config["services"]["admin"]["environment"]
    assert admin["SCHOOLGATE_SESSION_SECRET"] == SECRETS["SCHOOLGATE_SESSION_SECRET"]
    assert SECRETS["SCHOOLGATE_DB_PASSWORD"] in admin["SCHOOLGATE_DATABASE_URL"]
    assert "SCHOOLGATE_SESSION_SECRET" not in config["services"]["gateway"]["environment"]


@pytest.mark.parametrize(
    "missing", ["SCHOOLGATE_DB_PASSWORD", "SCHOOLGATE_SESSION_SECRET", "GRAFANA_ADMIN_PASSWORD"]
)
def test_compose_refuses_to_start_without_a_secret(missing: str, empty_env_file: Path) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = run_config(env, empty_env_file)
    assert result.returncode != 0
    assert f"set {missing} in .env" in result.stderr


def test_the_example_env_file_names_every_required_variable() -> None:
    example = (COMPOSE / ".env.example").read_text()
    for name in SECRETS:
        assert f"{name}=" in example


def test_the_dockerfile() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms
    # one fixed Python release (3.12, what the project supports), never a moving tag
    assert all(re.fullmatch(r"python:3\.12\.\d+-slim-bookworm", line.split()[1]) for line in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["schoolgate"]  # the last stage runs as a non-root user
    assert 'VOLUME ["/var/lib/schoolgate"]' in lines
    text = "\n".join(lines)
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in text
    assert "pip install --no-cache-dir --no-deps ." in text  # nothing resolved at build time
    assert text.index("requirements.lock") < text.index("--no-deps .")
    assert 'ENTRYPOINT ["schoolgate"]' in lines


def _lock() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as {name: (version, hashes)}."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = ""
    for raw in (ROOT / "requirements.lock").read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            entries[name][1].append(line.removeprefix("--hash="))
        else:
            assert not line.startswith("--"), f"no index options in the lock: {line}"
            package, _, version = line.partition(";")[0].partition("==")  # no marker
            version = version.strip()
            assert version, f"not pinned: {line}"
            name = package.lower().replace("_", "-")
            entries[name] = (version, [])
    return entries


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """L6: image builds resolved unpinned dependencies."""
    import tomllib

    from packaging.requirements import Requirement

    lock = _lock()
    assert all(
        hashes and all(h.startswith("sha256:") for h in hashes) for _, hashes in lock.values()
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower().replace("_", "-")
        assert name in lock, f"{name} is not in requirements.lock: run ./scripts/lock.sh"
        assert requirement.specifier.contains(lock[name][0]), (
            f"{name}=={lock[name][0]} does not satisfy {spec}: run ./scripts/lock.sh"
        )
    # mitmproxy's own dependencies are locked too, not only ours
    assert {"cryptography", "h2", "mitmproxy-rs", "pyopenssl"} <= set(lock)


def test_a_purge_job_applies_retention(config: dict[str, Any]) -> None:
    """H2: compose installs purged nothing."""
    purge = config["services"]["purge"]
    script = " ".join(purge["command"])
    assert "schoolgate db purge" in script
    assert "sleep 86400" in script
    assert purge["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert SECRETS["SCHOOLGATE_DB_PASSWORD"] in purge["environment"]["SCHOOLGATE_DATABASE_URL"]


def test_the_admin_serves_https_with_a_certificate_from_the_school_ca(
    config: dict[str, Any],
) -> None:
    """H1: no plain-HTTP admin whose Secure cookie browsers drop."""
    admin = config["services"]["admin"]
    command = admin["command"]
    assert "--tls-cert=/var/lib/schoolgate/admin-tls/admin-cert.pem" in command
    assert "--tls-key=/var/lib/schoolgate/admin-tls/admin-key.pem" in command
    assert admin["depends_on"]["admin-cert"]["condition"] == "service_completed_successfully"
    cert = config["services"]["admin-cert"]["command"]
    assert cert[:2] == ["ca", "server-cert"]
    assert f"--host={SECRETS['SCHOOLGATE_ADMIN_HOST']}" in cert
    assert "--out-dir=/var/lib/schoolgate/admin-tls" in cert
    assert "https://127.0.0.1:8081/readyz" in " ".join(admin["healthcheck"]["test"])
    gateway = config["services"]["gateway"]["command"]
    assert f"--admin-url={SECRETS['SCHOOLGATE_ADMIN_URL']}" in gateway
    assert SECRETS["SCHOOLGATE_ADMIN_URL"].startswith("https://")


def test_alertmanager_receives_the_alert_rules_and_e_mails_them(config: dict[str, Any]) -> None:
    """M11: alerts reached no one."""
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    assert "alertmanager" in config["services"]
    assert config["services"]["prometheus"]["depends_on"]["alertmanager"]
    mounts = " ".join(str(v) for v in config["services"]["alertmanager"]["volumes"])
    assert "config/alertmanager.yml" in mounts


def test_one_command_makes_every_file_the_stack_needs(tmp_path: Path) -> None:
    """M11: init.sh makes .env (random secrets), the policy, an identity template, the bind
    password file and Alertmanager's e-mail config; compose then accepts the folder, amtool the
    Alertmanager config, and `policy check` the policy. A second run keeps what is there."""
    from schoolgate.store.policy_files import load_policy

    env = {**os.environ, "SCHOOLGATE_COMPOSE_DIR": str(tmp_path)}
    first = subprocess.run(
        [str(COMPOSE / "init.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert "Before 'docker compose up -d', edit:" in first.stdout
    dotenv = dict(
        line.split("=", 1)
        for line in (tmp_path / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("SCHOOLGATE_DB_PASSWORD", "SCHOOLGATE_SESSION_SECRET", "GRAFANA_ADMIN_PASSWORD"):
        assert len(dotenv[name]) == 64, name
    assert load_policy(tmp_path / "config" / "policy.yaml").rules
    assert yaml.safe_load((tmp_path / "config" / "identity.yaml").read_text())["directory"]
    alertmanager = yaml.safe_load((tmp_path / "config" / "alertmanager.yml").read_text())
    assert (
        alertmanager["receivers"][0]["email_configs"][0]["to"]
        == dotenv["SCHOOLGATE_ALERT_EMAIL_TO"]
    )
    amtool = need_program("amtool", "prometheus-alertmanager")
    checked = subprocess.run(
        [amtool, "check-config", str(tmp_path / "config" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if os.geteuid() == 0:
        assert (tmp_path / "config" / "ldap-bind-password").stat().st_gid == 10001
    (tmp_path / "config" / "policy.yaml").write_text("# mine\n")
    second = subprocess.run(
        [str(COMPOSE / "init.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "config" / "policy.yaml").read_text() == "# mine\n"
    assert (
        dict(
            line.split("=", 1)
            for line in (tmp_path / ".env").read_text().splitlines()
            if line and not line.startswith("#")
        )
        == dotenv
    )
    # compose accepts the real folder with this .env
    result = subprocess.run(
        [*compose_command(), "--env-file", str(tmp_path / ".env"), "config", "-q"],
        cwd=COMPOSE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
