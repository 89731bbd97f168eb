"""`schoolgate run`, the README's first command: it starts, serves, explains itself, stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SCHOOLGATE = str(Path(sys.executable).parent / "schoolgate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.e2e
def test_run_starts_the_product_on_embedded_defaults(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            SCHOOLGATE,
            "run",
            "--listen-port",
            str(port),
            "--admin-port",
            str(admin_port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out = ""
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while "Press Ctrl-C to stop." not in out:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, out
            out += line
            assert time.monotonic() < deadline, out
        assert f"Proxy:     127.0.0.1:{port}" in out
        assert "pupil1 / pupil1-demo" in out
        proxy = f"http://pupil1:pupil1-demo@127.0.0.1:{port}"
        with httpx.Client(proxy=proxy, timeout=20) as client:
            blocked = client.get("http://www.tiktok.com/")
        assert blocked.status_code == 403
        assert "blocked at school" in blocked.text
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20) as client:
            assert client.get("http://www.tiktok.com/").status_code == 407  # sign in first
        ca = httpx.get(f"http://127.0.0.1:{port}/ca.pem", timeout=20)
        assert ca.text.startswith("-----BEGIN CERTIFICATE-----")
        assert (tmp_path / "data" / "ca").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + rest
    with socket.socket() as s:  # the gateway child is gone too
        assert s.connect_ex(("127.0.0.1", port)) != 0


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCHOOLGATE, "run", "--data-dir", str(tmp_path / "data"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_banner(proc: subprocess.Popen[str], seconds: float = 90) -> str:
    assert proc.stdout is not None
    out = ""
    deadline = time.monotonic() + seconds
    while "Press Ctrl-C to stop." not in out:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, out
        out += line
        assert time.monotonic() < deadline, out
    return out


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    return rest


@pytest.mark.e2e
def test_listening_on_all_addresses_makes_the_admin_and_links_reachable(tmp_path: Path) -> None:
    """--listen-host 0.0.0.0: the admin listens there too, and the banner and the block page's
    "Ask for access" link name the public name, not 127.0.0.1 (a pupil's laptop cannot use it).
    Only loopback addresses are contacted: 127.0.0.2 proves the admin is not bound to
    127.0.0.1 alone."""
    port, admin_port = free_port(), free_port()
    proc = _start(
        [
            "--listen-host",
            "0.0.0.0",
            "--public-name",
            "gateway.school.test",
            "--listen-port",
            str(port),
            "--admin-port",
            str(admin_port),
        ],
        tmp_path,
    )
    try:
        out = _read_banner(proc)
        assert f"Proxy:     gateway.school.test:{port}" in out
        assert f"Admin:     http://gateway.school.test:{admin_port}/" in out
        # A browser set to the proxy by hand sends the admin through it, where the gateway
        # refuses its own ports (security review, findings 1-4): the block page's "Ask for
        # access" link would end on a block page. The banner says what to set.
        assert '"No proxy for": gateway.school.test' in " ".join(out.split())
        assert "127.0.0.1" not in out.split("schoolgate is running")[1]
        # the banner comes once both ports really answer
        for p in (port, admin_port):
            with socket.create_connection(("127.0.0.2", p), timeout=5):
                pass
        pac = httpx.get(f"http://127.0.0.2:{port}/proxy.pac", timeout=20)
        assert f"PROXY gateway.school.test:{port}" in pac.text
        signin = httpx.get(f"http://127.0.0.2:{admin_port}/signin", timeout=20)
        assert signin.status_code == 200
        proxy = f"http://pupil1:pupil1-demo@127.0.0.2:{port}"
        with httpx.Client(proxy=proxy, timeout=20) as client:
            blocked = client.get("http://www.tiktok.com/")
        assert blocked.status_code == 403
        assert f'href="http://gateway.school.test:{admin_port}/requests/new?' in blocked.text
    finally:
        rest = _stop(proc)
    assert proc.returncode == 0, rest


def test_the_default_public_address_is_this_machines_own_when_listening_everywhere() -> None:
    import argparse

    from schoolgate.commands.run import own_address, public_host

    args = argparse.Namespace(listen_host="0.0.0.0", public_name=None)
    assert public_host(args) == own_address()
    assert public_host(argparse.Namespace(listen_host="127.0.0.1", public_name=None)) == "127.0.0.1"
    assert public_host(argparse.Namespace(listen_host="0.0.0.0", public_name="gw.lan")) == "gw.lan"


@pytest.mark.parametrize("which", ["--listen-port", "--admin-port"])
def test_a_taken_port_is_reported_with_schoolgates_own_flag_and_no_banner(
    tmp_path: Path, which: str
) -> None:
    port, admin_port = free_port(), free_port()
    taken = port if which == "--listen-port" else admin_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        started = time.monotonic()
        proc = subprocess.run(
            [
                SCHOOLGATE,
                "run",
                "--data-dir",
                str(tmp_path / "data"),
                "--listen-port",
                str(port),
                "--admin-port",
                str(admin_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "Press Ctrl-C" not in proc.stdout
    assert f"port {taken}" in proc.stderr
    assert f"with {which} PORT" in proc.stderr
    assert "--mode regular@" not in proc.stderr + proc.stdout
    assert time.monotonic() - started < 30


@pytest.mark.e2e
def test_the_trials_policy_is_a_copy_of_the_seed_that_it_can_change_in_the_admin(
    tmp_path: Path,
) -> None:
    """Issue 16 as a newcomer meets it: on embedded defaults the admin's policy and calendar
    editors must work (they answered 409, "the seed policy cannot be changed here")."""
    port, admin_port = free_port(), free_port()
    proc = _start(["--listen-port", str(port), "--admin-port", str(admin_port)], tmp_path)
    try:
        out = _read_banner(proc)
        copy = tmp_path / "data" / "policy.yaml"
        seed = Path(__file__).resolve().parents[2] / "schoolgate" / "policy" / "data" / "seed.yaml"
        assert copy.read_text(encoding="utf-8").endswith(seed.read_text(encoding="utf-8"))
        assert f"Policy:    {copy}" in out
        with httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=20) as admin:
            form = admin.get("/signin").text
            token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            signed_in = admin.post(
                "/signin", data={"username": "it1", "password": "it1-demo", "csrf_token": token}
            )
            assert signed_in.status_code in (200, 303)
            assert admin.get("/calendar/edit").status_code == 200
    finally:
        _stop(proc)
    copy.write_text("# changed by IT\n" + copy.read_text(encoding="utf-8"), encoding="utf-8")
    proc = _start(["--listen-port", str(port), "--admin-port", str(admin_port)], tmp_path)
    try:
        _read_banner(proc)
    finally:
        _stop(proc)
    assert copy.read_text(encoding="utf-8").startswith("# changed by IT\n")  # never overwritten
