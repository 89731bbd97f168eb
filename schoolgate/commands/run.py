"""`schoolgate run`: the whole product on embedded defaults, for a first look and for the demo.

Starts the gateway (and the admin, when it is installed) as child processes with the seed
policy, the demo directory and the data in ./var/schoolgate, prints where to point a browser
and the proxy, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from schoolgate.commands.common import DEMO_IDENTITY
from schoolgate.commands.lists import empty_category_lines
from schoolgate.store.db import secure_directory
from schoolgate.store.policy_files import seed_policy_path

TRIAL_POLICY = "policy.yaml"  # the trial's own copy of the seed, in the data directory
TRIAL_HEADER = (
    "# This trial's policy: a copy of schoolgate's seed policy, made by `schoolgate run`.\n"
    "# IT can change it in the admin (Policy, School calendar); schoolgate never overwrites it.\n"
    "# Delete it to start again from the seed. Its keys: docs/policy.md.\n"
)


def trial_policy(data_dir: Path) -> Path:
    """The trial's editable policy: the seed, copied into the data directory the first time
    (the shipped seed itself is read-only, so the admin's editors could change nothing)."""
    path = data_dir / TRIAL_POLICY
    if not path.exists():
        text = seed_policy_path().read_text(encoding="utf-8")
        path.write_text(TRIAL_HEADER + text, encoding="utf-8")
        path.chmod(0o640)
    return path


DEMO_ACCOUNTS = ("pupil1", "pupil2", "teacher1", "socialmedia1", "bursar1", "dsl1", "it1")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="start schoolgate on embedded defaults (seed policy, demo directory)",
        description="Start the gateway (and the admin) on embedded defaults and say where to "
        "point a browser and the proxy. Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--listen-host",
        default="127.0.0.1",
        help="the address the gateway and the admin listen on (default "
        "127.0.0.1; 0.0.0.0 makes both reachable from the school network)",
    )
    parser.add_argument(
        "--public-name",
        default=None,
        help="the name or address devices reach this machine by, used in the "
        "banner and the block page's links (default: the listen address, "
        "or this machine's own address when listening on 0.0.0.0)",
    )
    parser.add_argument("--listen-port", type=int, default=8080, help="gateway port (8080)")
    parser.add_argument("--admin-port", type=int, default=8081, help="admin port (8081)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SCHOOLGATE_DATA_DIR", "") or "var/schoolgate"),
        help="where the CA, database and secrets live (./var/schoolgate)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        help="policy file (default: a copy of the seed policy in the data directory, made on the first run)",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        default=DEMO_IDENTITY,
        help="identity settings (default: the demo directory)",
    )
    parser.set_defaults(handler=run)


WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names, not a binding


def reachable_host(listen_host: str) -> str:
    """The address this machine reaches its own listener on: loopback for a wildcard."""
    return "127.0.0.1" if listen_host in WILDCARDS else listen_host


def own_address() -> str:
    """This machine's address on the network (not loopback), or 127.0.0.1 when it has none.
    A UDP connect() only picks a route: no packet is sent."""
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if not ipaddress.ip_address(address).is_loopback:
                return address
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only, nothing is sent
            address = str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    return "127.0.0.1" if address == "0.0.0.0" else address  # noqa: S104 - a value


