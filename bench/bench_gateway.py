"""Benchmark: CPU per request of schoolgate's gateway against bare mitmdump, Squid and e2guardian,
in the same run, on loopback, for plain HTTP, passed-through HTTPS (a new tunnel per request, and
kept alive) and intercepted HTTPS (kept and new connections). Not a test: it prints the table
for docs/benchmarks.md, with ratios (compare within one run: the machine may be shared).

    .venv/bin/python bench/bench_gateway.py [--quick] [--rounds 5] [--proxies ...] [--json FILE]

Needs wrk and nginx (Debian: apt-get install wrk nginx-light); Squid and e2guardian are optional
comparators (apt-get install squid e2guardian), skipped with a message when not installed. It
starts its own nginx, and its own instance of each proxy, on free loopback ports (never the
system's services): bare mitmdump, the lean gateway with its front door (the default, "lean"),
the lean gateway without it ("lean_mitm": mitmproxy serves every connection), optionally
`--engine mitmdump` ("schoolgate"), Squid and e2guardian; and drives each in turn, rotating the
order every round. No DNS and no /etc/hosts: the gateways look the benchmark's names up in a
hosts file of its own; the other proxies are given loopback addresses; every client sends the
name as SNI. CPU per request is the proxy process's utime+stime (/proc/PID/stat) over the
requests that completed with a 200. Every load is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schoolgate.proxy_addons.ca import ensure_school_ca  # noqa: E402
from tests.support.gateway import OriginCA  # noqa: E402

BIN = Path(sys.executable).parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_proxy.lua"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

# The benchmark's own names, one per class, so the policy and bare mitmdump's --ignore-hosts can
# treat each class as it should be treated. The gateways resolve them through a hosts file of the
# benchmark's (schoolgate_hosts_file); the other proxies get the address instead of the name.
PLAIN_HOST = "plain.bench.test"  # plain HTTP, uncategorised: allowed
INTERCEPT_HOST = "inspect.bench.test"  # categorised ("curriculum", allowed): decrypted
PASS_HOST = "pass.bench.test"  # uncategorised, allowed: passed through
ADDRESSES = {PLAIN_HOST: "127.0.0.1", INTERCEPT_HOST: "127.0.0.1", PASS_HOST: "127.0.0.2"}
PROXIES = (
    "bare",
    "lean_mitm",
    "lean",
    "lean_asyncio",
    "lean_norec",
    "schoolgate",
    "squid",
    "e2guardian",
    "squid_log",
    "e2guardian_log",
    "floor",
)
DEFAULT_PROXIES = ("bare", "lean_mitm", "lean", "squid", "e2guardian")
# The gateways take names (their own hosts file); so do --baseline's (they were sent the
# loopback addresses, so the passed-through class was decrypted there and nothing counted).
GATEWAYS = {
    "lean",
    "lean_mitm",
    "lean_asyncio",
    "lean_norec",
    "schoolgate",
    "lean-base",
    "schoolgate-base",
    "floor",
}
# configured without decryption: passthrough and HTTP only
PASS_ONLY = {"squid", "e2guardian", "squid_log", "e2guardian_log"}
CLASSES = (
    "http",
    "https_passthrough",
    "https_passthrough_keepalive",
    "https_keepalive",
    "https_newconn",
)
CLASS_TITLES = {
    "http": "plain HTTP 22 B, keep-alive (wrk, absolute-form)",
    "https_passthrough": "HTTPS passed through, new tunnel per request",
    "https_passthrough_keepalive": "HTTPS passed through, keep-alive",
    "https_keepalive": "HTTPS intercepted, keep-alive",
    "https_newconn": "HTTPS intercepted, new connection per request",
}
# Issue 15's targets for the lean gateway (with its front door), as ratios in one run.
TARGETS = {
    "http": ("e2guardian", 1.0),
    "https_passthrough": ("e2guardian", 1.0),
    "https_passthrough_keepalive": ("squid", 2.0),
    "https_keepalive": ("bare", 1.0),
    "https_newconn": ("bare", 1.0),
}

BENCH_POLICY = f"""\
name: "gateway benchmark policy"
roles:
  pupil: "Everyone (the benchmark runs without an identity file)"
default_role: pupil
categories:
  curriculum: {{domains: [{INTERCEPT_HOST}]}}
  x: {{domains: [x.com, twitter.com, t.co], not_unblockable_for: all}}
  social: {{domains: [tiktok.com, snapchat.com]}}
