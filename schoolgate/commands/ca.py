"""`schoolgate ca export|rotate|status|server-cert`: hand the school CA certificate out in the
formats device managers want, and replace the CA without breaking devices (stage a new CA,
publish both, switch after an overlap, keep the old one published until devices have moved on).

Files in the gateway's CA folder (DATA_DIR/ca): mitmproxy-ca.pem (key + certificate in use,
secret), mitmproxy-ca-cert.pem/.cer (what is published: the certificate in use, then a staged
next one, then previous ones still in their overlap), next-ca.pem (a staged CA, secret),
previous/*.pem (old certificates) and rotation.json (the dates). Every file written keeps the
folder's owner, so running this as root leaves the service user able to read its own CA.
`server-cert` issues a certificate from the school CA for the admin's HTTPS, which devices that
trust the CA for the gateway accept too.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from schoolgate.commands.gateway import data_dir
from schoolgate.proxy_addons.ca import (
    CERT_CER,
    CERT_PEM,
    KEY_AND_CERT,
    ensure_school_ca,
    make_school_ca,
)

NEXT = "next-ca.pem"
PREVIOUS = "previous"
STATE = "rotation.json"
STALE = ("mitmproxy-ca.p12", "mitmproxy-ca-cert.p12")  # mitmproxy's copies of an old CA key
FORMATS = ("pem", "der", "p12")


class CAError(Exception):
    """The CA folder is not in a state for what was asked; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Published:
    current: x509.Certificate
    next: x509.Certificate | None
    previous: tuple[x509.Certificate, ...]

    def all(self) -> list[x509.Certificate]:
        return [self.current, *([self.next] if self.next else []), *self.previous]


# --- the pure-ish core (files under one folder, `now` passed in) -------------------------------


def read_state(confdir: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((confdir / STATE).read_text())
    except FileNotFoundError:
        return {"previous": []}
    return state


def published(confdir: Path, now: datetime) -> Published:
    """The certificates devices should trust now."""
    try:
        current = _certs((confdir / KEY_AND_CERT).read_bytes())[0]
    except FileNotFoundError:
        raise CAError(
            f"there is no school CA in {confdir} yet: start the gateway once "
            "(schoolgate gateway) or give the right --data-dir"
        ) from None
    state = read_state(confdir)
    staged = confdir / NEXT
    nxt = _certs(staged.read_bytes())[0] if staged.exists() else None
    previous = tuple(
        _certs((confdir / PREVIOUS / p["file"]).read_bytes())[0]
        for p in state.get("previous", [])
        if datetime.fromisoformat(p["retire_after"]) > now
        and (confdir / PREVIOUS / p["file"]).exists()
    )
    return Published(current, nxt, previous)


def export(
    confdir: Path, fmt: str, now: datetime, *, current_only: bool = False, staged: bool = False
) -> bytes:
    """The published certificates as PEM (a bundle), DER (one certificate: the one in use, or
    the staged one) or PKCS#12 (certificates only, no key, no password). `staged`: only the
    staged next CA, in any format, to hand out before it goes live."""
    pub = published(confdir, now)
    if staged and pub.next is None:
        raise CAError("no new CA is staged: 'schoolgate ca rotate' stages one")
    if staged:
        assert pub.next is not None
        certs = [pub.next]
    else:
        certs = [pub.current] if current_only else pub.all()
    if fmt == "pem":
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if fmt == "der":
        return certs[0].public_bytes(serialization.Encoding.DER)
    if fmt == "p12":
        return pkcs12.serialize_key_and_certificates(
            b"school web filter CA", None, None, certs, serialization.NoEncryption()
        )
    raise CAError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def stage(confdir: Path, school_name: str, overlap: timedelta, now: datetime) -> datetime:
    """Make the next CA beside the one in use and publish both; returns when it may go live."""
    published(confdir, now)  # there is a CA to rotate
    if (confdir / NEXT).exists():
        raise CAError(
            f"a new CA is already staged ({confdir / NEXT}): switch to it with "
            "'schoolgate ca rotate --activate', or delete that file to start over"
        )
    key, cert = make_school_ca(school_name, now=now)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ) + cert.public_bytes(serialization.Encoding.PEM)
    _write_atomic(confdir / NEXT, pem, 0o600)
    state = read_state(confdir)
    state["next"] = {
        "staged_at": now.isoformat(),
        "activate_after": (now + overlap).isoformat(),
        "overlap_days": overlap.days,
    }
    _write_atomic(confdir / STATE, json.dumps(state, indent=2).encode(), 0o644)
    republish(confdir, now)
    return now + overlap


