"""Benchmark: one trust's schools served by N gateway processes recording into ONE PostgreSQL.
Not a test: it prints the table for docs/benchmarks.md and docs/trust.md ("how many schools and
pupils per replica and per PostgreSQL").

    .venv/bin/python bench/bench_trust_scale.py [--schools 20,100] [--processes 1,2,4]
        [--seconds 12] [--connections 24] [--requests-per-connection 10]
        [--writers 1,2,4] [--writer-events 40000]

For each number of schools S it writes a trust: the seed policy (its shipped lists) as the base,
school X (1..S) with its own calendar and clients 127.X.0.0/16, one school in four with a
category of its own (as bench_trust.py). For each N it starts N `schoolgate gateway --engine
lean` processes on their own loopback ports, all recording into one PostgreSQL database made for
the run (127.0.0.1:5432, dropped at the end), and an nginx origin. Clients in this process open
keep-alive connections, each bound to a pupil's address 127.X.y.z (a random school and pupil:
Linux routes all of 127/8 to lo, so the gateway attributes it to school X), spread over the N
gateways, and ask for an allowed page on the origin three times in four and for x.com (blocked,
answered by the gateway) once. No identity file: every client is the default role (pupil).

Measured per run: requests answered; event rows landed in PostgreSQL from the first request to
the backlog drained (every request is one event); the schools the rows name; the gateways' CPU
(utime+stime from /proc) per request; the CPU of the PostgreSQL backends serving the run's
database per event (the server's shared writers and checkpointer are not counted); each
gateway's resident memory with the S schools loaded, before and after the load; and, before
the load, what the idle gateways cost PostgreSQL per second (their snapshot refreshes).

Then the database's side alone: --writers processes, each one gateway's EventWriter without the
proxy, store --writer-events events each into the same database at once (events built before
the clock starts, as bench_events.py): the rate PostgreSQL takes events from several gateways
when the gateways are not the limit, and its backends' CPU per event.

Bounded: each run stops its load after --seconds and waits at most 60 s for the backlog; the
whole default run takes about five minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_events import make_event, submit_all
from bench_gateway import (
    BIN,
    PLAIN_HOST,
    Setup,
    Started,
    _read_response,
    cpu_seconds,
    free_port,
    origin_setup,
)
from bench_trust import OWN_LIST, school_override

from schoolgate.store.db import make_engine, upgrade
from schoolgate.store.event_writer import EventWriter
from schoolgate.store.policy_files import seed_policy_path

PG = "host=127.0.0.1 port=5432 user=postgres dbname={db} connect_timeout=5"
IDLE_SECONDS = 4
BLOCKED = "x.com"  # blocked for everyone by the seed policy: answered by the gateway


def base_policy(http_port: int) -> str:
    """The seed policy, with the benchmark's loopback origin allowed (an internal address) and
    its port open for plain HTTP."""
    text = seed_policy_path().read_text()
    internal = "internal:\n  allow: []\n"
    ports = "  http: [80]\n"
    if internal not in text or ports not in text:
        raise SystemExit("bench_trust_scale: the seed policy's internal/ports sections moved")
    return text.replace(
        internal,
        "internal:\n  allow:\n"
        f"    - {{hosts: [{PLAIN_HOST}, 127.0.0.1/32], roles: [pupil], note: the origin}}\n",
    ).replace(ports, f"  http: [80, {http_port}]\n")


def write_trust(folder: Path, schools: int, http_port: int) -> Path:
    """The trust folder for `schools` schools; school X's clients are 127.X.0.0/16."""
    folder.mkdir(parents=True)
    (folder / "base.yaml").write_text(base_policy(http_port))
    lines = ["name: Bench Trust", "base: base.yaml", "locks: {categories: [social]}"]
    lines += ["unmatched: refuse", "schools:"]
    for x in range(1, schools + 1):
        own = folder / f"s{x}"
        own.mkdir()
        (own / "policy.yaml").write_text(school_override(x, 4))
        (own / "clubs.txt").write_text(OWN_LIST)
        lines.append(
            f"  s{x}: {{name: School {x}, subnets: [127.{x}.0.0/16], policy: s{x}/policy.yaml}}"
        )
    trust = folder / "trust.yaml"
    trust.write_text("\n".join(lines) + "\n")
    return trust


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- PostgreSQL -------------------------------------------------------------------------------