calendar:
  timezone: "Europe/London"
  school_days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
  school_day: {{start: "00:00", end: "23:59"}}
  periods: []
  bank_holidays: none
rules:
  - {{name: x, roles: all, categories: [x], action: block}}
  - {{name: pupils-social, roles: [pupil], categories: [social], action: block}}
  - {{name: curriculum, roles: [pupil], categories: [curriculum], action: allow}}
default: allow
# The origins are this machine's loopback (nginx on free ports): internal addresses, which the
# gateway refuses unless the policy lists them, on ports it refuses unless the policy names them.
internal:
  allow:
    - {{hosts: [{PLAIN_HOST}, {INTERCEPT_HOST}, {PASS_HOST}, 127.0.0.1/32, 127.0.0.2/32],
       roles: [pupil], note: "the benchmark's origins"}}
ports: {{connect: [443, 80, HTTPS_PORT], http: [80, HTTP_PORT]}}
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        listen 127.0.0.2:{https_port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        location / {{ default_type text/plain; return 200 "hello from the origin\\n"; }}
    }}
}}
"""


SQUID_CONF = """\
http_port 127.0.0.1:{port}
http_access allow all
cache deny all
cache_mem 8 MB
access_log {access_log}
cache_store_log none
cache_log {dir}/cache.log
pid_filename {dir}/squid.pid
coredump_dir {dir}
shutdown_lifetime 1 seconds
"""

# e2guardian: Debian's configuration with these settings replaced (no upstream proxy: it
# connects directly; no decryption, its default; dockermode keeps it in the foreground).
E2GUARDIAN_SETTINGS = {
    "filterip": "127.0.0.1",
    "nodaemon": "on",
    "dockermode": "on",
    "nologger": "on",
    "loglevel": "0",
    "httpworkers": "100",
}
# e2guardian_log: the same, logging as Debian ships it (loglevel 3: every request), into the
# benchmark's folder: what a school's filter does, and schoolgate's recording does.
E2GUARDIAN_LOGGED = {
    **{k: v for k, v in E2GUARDIAN_SETTINGS.items() if k not in ("nologger", "loglevel")},
    "nologger": "off",
    "loglevel": "3",
}


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole process (all its threads), in seconds: user space (the
    proxy's own code) and the kernel's work for it (sockets, mostly)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICK, int(fields[12]) / CLOCK_TICK


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads), in seconds."""
    return sum(cpu_split(pid))


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port} within 90 s:\n{log.read_text()}")


@dataclass
class Started:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Setup:
    folder: Path
    origin_ca: OriginCA
    school_ca: Path  # the gateway CA certificate (PEM), shared by all three proxies
    http_port: int
    https_port: int
    pin_proxy: list[str]  # taskset prefix for the proxies
    pin_load: list[str]  # taskset prefix for nginx and wrk
    started: list[Started] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: list[str],
        port: int,
        root: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> Started:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
            )
        one = Started(name, port, proc, log)
        self.started.append(one)
        wait_listening(port, proc, log, name)
        return one

    def stop_all(self) -> None:
        for one in reversed(self.started):
            if one.proc.poll() is None:
                one.proc.terminate()
                try:
                    one.proc.wait(15)
                except subprocess.TimeoutExpired:
                    one.proc.kill()
                    one.proc.wait(5)


def pinning(enabled: bool) -> tuple[list[str], list[str]]:
    """Proxies on the last CPU, load and origin on the others (when there are two or more)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    load = ",".join(str(c) for c in cpus[:-1])
    os.sched_setaffinity(0, set(cpus[:-1]))  # this process drives the HTTPS load
    return ["taskset", "-c", str(cpus[-1])], ["taskset", "-c", load]


def target(proxy: str, host: str) -> str:
    """What `proxy` is asked to connect to for `host`: the name for the gateways, else its
    loopback address (the client still sends the name as SNI)."""
    return host if proxy in GATEWAYS else ADDRESSES[host]


def squid_command(folder: Path, port: int, logged: bool = False) -> list[str] | None:
    """Squid with no access log; `logged`: with Squid's default access log (a line a request)."""
    squid = shutil.which("squid") or "/usr/sbin/squid"
    if not Path(squid).exists():
        return None
    own = folder / ("squid_log" if logged else "squid")
    own.mkdir(mode=0o777)
    own.chmod(0o777)  # squid drops to its own user
    access_log = f"daemon:{own}/access.log squid" if logged else "none"
    (own / "squid.conf").write_text(SQUID_CONF.format(port=port, dir=own, access_log=access_log))
    return [squid, "-N", "-f", str(own / "squid.conf")]