def activate(confdir: Path, now: datetime, *, force: bool = False) -> Published:
    """Put the staged CA in use; the old certificate stays published for the same overlap."""
    state = read_state(confdir)
    staged = state.get("next")
    if staged is None or not (confdir / NEXT).exists():
        raise CAError("no new CA is staged: run 'schoolgate ca rotate' first")
    after = datetime.fromisoformat(staged["activate_after"])
    if now < after and not force:
        raise CAError(
            f"the staged CA may go live after {after:%Y-%m-%d %H:%M} UTC, when devices "
            "have had time to trust it; --force switches now (devices that do not "
            "trust it yet will show certificate errors)"
        )
    old = _certs((confdir / KEY_AND_CERT).read_bytes())[0]
    if not (confdir / PREVIOUS).exists():
        (confdir / PREVIOUS).mkdir()
        folder = confdir.stat()
        if os.geteuid() == 0:
            os.chown(confdir / PREVIOUS, folder.st_uid, folder.st_gid)
    name = f"{old.serial_number:x}.pem"
    _write_atomic(confdir / PREVIOUS / name, old.public_bytes(serialization.Encoding.PEM), 0o644)
    os.replace(confdir / NEXT, confdir / KEY_AND_CERT)  # the old private key is gone for good
    for stale in STALE:
        (confdir / stale).unlink(missing_ok=True)
    overlap = timedelta(days=int(staged.get("overlap_days", 30)))
    state.pop("next")
    state.setdefault("previous", []).append(
        {"file": name, "retired_at": now.isoformat(), "retire_after": (now + overlap).isoformat()}
    )
    _write_atomic(confdir / STATE, json.dumps(state, indent=2).encode(), 0o644)
    return republish(confdir, now)


def republish(confdir: Path, now: datetime) -> Published:
    """Rewrite the published certificate files (what /ca.pem serves) from the current state."""
    pub = published(confdir, now)
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pub.all())
    _write_atomic(confdir / CERT_PEM, bundle, 0o644)
    _write_atomic(confdir / CERT_CER, bundle, 0o644)
    return pub


def refresh_published(confdir: Path, now: datetime) -> int:
    """Drop certificates whose overlap has ended from the published file (what /ca.pem serves);
    returns how many went. `ca status` and `ca export` call it, so they drop out by themselves."""
    try:
        served = _certs((confdir / CERT_PEM).read_bytes())
    except (FileNotFoundError, ValueError):
        served = []
    pub = published(confdir, now)
    if served == pub.all():
        return 0
    republish(confdir, now)
    return max(len(served) - len(pub.all()), 0)


def _certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write a new file in place of `path`, owned like its folder (root running this for the
    service user must not leave files the service cannot read)."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    folder = path.parent.stat()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        if os.geteuid() == 0 and (folder.st_uid, folder.st_gid) != (0, 0):
            os.fchown(out.fileno(), folder.st_uid, folder.st_gid)
        out.write(data)
    os.replace(temp, path)


def school_name_of(confdir: Path) -> str:
    """The school name in the CA in use (its O=), for a new CA that keeps it."""
    current = _certs((confdir / KEY_AND_CERT).read_bytes())[0]
    names = current.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else "School"


SERVER_CERT_DAYS = 397  # the longest browsers accept for a server certificate


