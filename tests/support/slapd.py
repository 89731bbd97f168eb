"""A real OpenLDAP server for tests: Debian's slapd on a free loopback port, with its own config,
database and a small school directory (people, groups, a service account).

`start_slapd(tmp_path)` returns a running `SlapdServer`; `.stop()` / `.start()` restart it on the
same port with the same data, `.pause()` / `.resume()` freeze it (connections are accepted by the
kernel but never answered: the time-out path). Never touches a system slapd or port 389.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ldap3
import pytest
import yaml

from tests.support.needs import need_program

BASE_DN = "dc=school,dc=test"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
SERVICE_DN = f"cn=schoolgate,ou=services,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"

# username -> (display name, password, groups). The groups mirror store/data/demo-users.yaml.
PEOPLE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pupil1": ("Pupil One", "pupil1-pass", ("Pupils", "Year5")),
    "pupil2": ("Pupil Two", "pupil2-pass", ("Pupils",)),
    "teacher1": ("Teacher One", "teacher1-pass", ("Staff",)),
    "socialmedia1": ("Social Media Manager", "socialmedia1-pass", ("Staff", "SocialMedia")),
    "bursar1": ("Business Manager", "bursar1-pass", ("Staff", "BusinessManagers")),
    "dsl1": ("Designated Safeguarding Lead", "dsl1-pass", ("Staff", "DSL")),
    "it1": ("IT Technician", "it1-pass", ("Staff", "ITTechnicians")),
    "visitor1": ("Visitor Without Groups", "visitor1-pass", ()),
}
# username -> e-mail address (LDAP `mail`); visitor1 has none.
MAIL = {name: f"{name}@school.test" for name in PEOPLE if name != "visitor1"}
GROUPS = ("Pupils", "Year5", "Staff", "SocialMedia", "BusinessManagers", "DSL", "ITTechnicians")

# The seed policy's roles; first matching group wins.
GROUPS_TO_ROLES = (
    {"group": "SocialMedia", "role": "social_media_manager"},
    {"group": "Staff", "role": "staff"},
    {"group": "Pupils", "role": "pupil"},
)

_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM slapd if the test process dies without stopping
    it, so no server outlives a crashed or killed test run (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SlapdServer:
    """One slapd process and its files under `root`."""

    root: Path
    port: int
    slapd: str
    service_password: str = "service-pass"
    admin_password: str = "admin-pass"
    ca_file: Path | None = None  # set when started with tls=True (StartTLS on the same port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    base_dn = BASE_DN
    people_dn = PEOPLE_DN
    groups_dn = GROUPS_DN
    service_dn = SERVICE_DN

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def users(self) -> dict[str, str]:
        """username -> password of every person in the directory."""
        return {name: password for name, (_, password, _) in PEOPLE.items()}

    @property
    def groups_of(self) -> dict[str, frozenset[str]]:
        return {name: frozenset(groups) for name, (_, _, groups) in PEOPLE.items()}

    @property
    def log_path(self) -> Path:
        return self.root / "slapd.log"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        log = self.log_path.open("ab")
        # -d 0 keeps slapd in the foreground (no daemon to lose track of) without debug noise.
        self.process = subprocess.Popen(
            [self.slapd, "-f", str(self.root / "slapd.conf"), "-h", self.url + "/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_ready()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Freeze slapd: the kernel still accepts connections, nothing answers."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def admin_connection(self) -> ldap3.Connection:
        server = ldap3.Server(self.url, connect_timeout=5)
        return ldap3.Connection(
            server, ADMIN_DN, self.admin_password, auto_bind=True, receive_timeout=10
        )

    def write_identity_config(
        self, directory: Path, *, group_mode: str = "member_of", **extra: object
    ) -> Path:
        """Write identity.yaml (and the bind password file beside it) pointing at this server."""
        directory.mkdir(parents=True, exist_ok=True)
        secret = directory / "ldap-bind-password"
        secret.write_text(self.service_password + "\n")
        ldap: dict[str, object] = {
            "kind": "ldap",
            "url": self.url,
            "bind_dn": self.service_dn,
            "bind_password_file": str(secret),
            "user_search_base": self.people_dn,
            "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
            "groups": {"mode": group_mode, "search_base": self.groups_dn},
            "timeouts": {"connect_seconds": 2, "receive_seconds": 2, "total_seconds": 3},
        }
        if self.ca_file is not None:
            ldap["start_tls"] = True
            ldap["ca_file"] = str(self.ca_file)
        document: dict[str, object] = {"directory": ldap, "groups_to_roles": list(GROUPS_TO_ROLES)}
        document.update(extra)
        path = directory / "identity.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"slapd exited with {self.process.returncode}; "
                    f"log:\n{self.log_path.read_text(errors='replace')}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"slapd did not listen on {self.url} within 15 s")

    def _load_directory(self) -> None:
        conn = self.admin_connection()
        try:

            def add(dn: str, classes: list[str], attributes: dict[str, object]) -> None:
                if not conn.add(dn, classes, attributes):
                    raise RuntimeError(f"could not add {dn}: {conn.result}")

            add(BASE_DN, ["dcObject", "organization"], {"dc": "school", "o": "Test School"})
            for unit in ("people", "groups", "services"):
                add(f"ou={unit},{BASE_DN}", ["organizationalUnit"], {"ou": unit})
            add(
                SERVICE_DN,
                ["organizationalRole", "simpleSecurityObject"],
                {"cn": "schoolgate", "userPassword": self.service_password},
            )
            for index, (name, (display, password, _)) in enumerate(PEOPLE.items()):
                add(
                    f"uid={name},{PEOPLE_DN}",
                    ["inetOrgPerson", "posixAccount"],
                    {
                        "uid": name,
                        "cn": display,
                        "sn": display.split()[-1],
                        "displayName": display,
                        "userPassword": password,
                        "uidNumber": 10000 + index,
                        "gidNumber": 10000,
                        "homeDirectory": f"/home/{name}",
                        **({"mail": MAIL[name]} if name in MAIL else {}),
                    },
                )
            # Added after the people, so the memberof overlay writes each person's memberOf.
            for group in GROUPS:
                members = [
                    f"uid={name},{PEOPLE_DN}"
                    for name, (_, _, groups) in PEOPLE.items()
                    if group in groups
                ]
                add(f"cn={group},{GROUPS_DN}", ["groupOfNames"], {"cn": group, "member": members})
        finally:
            conn.unbind()


def _write_tls_files(root: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "schoolgate test LDAP CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        # ldap3 checks host names itself and compares only DNS names, so the address is
        # also written as one.
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("127.0.0.1"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = root / "ca.pem", root / "server.pem", root / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def start_slapd(tmp_path: Path, *, tls: bool = False) -> SlapdServer:
    """Create, start and fill a slapd under `tmp_path/slapd`; the caller must `.stop()` it."""
    slapd = need_program("slapd", "slapd")
    root = tmp_path / "slapd"
    (root / "db").mkdir(parents=True)
    server = SlapdServer(root=root, port=_free_port(), slapd=slapd)
    lines = [f"include /etc/ldap/schema/{schema}.schema" for schema in _SCHEMAS]
    lines += [
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
        "moduleload memberof",
        f"pidfile {root}/slapd.pid",
        f"argsfile {root}/slapd.args",
    ]
    if tls:
        ca_file, cert_file, key_file = _write_tls_files(root)
        server.ca_file = ca_file
        lines += [
            f"TLSCACertificateFile {ca_file}",
            f"TLSCertificateFile {cert_file}",
            f"TLSCertificateKeyFile {key_file}",
        ]
    lines += [
        "database mdb",
        "maxsize 16777216",
        f'suffix "{BASE_DN}"',
        f'rootdn "{ADMIN_DN}"',
        f"rootpw {server.admin_password}",
        f"directory {root}/db",
        "overlay memberof",
        # Passwords: only for binding. Everything else: the service account and oneself.
        "access to attrs=userPassword by self write by anonymous auth by * none",
        f'access to * by dn.exact="{SERVICE_DN}" read by self read by * none',
    ]
    (root / "slapd.conf").write_text("\n".join(lines) + "\n")
    server.start()
    try:
        server._load_directory()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_slapd(tmp_path: Path, *, tls: bool = False) -> Iterator[SlapdServer]:
    server = start_slapd(tmp_path, tls=tls)
    try:
        yield server
    finally:
        server.stop()


# Fixtures: import them into a conftest.py (`from tests.support.slapd import slapd_server`).


@pytest.fixture
def slapd_server(tmp_path: Path) -> Iterator[SlapdServer]:
    """A slapd of the test's own: free to stop, pause and restart."""
    with running_slapd(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def shared_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """One slapd for a module's read-only tests; never stop it from a test."""
    with running_slapd(tmp_path_factory.mktemp("ldap")) as server:
        yield server