def e2guardian_command(folder: Path, port: int, logged: bool = False) -> list[str] | None:
    """e2guardian with no logger; `logged`: with Debian's logging (every request, to a file)."""
    e2guardian = shutil.which("e2guardian") or "/usr/sbin/e2guardian"
    debian = Path("/etc/e2guardian/e2guardian.conf")
    if not Path(e2guardian).exists() or not debian.exists():
        return None
    own = folder / ("e2guardian_log" if logged else "e2guardian")
    own.mkdir(mode=0o777)
    own.chmod(0o777)  # e2guardian drops to its own user
    settings = {
        **(E2GUARDIAN_LOGGED if logged else E2GUARDIAN_SETTINGS),
        "filterports": str(port),
        "transparenthttpsport": str(free_port()),
        "pidfilename": f"'{own}/e2.pid'",
        **({"loglocation": f"'{own}/access.log'"} if logged else {}),
    }
    lines = [
        line
        for line in debian.read_text().splitlines()
        if line.lstrip("#").split("=")[0].strip() not in settings
    ]
    lines += [f"{name} = {value}" for name, value in settings.items()]
    # e2guardian reads its filter group's file next to the main one (NAMEf1.conf).
    (own / "e2guardian.conf").write_text("\n".join(lines) + "\n")
    (own / "e2guardianf1.conf").symlink_to(debian.with_name("e2guardianf1.conf"))
    return [e2guardian, "-c", str(own / "e2guardian.conf")]