def public_host(args: argparse.Namespace) -> str:
    """The host name or address to tell people and to put into links."""
    if args.public_name:
        return str(args.public_name)
    if args.listen_host in WILDCARDS:
        return own_address()
    return str(args.listen_host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def port_problem(host: str, port: int, flag: str) -> str | None:
    """None when `port` can be listened on at `host`; otherwise what to do, naming our flag."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = host or "0.0.0.0"  # noqa: S104 - a test bind, closed at once
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as error:
            return (
                f"cannot listen on {address} port {port} ({error.strerror}): "
                f"another program uses it. Stop that program, or choose another port "
                f"with {flag} PORT"
            )
    return None


def _child_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "schoolgate.cli"]
    host = _url_host(public_host(args))
    admin_url = f"http://{host}:{args.admin_port}"
    gateway = [
        *me,
        "gateway",
        "--listen-host",
        args.listen_host,
        "--listen-port",
        str(args.listen_port),
        "--data-dir",
        str(args.data_dir),
        "--identity",
        str(args.identity),
        "--admin-url",
        admin_url,
    ]
    if args.policy:
        gateway += ["--policy", str(args.policy)]
    if args.public_name:
        gateway += ["--gateway-host", args.public_name]  # the PAC file names it too
    commands = {"gateway": gateway}
    if _admin_available():
        admin = [
            *me,
            "admin",
            "--listen-host",
            args.listen_host or "0.0.0.0",  # noqa: S104
            "--listen-port",
            str(args.admin_port),
            "--data-dir",
            str(args.data_dir),
            "--identity",
            str(args.identity),
            "--gateway-url",
            f"http://{host}:{args.listen_port}",
        ]
        if args.policy:
            admin += ["--policy", str(args.policy)]
        commands["admin"] = admin
    return commands


def _admin_available() -> bool:
    """The admin service is built by a later part of the project; run what exists."""
    return importlib.util.find_spec("schoolgate.commands.admin") is not None


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def banner(args: argparse.Namespace, started: set[str]) -> str:
    host = _url_host(public_host(args))
    proxy = f"{host}:{args.listen_port}"
    lines = [
        "",
        "schoolgate is running on embedded defaults.",
        f"  Proxy:     {proxy}  (use the PAC file http://{proxy}/proxy.pac, or set it in "
        f'the browser with "No proxy for": {host}, so that the admin is reached directly)',
        f"  School CA: http://{proxy}/ca.pem  (install it so the browser can show block pages)",
    ]
    if "admin" in started:
        lines.append(
            f"  Admin:     http://{host}:{args.admin_port}/  (sign in with a demo "
            "account: bursar1, dsl1, it1)"
        )
        lines.append(
            "             plain HTTP on purpose, for this trial: its sign-in cookie is "
            "not marked Secure. For real use put the admin behind HTTPS "
            "(docs/quick-start.md)."
        )
    lines += [
        f"  Policy:    {args.policy or 'the seed policy shipped with schoolgate'}",
        f"  Data:      {args.data_dir}",
        *empty_category_lines(args.policy),
        "  Demo accounts (proxy sign-in): " + ", ".join(f"{u} / {u}-demo" for u in DEMO_ACCOUNTS),
        "",
        "Try it:",
        f"  curl -x http://pupil1:pupil1-demo@{proxy} http://www.tiktok.com/     # blocked page",
        f"  curl -x http://teacher1:teacher1-demo@{proxy} http://www.facebook.com/ "
        "# break times only",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    secure_directory(args.data_dir)  # 0750 whatever the umask (review finding 15)
    if args.policy is None:
        args.policy = trial_policy(args.data_dir)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = reachable_host(args.listen_host)
    ports = {"gateway": args.listen_port, "admin": args.admin_port}
    commands = _child_commands(args)
    flags = {"gateway": "--listen-port", "admin": "--admin-port"}
    for name in commands:
        problem = port_problem(args.listen_host, ports[name], flags[name])
        if problem is not None:
            print(f"schoolgate run: the {name} {problem}", file=sys.stderr)
            return 2
    try:
        for name, command in commands.items():
            env = dict(os.environ)
            if name == "admin":
                env["SCHOOLGATE_COOKIE_SECURE"] = "false"  # the plain-HTTP trial, on purpose
            children[name] = subprocess.Popen(command, env=env)
            if not _wait_listening(host, ports[name], children[name], 60):
                print(
                    f"schoolgate run: the {name} did not start (see the messages above)",
                    file=sys.stderr,
                )
                return 1
        print(banner(args, set(children)), flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(
                        f"schoolgate run: the {name} stopped (exit {child.returncode})",
                        file=sys.stderr,
                    )
                    return child.returncode or 1
            time.sleep(0.5)
        return 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