class Database:
    """The run's own database: its rows counted, its backends' CPU read from /proc."""

    def __init__(self) -> None:
        self.name = f"sg_bench_trust_{secrets.token_hex(4)}"
        with psycopg.connect(PG.format(db="postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        upgrade(self.url)
        self.conn = psycopg.connect(PG.format(db=self.name), autocommit=True)

    def rows(self) -> int:
        return int(self._one("SELECT count(*) FROM events"))

    def schools(self, since: datetime) -> int:
        """Distinct schools named by the events recorded at or after `since`."""
        return int(self._one("SELECT count(DISTINCT school) FROM events WHERE at >= %s", (since,)))

    def bytes_per_row(self) -> float:
        """The events table's size on disk with its indexes (after VACUUM), per row."""
        self.conn.execute("VACUUM ANALYZE events")
        size = self._one("SELECT pg_total_relation_size('events')")
        return int(size) / max(self.rows(), 1)

    def backend_cpu(self) -> dict[int, float]:
        """CPU seconds of each backend connected to this database, this one left out."""
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        ).fetchall()
        found = {}
        for (pid,) in pids:
            with contextlib.suppress(FileNotFoundError):
                found[int(pid)] = cpu_seconds(int(pid))
        return found

    def _one(self, query: str, args: tuple[object, ...] = ()) -> object:
        row = self.conn.execute(query, args).fetchone()
        assert row is not None
        return row[0]

    def drop(self) -> None:
        self.conn.close()
        with psycopg.connect(PG.format(db="postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )


def cpu_since(db: Database, before: dict[int, float]) -> float:
    """CPU seconds the database's backends used since `before` (backends that came since
    count from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in db.backend_cpu().items())


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Load:
    answered: int = 0
    failed: int = 0


async def one_connection(
    port: int, source: str, requests: int, http_port: int, rng: random.Random
) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    answered = 0
    try:
        for i in range(requests):
            host = BLOCKED if rng.random() < 0.25 else f"{PLAIN_HOST}:{http_port}"
            close = b"Connection: close\r\n" if i == requests - 1 else b""
            writer.write(
                f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n".encode() + close + b"\r\n"
            )
            await writer.drain()
            status = await _read_response(reader)
            if status not in (200, 403):
                return answered, 1
            answered += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return answered, 0


async def drive(
    ports: list[int], schools: int, args: argparse.Namespace, http_port: int, seconds: float
) -> Load:
    """`args.connections` clients until `seconds` pass, each connection from a new pupil."""
    load = Load()
    deadline = time.monotonic() + seconds
    rng = random.Random(17)

    async def client(number: int) -> None:
        turn = number
        while time.monotonic() < deadline:
            turn += 1
            x, y, z = rng.randint(1, schools), rng.randint(0, 255), rng.randint(1, 254)
            try:
                answered, failed = await asyncio.wait_for(
                    one_connection(
                        ports[turn % len(ports)],
                        f"127.{x}.{y}.{z}",
                        args.requests_per_connection,
                        http_port,
                        rng,
                    ),
                    30,
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                answered, failed = 0, 1
            load.answered += answered
            load.failed += failed

    await asyncio.gather(*(client(i) for i in range(args.connections)))
    return load


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    schools: int
    processes: int
    answered: int
    failed: int
    rows: int
    schools_seen: int
    load_s: float
    drained_s: float
    gateway_cpu_us: float
    postgres_cpu_us: float
    postgres_idle_ms: float  # CPU ms per second per idle gateway
    rss_start_mb: float
    rss_end_mb: float

    @property
    def events_per_s(self) -> float:
        return self.rows / self.drained_s


def start_gateways(
    setup: Setup, trust: Path, db: Database, processes: int, folder: Path
) -> list[Started]:
    """N gateways, each started and waited for in turn (each compiles the whole trust)."""
    gateways = []
    for i in range(processes):
        port = free_port()
        options = {
            "schoolgate_trust": trust,
            "schoolgate_database_url": db.url,
            "schoolgate_hosts_file": setup.folder / "hosts",
            "schoolgate_metrics_port": 0,
            "termlog_verbosity": "warn",
        }
        command = [str(BIN / "schoolgate"), "gateway", "--engine", "lean"]
        command += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
        command += ["--data-dir", str(folder / f"gw{i}"), "--"]
        for name, value in options.items():
            command += ["--set", f"{name}={value}"]
        gateways.append(setup.start(f"gateway-{trust.parent.name}-{i}", command, port))
    return gateways


def measure(
    setup: Setup, trust: Path, db: Database, schools: int, processes: int, args: argparse.Namespace
) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="gw-", dir=setup.folder))
    gateways = start_gateways(setup, trust, db, processes, folder)
    try:
        pids = [g.proc.pid for g in gateways]
        ports = [g.port for g in gateways]
        # Warm up every gateway (imports, the writer's connection, memos), then let it settle.
        asyncio.run(drive(ports, schools, args, setup.http_port, 1.5))
        time.sleep(1)
        # Idle: what the gateways alone cost PostgreSQL (their snapshot refreshes), per second.
        idle_pg = db.backend_cpu()
        time.sleep(IDLE_SECONDS)
        idle_ms = cpu_since(db, idle_pg) / IDLE_SECONDS / processes * 1e3
        rss_start = max(rss_mb(p) for p in pids)
        before_rows = db.rows()
        before_gw = sum(cpu_seconds(p) for p in pids)
        before_pg = db.backend_cpu()
        started, started_at = time.monotonic(), datetime.now(UTC)
        load = asyncio.run(drive(ports, schools, args, setup.http_port, args.seconds))
        load_s = time.monotonic() - started
        # The backlog: wait until every answered request's event has landed (or 60 s).
        rows, last_change, landed_at = db.rows() - before_rows, time.monotonic(), time.monotonic()
        while rows < load.answered and time.monotonic() - last_change < 60:
            time.sleep(0.2)
            now_rows = db.rows() - before_rows
            if now_rows != rows:
                rows, last_change = now_rows, time.monotonic()
                landed_at = last_change
        drained_s = landed_at - started
        gw_cpu = sum(cpu_seconds(p) for p in pids) - before_gw
        pg_cpu = cpu_since(db, before_pg)
        return Run(
            schools=schools,
            processes=processes,
            answered=load.answered,
            failed=load.failed,
            rows=rows,
            schools_seen=db.schools(started_at),
            load_s=load_s,
            drained_s=drained_s,
            gateway_cpu_us=gw_cpu / max(load.answered, 1) * 1e6,
            postgres_cpu_us=pg_cpu / max(rows, 1) * 1e6,
            postgres_idle_ms=idle_ms,
            rss_start_mb=rss_start,
            rss_end_mb=max(rss_mb(p) for p in pids),
        )
    finally:
        for gateway in gateways:
            gateway.proc.terminate()
        for gateway in gateways:
            try:
                gateway.proc.wait(20)
            except subprocess.TimeoutExpired:
                gateway.proc.kill()
        setup.started = [s for s in setup.started if s not in gateways]


# --- the database's side alone: several event writers, no proxy ---------------------------


def writer_child(
    url: str, n: int, number: int, go: Any, stored: Any, end: Any, folder: str
) -> None:
    """One gateway's event writer (its own process): `n` events of 100 schools' pupils, built
    before `go` is set, then submitted as fast as the writer takes them; says so on `stored`
    and keeps its connection (and its backend's CPU count) until `end` is set."""
    at = datetime.now(UTC)
    events = [
        dataclasses.replace(make_event(i, at), school=f"s{(i + number) % 100 + 1}")
        for i in range(n)
    ]

    async def write() -> None:
        engine = make_engine(url)
        writer = EventWriter(engine, spool_dir=Path(folder), replica=f"bench-{number}")
        await writer.start()
        go.wait()
        await submit_all(writer, events)
        stored.put(number)
        end.wait()
        await writer.close()
        engine.dispose()

    asyncio.run(write())


@dataclass
class WriterRun:
    writers: int
    rows: int
    seconds: float
    postgres_cpu_us: float


def measure_writers(db: Database, writers: int, n: int, folder: Path) -> WriterRun:
    """`writers` processes each storing `n` events into the one database at once."""
    spawn = multiprocessing.get_context("spawn")
    go, end, stored = spawn.Event(), spawn.Event(), spawn.Queue()
    children = [
        spawn.Process(
            target=writer_child,
            args=(db.url, n, i, go, stored, end, str(folder / f"spool-{writers}-{i}")),
            daemon=True,
        )
        for i in range(writers)
    ]
    before_rows = db.rows()
    try:
        for child in children:
            child.start()
        time.sleep(3 + writers)  # the children build their events and connect (not timed)
        before_pg = db.backend_cpu()
        started = time.monotonic()
        go.set()
        for _ in children:
            stored.get(timeout=120)
        seconds = time.monotonic() - started
        pg_cpu = cpu_since(db, before_pg)
        rows = db.rows() - before_rows
    finally:
        go.set()
        end.set()
        for child in children:
            child.join(60)
            if child.is_alive():
                child.kill()
    return WriterRun(writers, rows, seconds, pg_cpu / max(rows, 1) * 1e6)


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--schools", default="20,100")
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--connections", type=int, default=24)
    parser.add_argument("--requests-per-connection", type=int, default=10)
    parser.add_argument("--writers", default="1,2,4", help="event writers alone ('': none)")
    parser.add_argument("--writer-events", type=int, default=40_000, help="events per writer")
    args = parser.parse_args()
    print(f"# {machine()}", flush=True)
    runs: list[Run] = []
    writer_runs: list[WriterRun] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-trust-scale-") as tmp:
        folder = Path(tmp)
        setup, nginx = origin_setup(folder, pin=False)
        db = Database()
        try:
            setup.start("nginx", nginx, setup.http_port)
            for schools in (int(s) for s in args.schools.split(",")):
                trust = write_trust(folder / f"trust{schools}", schools, setup.http_port)
                for processes in (int(n) for n in args.processes.split(",")):
                    run = measure(setup, trust, db, schools, processes, args)
                    runs.append(run)
                    print(
                        f"# {schools} schools, {processes} gateway(s): {run.answered} answered, "
                        f"{run.failed} failed, {run.rows} rows in {run.drained_s:.1f} s "
                        f"(load {run.load_s:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            setup.stop_all()  # the writers alone: no gateway, no origin
            if runs:
                row_bytes = db.bytes_per_row()
                print(f"# the gateways' events: {row_bytes:.0f} bytes a row with its indexes")
            for writers in (int(n) for n in args.writers.split(",") if n):
                writer_runs.append(measure_writers(db, writers, args.writer_events, folder))
        finally:
            setup.stop_all()
            db.drop()
    print(f"# after the runs: load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(
        "| schools | gateways | requests answered (failed) | event rows landed | "
        "schools in the rows | events/s into PostgreSQL | gateway CPU µs/request | "
        "PostgreSQL backend CPU µs/event | PostgreSQL CPU per idle gateway ms/s | "
        "RSS per gateway MB (loaded → after) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in runs:
        print(
            f"| {r.schools} | {r.processes} | {r.answered:,} ({r.failed}) | {r.rows:,} | "
            f"{r.schools_seen} | {r.events_per_s:,.0f} | {r.gateway_cpu_us:,.0f} | "
            f"{r.postgres_cpu_us:,.0f} | {r.postgres_idle_ms:.1f} | "
            f"{r.rss_start_mb:.0f} → {r.rss_end_mb:.0f} |"
        )
    if writer_runs:
        print(
            "\n| event writers (processes) | events stored | seconds | events/s into PostgreSQL "
            "| PostgreSQL backend CPU µs/event |"
        )
        print("| ---: | ---: | ---: | ---: | ---: |")
    for w in writer_runs:
        print(
            f"| {w.writers} | {w.rows:,} | {w.seconds:.1f} | {w.rows / w.seconds:,.0f} | "
            f"{w.postgres_cpu_us:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
