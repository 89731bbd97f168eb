"""End-to-end harness: the real gateway (`schoolgate gateway`, i.e. mitmdump with our addons) as a
subprocess on loopback, local HTTP and HTTPS origins with their own test CA, and test policies.

The origins count connections and record every request (SNI, Host, path), so a test can prove a
blocked site was never contacted. Allowed host names are looked up in a hosts file given to the
gateway (schoolgate_hosts_file: no DNS) and routed to the origins by
tests/support/route_to_origins.py, loaded after schoolgate's addons.

The engine (`schoolgate gateway --engine`) is `engine=` or else $SCHOOLGATE_E2E_ENGINE
(default mitmdump): `SCHOOLGATE_E2E_ENGINE=lean pytest tests/e2e` runs the suite on the lean one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from wsproto import events as wsevents
from wsproto.connection import Connection as WsConnection
from wsproto.connection import ConnectionType as WsType

from schoolgate.commands.gateway import DEFAULT_ENGINE, ENGINES
from schoolgate.store.directory import hash_password
from tests.support.route_to_origins import STAND_IN

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent
SCHOOLGATE = Path(sys.executable).parent / "schoolgate"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
PASSWORD = "correct horse"  # every test user's password
USERS = {"pupil1": ["Pupils"], "staff1": ["Staff"], "smm1": ["Staff", "SocialMedia"]}


# Host names the tests use; every one is routed to the local origins if it is ever contacted.
ORIGIN_HOSTS = (
    "learning.test",
    "x.com",
    "twitter.com",
    "instagram.com",
    "facebook.com",
    "tiktok.com",
    "proxysite.test",
    "bank.test",
    "explode.test",
    "violence.test",
    # archive and translation viewers, a search engine, an allowed news site
    "archive.org",
    "archive.ph",
    "translate.goog",
    "google.com",
    "bbc.co.uk",
    # more viewers: Google's cache, a reader proxy, Yandex's translation and its page proxy
    "googleusercontent.com",
    "jina.ai",
    "yandex.com",
    "turbopages.org",
    # image proxies
    "wp.com",
    "wsrv.nl",
)


def default_engine() -> str:
    engine = os.environ.get("SCHOOLGATE_E2E_ENGINE", "") or DEFAULT_ENGINE
    if engine not in ENGINES:
        raise ValueError(f"SCHOOLGATE_E2E_ENGINE={engine!r}: expected one of {ENGINES}")
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not listen on {port} in {timeout}s:\n{log.read_text()}")


# --- a test CA and origins ----------------------------------------------------------------------


@dataclass
class OriginCA:
    """A CA of the tests' own, and one certificate it issued for all the origin names."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    @classmethod
    def make(cls, folder: Path, names: Sequence[str]) -> OriginCA:
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "schoolgate test origin CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        for name in names:
            sans += [x509.DNSName(name), x509.DNSName(f"*.{name}")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "origin")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        made = cls(folder / "test-ca.pem", folder / "origin-cert.pem", folder / "origin-key.pem")
        made.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        made.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        made.key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return made


@dataclass
class Seen:
    sni: str | None
    host: str
    path: str


@dataclass
class Origin:
    """A local web server that says who it is, and remembers every connection and request."""

    server: ThreadingHTTPServer
    tls: bool
    connections: int = 0
    snis: list[str | None] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def contacted_for(self, name: str) -> bool:
        """Did any connection or request for `name` (or a subdomain) arrive here?"""

        def match(value: str | None) -> bool:
            value = (value or "").split(":")[0].lower()
            return value == name or value.endswith("." + name)

        with self.lock:
            return any(match(s) for s in self.snis) or any(match(r.host) for r in self.requests)