def server_cert(confdir: Path, hosts: list[str], now: datetime) -> tuple[bytes, bytes]:
    """A server certificate for `hosts` (names or addresses) signed by the school CA in use:
    (certificate then the CA, as PEM; its private key as PEM)."""
    try:
        key_and_cert = (confdir / KEY_AND_CERT).read_bytes()
    except FileNotFoundError:
        raise CAError(f"there is no school CA in {confdir} yet") from None
    ca_key = serialization.load_pem_private_key(key_and_cert, password=None)
    ca_cert = _certs(key_and_cert)[0]
    if not hosts:
        raise CAError("give at least one --host (the name people type, e.g. admin.school.lan)")
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not host or any(c in host for c in "/: \\"):
                raise CAError(f"--host {host!r} is not a host name or address") from None
            names.append(x509.DNSName(host.lower().rstrip(".")))
    key = ec.generate_private_key(ec.SECP256R1())
    # on its own line, so that its ignore stays on the line mypy reports however it is formatted
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(min(now + timedelta(days=SERVER_CERT_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority, critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key_pem


def describe(cert: x509.Certificate) -> str:
    return (
        f"{cert.subject.rfc4514_string()} serial {cert.serial_number:x}, valid until "
        f"{cert.not_valid_after_utc:%Y-%m-%d}"
    )


# --- the command line ---------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ca", help="export or rotate the school CA certificate", description=__doc__
    )
    commands = parser.add_subparsers(dest="ca_command", metavar="ACTION")
    commands.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the gateway's data directory (default: $SCHOOLGATE_DATA_DIR or ./var/schoolgate)",
    )

    exp = commands.add_parser(
        "export",
        parents=[common],
        help="write the CA certificate(s)",
        description="pem: every published certificate (during a rotation "
        "both); der: the one in use (.cer/.crt for Windows, "
        "Intune, Jamf, ChromeOS); p12: certificates only.",
    )
    exp.add_argument(
        "--format", choices=FORMATS, default="pem", help="pem (default), der (.cer/.crt) or p12"
    )
    exp.add_argument("--out", type=Path, help="write here (default: standard output)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument(
        "--current-only",
        action="store_true",
        help="only the certificate in use, even during a rotation",
    )
    which.add_argument(
        "--staged",
        action="store_true",
        help="only the staged new CA (after 'ca rotate', before --activate): "
        "hand it to device managers in any format before it goes live",
    )
    exp.set_defaults(handler=run_export)

    rot = commands.add_parser(
        "rotate",
        parents=[common],
        help="stage a new CA, or switch to it",
        description="Without --activate: make a new CA and publish it "
        "beside the one in use. After the overlap, --activate "
        "puts it in use (restart the gateway then); the old "
        "certificate stays published for another overlap.",
    )
    rot.add_argument(
        "--overlap-days",
        type=int,
        default=30,
        help="days both certificates are published before and after the switch (default: 30)",
    )
    rot.add_argument("--activate", action="store_true", help="put the staged CA in use")
    rot.add_argument(
        "--force", action="store_true", help="with --activate: before the overlap has passed"
    )
    rot.add_argument(
        "--school-name",
        default=os.environ.get("SCHOOLGATE_SCHOOL_NAME") or None,
        help="the name in the new CA (default: $SCHOOLGATE_SCHOOL_NAME, else the "
        "name in the CA in use)",
    )
    rot.set_defaults(handler=run_rotate)

    srv = commands.add_parser(
        "server-cert",
        parents=[common],
        help="issue an HTTPS certificate for the admin from the school CA",
        description="Issue a certificate (and key) for the admin's HTTPS from the school CA, "
        "which school devices already trust for the gateway; makes the CA first if "
        "there is none. Serve it with 'schoolgate admin --tls-cert --tls-key'.",
    )
    srv.add_argument(
        "--host",
        action="append",
        default=[],
        required=True,
        help="a name or address people reach the admin by (repeat for more)",
    )
    srv.add_argument(
        "--out-dir",
        type=Path,
        required=True,
        help="writes admin-cert.pem (certificate and CA) and admin-key.pem here",
    )
    srv.add_argument(
        "--school-name",
        default=os.environ.get("SCHOOLGATE_SCHOOL_NAME", "School"),
        help="the school's name, for a CA made now ($SCHOOLGATE_SCHOOL_NAME)",
    )
    srv.set_defaults(handler=run_server_cert)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="what is in use and published",
        description="Print the CA certificate in use, a staged one (and from when it may go "
        "live) and the previous ones still published.",
    )
    status.set_defaults(handler=run_status)


