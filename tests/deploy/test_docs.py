"""The commands in README.md and docs/quick-start.md, run as written, so that a wrong flag or a
missing file in the docs fails the suite.

Each ```sh line runs in a sandbox folder that stands in for the server's /etc, /opt and /var:
`sudo` and `sudo -u schoolgate` are dropped (the tests run as root; the service user is
`nobody`, and the files made for it must end up its own), `apt-get install` is simulated
(`apt-get -s`: the packages must exist), `git clone` of the project clones this checkout (its
committed HEAD, as a technician would get it), systemd commands check that the units they name
were installed, the directory is the test's slapd and every network address is loopback. The
few commands that cannot run on this machine are listed in NOT_HERE with the reason; that list
is checked too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.support.needs import need
from tests.support.slapd import GROUPS_DN, PEOPLE_DN, SlapdServer, running_slapd

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NOT_HERE = {
    # command prefix -> why it cannot run on this (Debian 12) machine
    "sudo apt-get install -y python3.12 python3.12-venv git": (
        "Ubuntu 24.04 only: Debian 12 has no python3.12 package (the Debian steps run instead)"
    ),
    "sudo python3.12 -m venv /opt/schoolgate/venv": (
        "the Ubuntu 24.04 step; the Debian step makes the same environment with uv"
    ),
}


def sh_commands(path: Path) -> list[str]:
    """Every command of the ```sh blocks, continuation lines joined, comments kept out."""
    commands: list[str] = []
    in_block = False
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):  # also blocks indented inside a list
            in_block = line.strip() == "```sh"
            continue
        if not in_block:
            continue
        text = f"{pending} {line.strip()}" if pending else line.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        pending = ""
        command = strip_comment(text).strip()
        if command:
            commands.append(command)
    return commands