def origin_setup(folder: Path, pin: bool) -> tuple[Setup, list[str]]:
    """The shared part of a benchmark run: CPU pinning, the origins' CA, an nginx origin
    configured (not started) on free ports, and the benchmark policy in `folder`. Returns the
    Setup (its school_ca still to be set) and the command that starts nginx."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists() or shutil.which("wrk") is None:
        raise SystemExit("needs nginx and wrk: apt-get install -y nginx-light wrk")
    pin_proxy, pin_load = pinning(pin)
    folder.chmod(0o755)  # Squid and e2guardian run as their own users
    origin_ca = OriginCA.make(folder / "origin-ca", [PLAIN_HOST, INTERCEPT_HOST, PASS_HOST])
    setup = Setup(folder, origin_ca, Path(), free_port(), free_port(), pin_proxy, pin_load)
    (folder / "nginx" / "tmp").mkdir(parents=True)
    conf = folder / "nginx" / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=folder / "nginx",
            http_port=setup.http_port,
            https_port=setup.https_port,
            cert=origin_ca.cert_pem,
            key=origin_ca.key_pem,
        )
    )
    (folder / "policy.yaml").write_text(
        BENCH_POLICY.replace("HTTPS_PORT", str(setup.https_port)).replace(
            "HTTP_PORT", str(setup.http_port)
        )
    )
    (folder / "hosts").write_text(
        "".join(f"{address} {name}\n" for name, address in ADDRESSES.items())
    )
    return setup, [*pin_load, nginx, "-c", str(conf), "-p", str(folder / "nginx")]


# `--profile FILE`: the lean gateway runs under cProfile (process CPU time, the event loop's
# thread only) while the loads run (the bench signals it: SIGUSR1 on, SIGUSR2 off), written to
# FILE when it stops. cProfile roughly doubles the cost: read it for where the time goes, never
# for the table.
PROFILED = (
    "import cProfile, os, signal, sys, time\n"
    "from schoolgate.cli import main\n"
    "sys.argv = ['schoolgate', *sys.argv[2:]]\n"
    "profile = cProfile.Profile(time.process_time)\n"
    "signal.signal(signal.SIGUSR1, lambda *_: profile.enable())\n"
    "signal.signal(signal.SIGUSR2, lambda *_: profile.disable())\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    profile.disable()\n"
    "    profile.dump_stats(os.environ['SG_PROFILE'])\n"
)
PROFILING: set[int] = set()  # the pids of the profiled gateways


@contextlib.contextmanager
def environment(
    folder: Path,
    pin: bool,
    wanted: Sequence[str],
    baseline: Path | None = None,
    profile: Path | None = None,
) -> Iterator[tuple[Setup, dict[str, Started]]]:
    setup, nginx = origin_setup(folder, pin)
    pin_proxy, origin_ca, policy = setup.pin_proxy, setup.origin_ca, folder / "policy.yaml"
    data = folder / "gateway-data"
    data.mkdir()
    setup.school_ca = ensure_school_ca(data / "ca", "Benchmark Primary School").cert_pem_path
    upstream_ca = f"ssl_verify_upstream_trusted_ca={origin_ca.ca_pem}"
    proxies: dict[str, Started] = {}
    try:
        setup.start("nginx", nginx, setup.http_port)
        if "bare" in wanted:
            port = free_port()
            proxies["bare"] = setup.start(
                "bare",
                [
                    *pin_proxy,
                    str(BIN / "mitmdump"),
                    "-q",
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(port),
                    "--set",
                    "connection_strategy=lazy",
                    "--set",
                    f"confdir={data / 'ca'}",
                    "--set",
                    upstream_ca,
                    "--ignore-hosts",
                    rf"^{re.escape(ADDRESSES[PASS_HOST])}:",
                ],
                port,
            )
        runs: list[tuple[str, str, list[str], Path]] = [
            (name, engine, extra, ROOT)
            for name, engine, extra in (
                ("schoolgate", "mitmdump", []),
                ("lean_mitm", "lean", ["--set", "schoolgate_front_door=false"]),
                ("lean", "lean", []),
                ("lean_asyncio", "lean", []),
                # what recording costs: the same gateway writing no events
                ("lean_norec", "lean", ["--set", "schoolgate_recording=false"]),
            )
            if name in wanted
        ]
        if baseline is not None:  # the same commands from another checkout (--baseline)
            runs += [
                ("schoolgate-base", "mitmdump", [], baseline),
                ("lean-base", "lean", [], baseline),
            ]
        for name, engine, extra, root in runs:
            port = free_port()
            program = [str(BIN / "schoolgate")]
            if profile is not None and name == "lean":
                os.environ["SG_PROFILE"] = str(profile)
                program = [str(BIN / "python"), "-c", PROFILED, "schoolgate"]
            proxies[name] = setup.start(
                name,
                [
                    *pin_proxy,
                    *program,
                    "gateway",
                    "--engine",
                    engine,
                    "--policy",
                    str(policy),
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(port),
                    "--data-dir",
                    str(data),
                    "--",
                    "--set",
                    upstream_ca,
                    # Detect blocks CONNECTs to ports other than these: the origin's is odd.
                    "--set",
                    f"schoolgate_connect_ports={setup.https_port}",
                    "--set",
                    f"schoolgate_hosts_file={folder / 'hosts'}",
                    *extra,
                ],
                port,
                root,
                # lean_asyncio: the lean gateway on asyncio's own loop instead of uvloop's
                {"SCHOOLGATE_EVENT_LOOP": "asyncio"} if name == "lean_asyncio" else None,
            )
            if program[0] != str(BIN / "schoolgate"):
                PROFILING.add(proxies[name].proc.pid)
        if "floor" in wanted:  # Python's floor for a passed-through tunnel: bench/floor_proxy.py
            port = free_port()
            floor = [str(BIN / "python"), str(Path(__file__).with_name("floor_proxy.py"))]
            proxies["floor"] = setup.start(
                "floor", [*pin_proxy, *floor, str(port), str(folder / "hosts")], port
            )
        for name, make in (
            ("squid", squid_command),
            ("e2guardian", e2guardian_command),
            ("squid_log", squid_command),
            ("e2guardian_log", e2guardian_command),
        ):
            if name not in wanted:
                continue
            port = free_port()
            command = make(folder, port, name.endswith("_log"))
            if command is None:
                package = name.removesuffix("_log")
                print(
                    f"# {name} is not installed (apt-get install -y {package}): left out",
                    flush=True,
                )
                continue
            proxies[name] = setup.start(name, [*pin_proxy, *command], port)
        yield setup, proxies
    finally:
        setup.stop_all()


# --- load generators ----------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How much load one measurement sends; every one stops by itself."""

    seconds: float  # wrk duration, and the time limit of the HTTPS generator
    wrk_connections: int
    connections: int  # HTTPS connections per measurement (keep-alive class)
    requests_per_connection: int  # keep-alive class
    new_connections: int  # new-connection and passthrough classes
    concurrency: int