def _confdir(args: argparse.Namespace) -> Path:
    return data_dir(args) / "ca"


def run_export(args: argparse.Namespace) -> int:
    try:
        _refresh(_confdir(args))
        data = export(
            _confdir(args),
            args.format,
            datetime.now(UTC),
            current_only=args.current_only,
            staged=args.staged,
        )
        if args.out is None:
            sys.stdout.buffer.write(data)
        else:
            args.out.write_bytes(data)
            print(f"schoolgate ca: wrote {args.out}", file=sys.stderr)
    except (CAError, OSError) as exc:
        print(f"schoolgate ca export: {exc}", file=sys.stderr)
        return 2
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    confdir, now = _confdir(args), datetime.now(UTC)
    try:
        if args.activate:
            pub = activate(confdir, now, force=args.force)
            print(
                f"schoolgate ca: now in use: {describe(pub.current)}. Restart the gateway "
                "(every worker) to sign with it. Still published: "
                f"{len(pub.previous)} previous certificate(s).",
                file=sys.stderr,
            )
            return 0
        if args.overlap_days < 1:
            raise CAError("--overlap-days must be at least 1")
        school = args.school_name
        if school is None:
            published(confdir, now)  # says clearly when there is no CA at all
            school = school_name_of(confdir)
        after = stage(confdir, school, timedelta(days=args.overlap_days), now)
    except (CAError, OSError) as exc:
        print(f"schoolgate ca rotate: {exc}", file=sys.stderr)
        return 2
    print(
        f"schoolgate ca: a new CA is staged and published beside the one in use (the "
        "running gateway's /ca.pem serves both now). Distribute it now: 'schoolgate ca export "
        "--format pem' (both certificates), or '--staged --format der|p12|pem' (the new one); "
        f"after {after:%Y-%m-%d} run 'schoolgate ca rotate --activate' and restart the "
        "gateway.",
        file=sys.stderr,
    )
    return 0


def _refresh(confdir: Path) -> None:
    if not (confdir / KEY_AND_CERT).exists():
        return  # published() says what is wrong
    dropped = refresh_published(confdir, datetime.now(UTC))
    if dropped:
        print(
            f"schoolgate ca: {dropped} old certificate(s) whose overlap has ended are no "
            "longer published",
            file=sys.stderr,
        )


def run_server_cert(args: argparse.Namespace) -> int:
    confdir = _confdir(args)
    try:
        confdir.parent.mkdir(parents=True, exist_ok=True)
        ensure_school_ca(confdir, args.school_name)
        chain, key = server_cert(confdir, args.host, datetime.now(UTC))
        if not args.out_dir.exists():
            args.out_dir.mkdir(parents=True)
            owner = confdir.parent.stat()  # the data directory's owner: the service user
            if os.geteuid() == 0:
                os.chown(args.out_dir, owner.st_uid, owner.st_gid)
        _write_atomic(args.out_dir / "admin-cert.pem", chain, 0o644)
        _write_atomic(args.out_dir / "admin-key.pem", key, 0o600)
    except (CAError, OSError) as exc:
        print(f"schoolgate ca server-cert: {exc}", file=sys.stderr)
        return 2
    print(
        f"schoolgate ca: wrote {args.out_dir / 'admin-cert.pem'} and admin-key.pem for "
        f"{', '.join(args.host)}; serve them with 'schoolgate admin --tls-cert "
        f"{args.out_dir / 'admin-cert.pem'} --tls-key {args.out_dir / 'admin-key.pem'}'",
        file=sys.stderr,
    )
    return 0


def run_status(args: argparse.Namespace) -> int:
    confdir = _confdir(args)
    try:
        _refresh(confdir)
        pub = published(confdir, datetime.now(UTC))
    except (CAError, OSError) as exc:
        print(f"schoolgate ca status: {exc}", file=sys.stderr)
        return 2
    state = read_state(confdir)
    print(f"in use:    {describe(pub.current)}")
    if pub.next is not None:
        print(
            f"staged:    {describe(pub.next)}; may go live after "
            f"{state['next']['activate_after'][:10]}"
        )
    for cert in pub.previous:
        print(f"previous:  {describe(cert)}")
    return 0