def strip_comment(line: str) -> str:
    """The line without a trailing shell comment (a # outside quotes, after a space)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def test_the_docs_have_commands_and_the_not_here_list_is_current() -> None:
    quick = sh_commands(ROOT / "docs" / "quick-start.md")
    readme = sh_commands(ROOT / "README.md")
    assert len(quick) > 15
    assert len(readme) >= 5
    for prefix in NOT_HERE:
        assert any(c.startswith(prefix) for c in quick), f"NOT_HERE is stale: {prefix}"
    assert not [
        c for c in quick + readme if re.search(r"pip install\s+(--upgrade\s+)?schoolgate", c)
    ], "never pip install the name"


# --- the quick start ---------------------------------------------------------------------------


class Sandbox:
    def __init__(self, root: Path, slapd: SlapdServer | None) -> None:
        self.root = root
        self.slapd = slapd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
        python312 = python_312()
        # uv would download a Python build from outside the package registries, which this
        # machine cannot reach: it finds this machine's own 3.12 instead (the same uv command).
        self.env["UV_PYTHON_DOWNLOADS"] = "never"
        self.env["PATH"] = f"{python312.parent}:{self.env.get('PATH', '')}:/usr/sbin:/sbin"

    def path(self, text: str) -> str:
        text = text.replace("sqlite:////", f"sqlite:///{self.root}/")  # an absolute file URL
        text = re.sub(r"(?<=-C )/etc(?=\s)", f"{self.root}/etc", text)  # tar -C /etc
        for where in (
            "/etc/schoolgate",
            "/var/lib/schoolgate",
            "/var/backups/schoolgate",
            "/opt/schoolgate",
            "/opt/uv",
            "/opt/python",
            "/etc/systemd/system",
        ):
            text = re.sub(
                rf"(?<![\w/]){re.escape(where)}(?=[/\s'\"]|$)", f"{self.root}{where}", text
            )
        return text

    def rewrite(self, command: str) -> str | None:
        """The command as it runs here; None when it was checked another way."""
        if command.startswith("sudo apt-get install"):
            packages = [w for w in shlex.split(command)[3:] if not w.startswith("-")]
            return "apt-get -s -qq install " + " ".join(packages)
        if command.startswith("sudo git clone "):
            words = shlex.split(command)
            return f"git clone -q {shlex.quote(str(ROOT))} {shlex.quote(self.path(words[-1]))}"
        if command.startswith("sudo useradd"):
            assert command.split()[-1] == "schoolgate"
            return "id nobody"
        if command.startswith(("sudo systemctl", "systemctl")):
            self.check_units(command)
            return None
        if command.startswith("sudoedit "):
            target = Path(self.path(command.split()[1]))
            assert target.is_file(), f"{command}: the file to edit is not there"
            return None
        command = command.replace("schoolgate:schoolgate", "nobody:nogroup")
        command = command.replace("-o schoolgate -g schoolgate", "-o nobody -g nogroup")
        command = command.replace("root:schoolgate", "root:nogroup")
        # As root: this machine's Python 3.12 lives under /root, which `nobody` cannot read.
        # The files must still end up the service user's (the data directory's owner).
        command = command.replace("sudo -u schoolgate ", "")
        command = re.sub(r"(^|[|&] *)sudo ", r"\1", command)
        if self.slapd is not None:
            command = command.replace("the-service-account-password", self.slapd.service_password)
        command = command.replace("--user jsmith", "--user teacher1")
        return self.path(command)

    def check_units(self, command: str) -> None:
        units = [w for w in shlex.split(command)[1:] if w.startswith("schoolgate")]
        installed = self.root / "etc" / "systemd" / "system"
        for unit in units:
            name = unit if "." in unit else f"{unit}.service"
            assert (installed / name).is_file(), f"{command}: {name} was not installed"

    def run(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def write_identity(self, doc_yaml: str) -> None:
        """The page's identity.yaml, its directory pointed at the test's slapd."""
        assert self.slapd is not None
        document = yaml.safe_load(doc_yaml)
        directory = document["directory"]
        assert directory["bind_password_file"] == "/etc/schoolgate/ldap-bind-password"
        directory.update(
            {
                "url": self.slapd.url,
                "bind_dn": self.slapd.service_dn,
                "bind_password_file": self.path(directory["bind_password_file"]),
                "user_search_base": PEOPLE_DN,
                "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
                "username_attribute": "uid",
                "groups": {"mode": "member_of", "search_base": GROUPS_DN},
            }
        )
        directory.pop("ca_file")  # the test directory speaks plain LDAP on loopback
        target = self.root / "etc" / "schoolgate" / "identity.yaml"
        target.write_text(yaml.safe_dump(document, sort_keys=False))


def python_312() -> Path:
    """A Python 3.12 interpreter on this machine (pyenv's on ours)."""
    for candidate in [
        shutil.which("python3.12"),
        *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")),
    ]:
        if candidate is None:
            continue
        found = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if found.returncode == 0 and found.stdout.strip():
            return Path(found.stdout.strip())
    need(False, "a Python 3.12", "install one (pyenv install 3.12) for the quick start's test")
    raise AssertionError("unreachable")


def yaml_block(path: Path) -> str:
    match = re.search(r"```yaml\n(.*?)```", path.read_text(), re.S)
    assert match
    return match.group(1)


@pytest.fixture
def sandbox() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sg-docs-"))
    folder.chmod(0o755)
    (folder / "etc" / "systemd" / "system").mkdir(parents=True)  # there on any systemd host
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.timeout(1500)
def test_every_quick_start_command_runs_as_written(sandbox: Path, tmp_path: Path) -> None:
    need(os.geteuid() == 0, "root", "the quick start's commands run as root (sudo)")
    page = ROOT / "docs" / "quick-start.md"
    with running_slapd(tmp_path) as slapd:
        box = Sandbox(sandbox, slapd)
        done: list[str] = []
        for command in sh_commands(page):
            if any(command.startswith(prefix) for prefix in NOT_HERE):
                continue
            if command.startswith("curl -s http://127.0.0.1:9090/metrics"):
                check_metrics_command(box, command)
                continue
            if "identity.yaml" in command and "explain" in command:
                box.write_identity(yaml_block(page))
            runnable = box.rewrite(command)
            if runnable is None:
                continue
            result = box.run(runnable)
            assert result.returncode == 0, (
                f"docs/quick-start.md: {command}\n(ran as: {runnable})\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
            if " explain " in command:
                assert "(staff)" in result.stdout, result.stdout
            done.append(command)
        assert any("schoolgate policy table" in c for c in done)
        assert any("ca server-cert" in c for c in done)
        cert = sandbox / "var" / "lib" / "schoolgate" / "admin-tls" / "admin-cert.pem"
        assert cert.is_file()
        assert (
            sandbox / "var" / "lib" / "schoolgate" / "admin-tls" / "admin-key.pem"
        ).stat().st_uid == int(subprocess.check_output(["id", "-u", "nobody"]))


def check_metrics_command(box: Sandbox, command: str) -> None:
    """Start the installed gateway as the env file and units would (metrics on a free port in
    place of 9090), make one request, then run the page's command against it."""
    port, metrics = _free_port(), _free_port()
    schoolgate = box.path("/opt/schoolgate/venv/bin/schoolgate")
    log = box.root / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                schoolgate,
                "gateway",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                str(port),
                "--data-dir",
                box.path("/var/lib/schoolgate"),
                "--policy",
                box.path("/etc/schoolgate/policy.yaml"),
                "--",
                "--set",
                f"schoolgate_metrics_port={metrics}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=box.env,
            cwd=box.root,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with socket.create_connection(("127.0.0.1", metrics), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        import httpx

        with httpx.Client(proxy=f"http://127.0.0.1:{port}", trust_env=False, timeout=20) as c:
            assert c.get("http://x.com/").status_code == 403  # X: blocked for everyone
        result = box.run(command.replace(":9090/", f":{metrics}/"), timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "schoolgate_requests_total" in result.stdout
    finally:
        terminate(proc)


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as a service manager stops it; SIGKILL if it has not ended in 20 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- backup and restore ------------------------------------------------------------------------

BACKUP_NOT_HERE = ("pg_dump", "pg_restore")  # PostgreSQL's own tools: the SQLite steps run here


@pytest.mark.e2e
def test_the_backup_and_restore_commands_run_as_written(sandbox: Path, tmp_path: Path) -> None:
    """docs/backup.md on a server laid out as the quick start leaves it (the installed units,
    the data directory with its CA, secret, spool and SQLite database): back up, lose a row,
    restore, check. Ops review M8: the page used a sqlite3 program that is never installed and a
    backup folder the service user could not write."""
    from datetime import date

    from schoolgate.proxy_addons.ca import ensure_school_ca
    from schoolgate.store.db import upgrade
    from schoolgate.store.tokens import load_or_create_secret

    need(os.geteuid() == 0, "root", "the backup commands run as root (sudo)")
    page = ROOT / "docs" / "backup.md"
    box = Sandbox(sandbox, None)
    venv = sandbox / "opt" / "schoolgate" / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    (venv / "schoolgate").symlink_to(VENV_BIN / "schoolgate")
    for unit in (ROOT / "deploy" / "systemd").glob("schoolgate-*"):
        shutil.copy(unit, sandbox / "etc" / "systemd" / "system")
    data, etc = sandbox / "var" / "lib" / "schoolgate", sandbox / "etc" / "schoolgate"
    (data / "spool").mkdir(parents=True)
    etc.mkdir(parents=True)
    shutil.copy(ROOT / "schoolgate" / "policy" / "data" / "seed.yaml", etc / "policy.yaml")
    ca = ensure_school_ca(data / "ca", "Example Primary School")
    serial = x509.load_pem_x509_certificate(ca.cert_pem_path.read_bytes()).serial_number
    load_or_create_secret(data / "secret")
    database = data / "schoolgate.db"
    upgrade(f"sqlite:///{database}")
    sql(database, "CREATE TABLE backup_probe (note TEXT)")
    sql(database, "INSERT INTO backup_probe VALUES ('yesterday')")
    subprocess.run(["chown", "-R", "nobody:nogroup", str(data)], check=True)
    today = date.today().isoformat()
    ran: list[str] = []
    for command in sh_commands(page):
        if command.startswith(BACKUP_NOT_HERE):
            continue
        if command.startswith("sudo systemctl start"):  # after the restore: the data is back
            assert sql(database, "SELECT note FROM backup_probe") == [("yesterday",)]
        runnable = box.rewrite(command.replace("DATE", today))
        if runnable is None:
            continue
        result = box.run(runnable, timeout=120)
        assert result.returncode == 0, (
            f"docs/backup.md: {command}\n(ran as: {runnable})\n{result.stdout}{result.stderr}"
        )
        ran.append(command)
        if "sqlite3.connect(sys.argv[1]).backup" in command:  # the backup is taken: lose a row
            sql(database, "DELETE FROM backup_probe")
        if " ca status " in command:  # the certificate the devices trust, back in place
            assert f"serial {serial:x}" in result.stdout, result.stdout
    backups = sandbox / "var" / "backups" / "schoolgate"
    assert (backups / f"schoolgate-{today}.db").is_file()
    assert (backups / f"data-{today}.tar.gz").is_file()
    assert backups.stat().st_uid == int(subprocess.check_output(["id", "-u", "nobody"]))
    assert any(" db status " in c for c in ran)
    assert any(" ca status " in c for c in ran)


def sql(database: Path, statement: str) -> list[tuple[object, ...]]:
    """One statement on its own connection, closed after (the restore replaces the file)."""
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        return db.execute(statement).fetchall()


# --- the README --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_every_readme_command_runs_as_written(tmp_path: Path) -> None:
    commands = sh_commands(ROOT / "README.md")
    port, admin_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    assert commands[0].startswith("./scripts/run.sh")
    run = subprocess.Popen(
        [
            "bash",
            "-c",
            f"{commands[0]} --listen-port {port} --admin-port {admin_port} "
            f"--data-dir {tmp_path / 'data'}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out = ""
        deadline = time.monotonic() + 180
        assert run.stdout is not None
        while "Press Ctrl-C to stop." not in out:
            line = run.stdout.readline()
            assert line or run.poll() is None, out
            out += line
            assert time.monotonic() < deadline, out
        for command in commands[1:]:
            if command.startswith("./scripts/test.sh"):
                # the suite itself: run it on one small file, through every set-up step
                command += " -q --collect-only tests/deploy/test_scripts.py"
            elif command.startswith("curl "):
                command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
                if "facebook" in command and not blocked_now("teacher1", "www.facebook.com"):
                    continue  # at break it would really go out to Facebook: never from a test
                command = command.replace("curl ", "curl -s -o /dev/null -w '%{http_code}' ", 1)
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, f"README.md: {command}\n{result.stdout}{result.stderr}"
            if command.startswith("curl "):
                assert result.stdout == "403", (command, result.stdout)
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.communicate(timeout=60)
    assert run.returncode == 0


def blocked_now(user: str, host: str) -> bool:
    result = subprocess.run(
        [
            str(VENV_BIN / "schoolgate"),
            "explain",
            "--user",
            user,
            "--identity",
            str(ROOT / "schoolgate" / "store" / "data" / "demo-identity.yaml"),
            "--host",
            host,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return '"block"' in result.stdout


def test_the_overview_says_what_the_seed_does_at_the_threshold() -> None:
    """Ops review L5: the overview and the seed policy disagreed on whether repeated attempts
    place a sanction or recommend one to the DSL."""
    seed = yaml.safe_load((ROOT / "schoolgate" / "policy" / "data" / "seed.yaml").read_text())
    found = _values(seed, "on_threshold")
    assert len(found) == 1
    overview = " ".join((ROOT / "docs" / "overview.md").read_text().split())
    assert f"seed policy's `on_threshold: {found[0]}`" in overview


def _values(node: object, key: str) -> list[object]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == key] + [
            x for v in node.values() for x in _values(v, key)
        ]
    if isinstance(node, list):
        return [x for v in node for x in _values(v, key)]
    return []