FULL = Load(
    seconds=6,
    wrk_connections=10,
    connections=10,
    requests_per_connection=60,
    new_connections=150,
    concurrency=8,
)
QUICK = Load(
    seconds=2,
    wrk_connections=4,
    connections=4,
    requests_per_connection=20,
    new_connections=30,
    concurrency=4,
)
WARMUP = Load(
    seconds=1,
    wrk_connections=2,
    connections=2,
    requests_per_connection=5,
    new_connections=5,
    concurrency=2,
)


def run_wrk(setup: Setup, proxy: str, proxy_port: int, load: Load) -> int:
    """Plain HTTP through the proxy; the number of requests answered without error."""
    url = f"http://{target(proxy, PLAIN_HOST)}:{setup.http_port}/"
    command = [
        *setup.pin_load,
        "wrk",
        "-t1",
        f"-c{load.wrk_connections}",
        f"-d{max(1, round(load.seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{proxy_port}",
        "--",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=load.seconds + 60)
    line = next((x for x in result.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary:\n{result.stdout}\n{result.stderr}")
    summary = json.loads(line)
    return int(summary["requests"]) - int(summary["errors"])


def client_context(setup: Setup) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(setup.school_ca))  # intercepted
    context.load_verify_locations(cafile=str(setup.origin_ca.ca_pem))  # passed through
    context.set_alpn_protocols(["http/1.1"])
    return context


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _connection(
    proxy_port: int, to: str, host: str, port: int, requests: int, context: ssl.SSLContext
) -> int:
    """CONNECT `to`, TLS with SNI `host`, then `requests` GETs on the one connection; how many
    got a 200."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    ok = 0
    try:
        writer.write(f"CONNECT {to}:{port} HTTP/1.1\r\nHost: {to}:{port}\r\n\r\n".encode())
        await writer.drain()
        reply = await reader.readuntil(b"\r\n\r\n")
        if not reply.startswith(b"HTTP/1.1 200"):
            return 0
        await writer.start_tls(context, server_hostname=host)
        for i in range(requests):
            close = b"Connection: close\r\n" if i == requests - 1 else b""
            writer.write(
                b"GET / HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n" + close + b"\r\n"
            )
            await writer.drain()
            ok += await _read_response(reader) == 200
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return ok


async def _https_load(
    proxy_port: int,
    to: str,
    host: str,
    port: int,
    connections: int,
    requests: int,
    concurrency: int,
    seconds: float,
    context: ssl.SSLContext,
) -> int:
    deadline = time.monotonic() + seconds
    queue = iter(range(connections))
    done = failed = 0

    async def worker() -> None:
        nonlocal done, failed
        for _ in queue:
            if time.monotonic() >= deadline:
                return
            try:
                ok = await asyncio.wait_for(
                    _connection(proxy_port, to, host, port, requests, context), timeout=30
                )
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                failed += 1
                continue
            done += ok  # not `done += await ...`: that reads `done` before the await

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failed:
        print(f"  ({failed} of {connections} connections failed)", flush=True)
    return done


def run_https(setup: Setup, proxy: str, proxy_port: int, kind: str, load: Load) -> int:
    context = client_context(setup)
    if kind == "https_keepalive":
        host, connections, requests = INTERCEPT_HOST, load.connections, load.requests_per_connection
    elif kind == "https_newconn":
        host, connections, requests = INTERCEPT_HOST, load.new_connections, 1
    elif kind == "https_passthrough_keepalive":
        host, connections, requests = PASS_HOST, load.connections, load.requests_per_connection
    else:
        host, connections, requests = PASS_HOST, load.new_connections, 1
    concurrency = min(load.concurrency, connections)
    return asyncio.run(
        _https_load(
            proxy_port,
            target(proxy, host),
            host,
            setup.https_port,
            connections,
            requests,
            concurrency,
            load.seconds * 4,
            context,
        )
    )


def drive(setup: Setup, proxy: Started, kind: str, load: Load) -> tuple[float, float, int]:
    """One measurement: (CPU seconds the proxy used, of which in user space, requests
    completed)."""
    user_before, system_before = cpu_split(proxy.proc.pid)
    profiled = proxy.proc.pid in PROFILING
    if profiled:
        os.kill(proxy.proc.pid, signal.SIGUSR1)
    completed = (
        run_wrk(setup, proxy.name, proxy.port, load)
        if kind == "http"
        else run_https(setup, proxy.name, proxy.port, kind, load)
    )
    time.sleep(0.5)  # let the proxy finish closing the connections: that is its work too
    if profiled:
        os.kill(proxy.proc.pid, signal.SIGUSR2)
    user, system = cpu_split(proxy.proc.pid)
    user -= user_before
    return user + system - system_before, user, completed


def issuer_seen(setup: Setup, proxy: Started, host: str) -> str:
    """The common name of the certificate issuer the client sees for `host` via `proxy`."""

    async def probe() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        to = f"{target(proxy.name, host)}:{setup.https_port}"
        writer.write(f"CONNECT {to} HTTP/1.1\r\nHost: {to}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await writer.start_tls(client_context(setup), server_hostname=host)
        transport = writer.transport
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object else None
        writer.close()
        issuer = dict(x[0] for x in (cert or {}).get("issuer", ()))
        return str(issuer.get("commonName", "?"))

    return asyncio.run(probe())


# --- the run ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_state() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    import mitmproxy.version

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "mitmproxy": mitmproxy.version.VERSION,
    }


def applies(kind: str, proxy: str) -> bool:
    """Squid and e2guardian are set up to pass HTTPS through, never to decrypt it; the floor
    (bench/floor_proxy.py) passes tunnels through and does nothing else."""
    if proxy == "floor":
        return kind in ("https_passthrough", "https_passthrough_keepalive")
    return not (proxy in PASS_ONLY and kind in ("https_keepalive", "https_newconn"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, small loads")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5; quick 1)")
    parser.add_argument(
        "--classes",
        default=",".join(CLASSES),
        help=f"comma-separated subset of {','.join(CLASSES)}",
    )
    parser.add_argument(
        "--proxies",
        default=",".join(DEFAULT_PROXIES),
        help=f"comma-separated subset of {','.join(PROXIES)}",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the lean gateway under cProfile and write its stats to this file "
        "(for where the time goes: it doubles the cost)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run both engines from this checkout "
        "(e.g. a git worktree of an older commit), as schoolgate-base and "
        "lean-base, in the same rounds",
    )
    parser.add_argument(
        "--new-connections",
        type=int,
        default=None,
        help="connections per round in the new-connection and new-tunnel classes (default "
        f"{FULL.new_connections}; more for a finer figure: CPU is counted in 10 ms ticks)",
    )
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL
    if args.new_connections is not None:
        load = dataclasses.replace(load, new_connections=args.new_connections)
    rounds = args.rounds or (1 if args.quick else 5)
    classes = [c for c in args.classes.split(",") if c]
    wanted = [p for p in args.proxies.split(",") if p]
    unknown = (set(classes) - set(CLASSES)) | (set(wanted) - set(PROXIES))
    if unknown:
        parser.error(
            f"unknown {sorted(unknown)}; classes: {', '.join(CLASSES)}; "
            f"proxies: {', '.join(PROXIES)}"
        )

    state = machine_state()
    print(
        f"# {state['date']}; {state['cpus']} CPUs ({state['cpu_model']}); load average "
        f"{state['loadavg']}; Python {state['python']}; mitmproxy {state['mitmproxy']}"
    )
    samples: list[dict[str, object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        environment(Path(tmp), not args.no_pin, wanted, args.baseline, args.profile) as (
            setup,
            proxies,
        ),
    ):
        print(
            f"# pinning: proxies {setup.pin_proxy[-1:] or 'none'}, load and origin "
            f"{setup.pin_load[-1:] or 'none'}"
        )
        names = list(proxies)
        for name, proxy in proxies.items():
            hosts = [
                h
                for h in (INTERCEPT_HOST, PASS_HOST)
                if h == PASS_HOST or name not in {*PASS_ONLY, "floor"}
            ]
            seen = {h: issuer_seen(setup, proxy, h) for h in hosts}
            print(
                f"# {name}: " + ", ".join(f"{h} certificate issued by {seen[h]!r}" for h in hosts)
            )
            for kind in classes:  # warm-up: certificates, caches, imports
                if applies(kind, name):
                    drive(setup, proxy, kind, WARMUP)
        for number in range(rounds):
            shift = number % len(names)
            order = names[shift:] + names[:shift]
            for kind in classes:
                for name in order:
                    if not applies(kind, name):
                        continue
                    cpu, user, completed = drive(setup, proxies[name], kind, load)
                    us = cpu / completed * 1e6 if completed else float("nan")
                    user_us = user / completed * 1e6 if completed else float("nan")
                    samples.append(
                        {
                            "round": number,
                            "class": kind,
                            "proxy": name,
                            "cpu_s": round(cpu, 3),
                            "requests": completed,
                            "us_per_request": round(us, 1),
                            "user_us_per_request": round(user_us, 1),
                        }
                    )
                    print(
                        f"round {number + 1}/{rounds} {kind:28} {name:10} {completed:6} req "
                        f"{cpu:6.2f} s CPU {us:8.0f} us/req",
                        flush=True,
                    )
        state["loadavg_after"] = os.getloadavg()
    print_table(samples, classes, names)
    if args.baseline is not None:
        print_baseline(samples, classes, args.baseline)
    print(f"# load average at the end: {state['loadavg_after']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": state, "samples": samples}, indent=1))
    return 0


def print_table(
    samples: list[dict[str, object]], classes: Sequence[str], names: Sequence[str]
) -> None:
    def values(kind: str, proxy: str, column: str) -> list[float]:
        return [
            float(str(s[column])) for s in samples if s["class"] == kind and s["proxy"] == proxy
        ]

    def round_ratios(kind: str, proxy: str, against: str) -> list[float]:
        ratios = []
        for r in sorted({int(str(s["round"])) for s in samples}):
            mine = [
                float(str(s["us_per_request"]))
                for s in samples
                if s["round"] == r and s["class"] == kind and s["proxy"] == proxy
            ]
            other = [
                float(str(s["us_per_request"]))
                for s in samples
                if s["round"] == r and s["class"] == kind and s["proxy"] == against
            ]
            if mine and other and other[0] > 0:
                ratios.append(mine[0] / other[0])
        return ratios

    def cell(value: float) -> str:
        return "-" if value != value else f"{value:,.0f}"  # NaN: not measured

    for title, column in (
        ("CPU per request of the proxy process (µs, median over rounds)", "us_per_request"),
        (
            "of which in user space (µs, median over rounds; the rest is the kernel's, for "
            "sockets)",
            "user_us_per_request",
        ),
    ):
        print(f"\n{title}")
        print(f"| class | {' | '.join(names)} |")
        print(f"|---|{'---:|' * len(names)}")
        for kind in classes:
            print(
                f"| {CLASS_TITLES[kind]} | "
                + " | ".join(cell(median(values(kind, n, column))) for n in names)
                + " |"
            )
    if "lean" not in names:
        return
    others = [n for n in names if n != "lean"]
    print(
        "\nlean (with the front door) / each other proxy: median of the per-round ratios;"
        " target: issue 15's"
    )
    print(f"| class | {' | '.join('lean / ' + n for n in others)} | target |")
    print(f"|---|{'---:|' * (len(others) + 1)}")
    for kind in classes:
        ratios = []
        for other in others:
            r = round_ratios(kind, "lean", other)
            ratios.append(f"{median(r):.2f}" if r else "-")
        against, limit = TARGETS[kind]
        print(f"| {CLASS_TITLES[kind]} | {' | '.join(ratios)} | <= {limit:g} x {against} |")


def print_baseline(
    samples: list[dict[str, object]], classes: Sequence[str], baseline: Path
) -> None:
    """This checkout against --baseline, engine by engine: median of the per-round ratios."""

    def per_round(kind: str, proxy: str) -> dict[int, float]:
        return {
            int(str(s["round"])): float(str(s["us_per_request"]))
            for s in samples
            if s["class"] == kind and s["proxy"] == proxy
        }

    print(f"\nthis checkout / {baseline} (median of per-round ratios; rounds in brackets)")
    for kind in classes:
        cells = []
        for engine in ("schoolgate", "lean"):
            new, old = per_round(kind, engine), per_round(kind, f"{engine}-base")
            ratios = [new[r] / old[r] for r in sorted(new) if r in old and old[r] > 0]
            cells.append(
                f"{engine} {median(ratios):5.2f} [" + ", ".join(f"{x:.2f}" for x in ratios) + "]"
            )
        print(f"{CLASS_TITLES[kind]:52} " + "   ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