def start_origin(ca: OriginCA | None) -> Origin:
    origin: Origin

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            sni = getattr(self.connection, "schoolgate_sni", None)
            with origin.lock:
                origin.requests.append(Seen(sni, self.headers.get("Host", ""), self.path))
            if self.headers.get("Upgrade", "").lower() == "websocket":
                self.echo_websocket()
                return
            body = f"hello from the origin: host={self.headers.get('Host')}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Alt-Svc", 'h3=":443"; ma=86400')
            self.end_headers()
            self.wfile.write(body)

        def echo_websocket(self) -> None:
            """Accept a websocket and echo its messages until either side closes it."""
            key = self.headers["Sec-WebSocket-Key"].encode()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            ws = WsConnection(WsType.SERVER)
            while True:
                try:
                    data = self.connection.recv(65536)
                except OSError:
                    return
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, wsevents.Message):
                        self.connection.sendall(ws.send(wsevents.Message(data=event.data)))
                    elif isinstance(event, wsevents.CloseConnection):
                        with contextlib.suppress(Exception):
                            self.connection.sendall(ws.send(event.response()))
                        return
                if not data:
                    return

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            sock, addr = super().get_request()
            with origin.lock:
                origin.connections += 1
            return sock, addr

    server = Server(("127.0.0.1", 0), Handler)
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(ca.cert_pem, ca.key_pem)

        def remember_sni(
            sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
        ) -> None:
            with origin.lock:
                origin.snis.append(name)
            sock.schoolgate_sni = name  # type: ignore[union-attr]

        context.sni_callback = remember_sni  # type: ignore[assignment]
        server.socket = context.wrap_socket(server.socket, server_side=True)
    origin = Origin(server, tls=ca is not None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return origin


# --- policies -------------------------------------------------------------------------------


def noon_zone(now: datetime) -> str:
    """A fixed-offset zone in which `now` falls between 12:00 and 13:00, so windows generated
    around "now" never cross midnight whenever the tests run."""
    offset = 12 - now.astimezone(UTC).hour  # -11 .. +12
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


def policy_text(
    *, break_from: datetime, break_until: datetime, zone: str, extra_x_domains: Sequence[str] = ()
) -> str:
    """The seed policy's rules over small inline domain lists, with one break period."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    start = break_from.astimezone(tz).strftime("%H:%M:%S")
    end = break_until.astimezone(tz).strftime("%H:%M:%S")
    x_domains = ", ".join(["x.com", "twitter.com", "t.co", *extra_x_domains])
    return f"""\
name: "e2e test policy"
roles:
  pupil: "Pupils and anyone unidentified"
  staff: "Staff"
  social_media_manager: "Official accounts"
default_role: pupil
categories:
  x: {{domains: [{x_domains}], not_unblockable_for: all}}
  instagram: {{domains: [instagram.com, cdninstagram.com], not_unblockable_for: all}}
  facebook: {{domains: [facebook.com, fbcdn.net]}}
  social: {{domains: [tiktok.com]}}
  violence: {{domains: [violence.test], not_unblockable_for: [pupil]}}
  web_proxy: {{domains: [proxysite.test], circumvention: true, not_unblockable_for: [pupil]}}
  banking: {{domains: [bank.test], sensitive: true}}
calendar:
  timezone: "{zone}"
  school_days: [monday, tuesday, wednesday, thursday, friday, saturday, sunday]
  school_day: {{start: "01:00", end: "23:00"}}
  periods:
    - {{name: lunch, kind: break, start: "{start}", end: "{end}"}}
  bank_holidays: none
rules:
  - {{name: x-and-instagram, roles: all, categories: [x, instagram], action: block}}
  - {{name: circumvention, roles: all, categories: [web_proxy], action: block}}
  - {{name: content-for-pupils, roles: [pupil], categories: [violence], action: block}}
  - {{name: official-accounts, roles: [social_media_manager], categories: [facebook, social],
     action: allow}}
  - {{name: staff-social-media-at-break, roles: [staff], categories: [facebook, social],
     when: [break], action: allow}}
  - {{name: staff-social-media-otherwise, roles: [staff], categories: [facebook, social],
     action: block}}
  - {{name: pupils-social-media, roles: [pupil], categories: [facebook, social],
     action: block}}
default: allow
"""


def write_policy(
    path: Path, *, in_break: bool, break_seconds: int = 1800, extra_x_domains: Sequence[str] = ()
) -> datetime:
    """Write a test policy whose break is on now (for `break_seconds`) or not; returns when the
    break ends (in_break) or starts (not in_break)."""
    now = datetime.now(UTC)
    zone = noon_zone(now)
    if in_break:
        start, end = now - timedelta(minutes=5), now + timedelta(seconds=break_seconds)
    else:
        start, end = now - timedelta(hours=4), now - timedelta(hours=3, minutes=30)
    text = policy_text(
        break_from=start, break_until=end, zone=zone, extra_x_domains=extra_x_domains
    )
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    os.replace(temp, path)
    # The policy holds whole seconds, so say when the break really ends (or starts) there.
    return (end if in_break else start).replace(microsecond=0)


def write_identity(folder: Path, people: Mapping[str, list[str]] = USERS) -> Path:
    """An identity file with a local users file: pupil1, staff1, smm1, or `people` (name ->
    groups), each with the password PASSWORD."""
    folder.mkdir(parents=True, exist_ok=True)
    hashed = hash_password(PASSWORD)
    users = {
        "users": {
            name: {"password_hash": hashed, "groups": groups} for name, groups in people.items()
        }
    }
    (folder / "users.yaml").write_text(json.dumps(users))
    identity = folder / "identity.yaml"
    identity.write_text(
        "directory: {kind: local, users_file: users.yaml}\n"
        "groups_to_roles:\n"
        "  - {group: SocialMedia, role: social_media_manager}\n"
        "  - {group: Staff, role: staff}\n"
        "  - {group: Pupils, role: pupil}\n"
        "auth_required: true\n"
    )
    return identity


# --- the gateway --------------------------------------------------------------------------


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path
    test_ca: OriginCA
    http_origin: Origin
    https_origin: Origin
    engine: str = "mitmdump"

    @property
    def ca_pem(self) -> Path:
        return self.data_dir / "ca" / "mitmproxy-ca-cert.pem"

    def proxy_url(self, user: str | None = None) -> str:
        auth = f"{user}:{PASSWORD.replace(' ', '%20')}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def client(self, user: str | None = None, *, trust: str = "gateway") -> httpx.Client:
        """An httpx client through the gateway. trust: 'gateway' (the school CA), 'origin'
        (only the origins' own test CA: works only if the TLS was passed through), 'both'."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing until told
        if trust in ("gateway", "both"):
            context.load_verify_locations(cafile=str(self.ca_pem))
        if trust in ("origin", "both"):
            context.load_verify_locations(cafile=str(self.test_ca.ca_pem))
        return httpx.Client(proxy=self.proxy_url(user), verify=context, timeout=20, trust_env=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def contacted(self, name: str) -> bool:
        return self.http_origin.contacted_for(name) or self.https_origin.contacted_for(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def running_gateway(
    folder: Path,
    *,
    policy: Path | None,
    identity: Path | None = None,
    overrides: Path | None = None,
    extra_scripts: Sequence[Path] = (),
    extra_args: Sequence[str] = (),
    engine: str | None = None,
) -> Iterator[Gateway]:
    """Start `schoolgate gateway` with the test routing (and any extra scripts); stop it after.
    `engine`: "mitmdump" or "lean" (default: $SCHOOLGATE_E2E_ENGINE, else mitmdump)."""
    engine = engine or default_engine()
    folder.mkdir(parents=True, exist_ok=True)
    test_ca = OriginCA.make(folder / "origin-ca", ORIGIN_HOSTS)
    http_origin, https_origin = start_origin(None), start_origin(test_ca)
    routes = folder / "routes.json"
    routes.write_text(
        json.dumps(
            {name: {"http": http_origin.port, "https": https_origin.port} for name in ORIGIN_HOSTS}
        )
    )
    # No DNS here: the gateway looks origin names up in this file (one stand-in public address,
    # which route_to_origins.py turns into the local origins after the gateway has checked it).
    hosts = folder / "hosts"
    hosts.write_text("".join(f"{STAND_IN} {name} *.{name}\n" for name in ORIGIN_HOSTS))
    port = free_port()
    data_dir = folder / "data"
    command = [
        str(SCHOOLGATE),
        "gateway",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--school-name",
        "Test Primary School",
        "--engine",
        engine,
    ]
    if policy is not None:
        command += ["--policy", str(policy)]
    if identity is not None:
        command += ["--identity", str(identity)]
    if overrides is not None:
        command += ["--overrides", str(overrides)]
    command += ["--", "--set", "termlog_verbosity=warn"]
    for script in (*extra_scripts, SUPPORT / "route_to_origins.py"):
        command += ["-s", str(script)]
    if not any(str(a).startswith("schoolgate_hosts_file=") for a in extra_args):
        command += ["--set", f"schoolgate_hosts_file={hosts}"]  # unless the test gives its own
    command += [
        "--set",
        f"test_routes={routes}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={test_ca.ca_pem}",
        *extra_args,
    ]
    log = folder / "gateway.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=folder, env=env)
    gateway = Gateway(proc, port, data_dir, log, test_ca, http_origin, https_origin, engine)
    try:
        wait_until_listening(port, proc, log)
        yield gateway
    finally:
        gateway.stop()
        http_origin.server.shutdown()
        https_origin.server.shutdown()


def wait_for(predicate: Any, *, timeout: float = 30, what: str = "a condition") -> None:
    """Poll `predicate()` until it is true (no timed assertion: the timeout only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
