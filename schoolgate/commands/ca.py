"""`schoolgate ca export|rotate|status`: hand the school CA certificate out in the formats device
managers want, and replace the CA without breaking devices (stage a new CA, publish both, switch
after an overlap, keep the old one published until devices have moved on).

Files in the gateway's CA folder (DATA_DIR/ca): mitmproxy-ca.pem (key + certificate in use,
secret), mitmproxy-ca-cert.pem/.cer (what is published: the certificate in use, then a staged
next one, then previous ones still in their overlap), next-ca.pem (a staged CA, secret),
previous/*.pem (old certificates) and rotation.json (the dates).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from proxy_addons.ca import CERT_CER, CERT_PEM, KEY_AND_CERT, make_school_ca
from schoolgate.commands.gateway import data_dir

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
        raise CAError(f"there is no school CA in {confdir} yet: start the gateway once "
                      "(schoolgate gateway) or give the right --data-dir") from None
    state = read_state(confdir)
    staged = confdir / NEXT
    nxt = _certs(staged.read_bytes())[0] if staged.exists() else None
    previous = tuple(
        _certs((confdir / PREVIOUS / p["file"]).read_bytes())[0]
        for p in state.get("previous", [])
        if datetime.fromisoformat(p["retire_after"]) > now
        and (confdir / PREVIOUS / p["file"]).exists())
    return Published(current, nxt, previous)


def export(confdir: Path, fmt: str, now: datetime, *, current_only: bool = False) -> bytes:
    """The published certificates as PEM (a bundle), DER (the one in use only: DER holds one
    certificate) or PKCS#12 (certificates only, no key, no password)."""
    pub = published(confdir, now)
    certs = [pub.current] if current_only else pub.all()
    if fmt == "pem":
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if fmt == "der":
        return pub.current.public_bytes(serialization.Encoding.DER)
    if fmt == "p12":
        return pkcs12.serialize_key_and_certificates(
            b"school web filter CA", None, None, certs, serialization.NoEncryption())
    raise CAError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def stage(confdir: Path, school_name: str, overlap: timedelta, now: datetime) -> datetime:
    """Make the next CA beside the one in use and publish both; returns when it may go live."""
    published(confdir, now)  # there is a CA to rotate
    if (confdir / NEXT).exists():
        raise CAError(f"a new CA is already staged ({confdir / NEXT}): switch to it with "
                      "'schoolgate ca rotate --activate', or delete that file to start over")
    key, cert = make_school_ca(school_name, now=now)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()) + \
        cert.public_bytes(serialization.Encoding.PEM)
    _write_atomic(confdir / NEXT, pem, 0o600)
    state = read_state(confdir)
    state["next"] = {"staged_at": now.isoformat(), "activate_after": (now + overlap).isoformat(),
                     "overlap_days": overlap.days}
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
        raise CAError(f"the staged CA may go live after {after:%Y-%m-%d %H:%M} UTC, when devices "
                      "have had time to trust it; --force switches now (devices that do not "
                      "trust it yet will show certificate errors)")
    old = _certs((confdir / KEY_AND_CERT).read_bytes())[0]
    (confdir / PREVIOUS).mkdir(exist_ok=True)
    name = f"{old.serial_number:x}.pem"
    _write_atomic(confdir / PREVIOUS / name, old.public_bytes(serialization.Encoding.PEM), 0o644)
    os.replace(confdir / NEXT, confdir / KEY_AND_CERT)  # the old private key is gone for good
    for stale in STALE:
        (confdir / stale).unlink(missing_ok=True)
    overlap = timedelta(days=int(staged.get("overlap_days", 30)))
    state.pop("next")
    state.setdefault("previous", []).append(
        {"file": name, "retired_at": now.isoformat(),
         "retire_after": (now + overlap).isoformat()})
    _write_atomic(confdir / STATE, json.dumps(state, indent=2).encode(), 0o644)
    return republish(confdir, now)


def republish(confdir: Path, now: datetime) -> Published:
    """Rewrite the published certificate files (what /ca.pem serves) from the current state."""
    pub = published(confdir, now)
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pub.all())
    _write_atomic(confdir / CERT_PEM, bundle, 0o644)
    _write_atomic(confdir / CERT_CER, bundle, 0o644)
    return pub


def _certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(temp, path)


def describe(cert: x509.Certificate) -> str:
    return (f"{cert.subject.rfc4514_string()} serial {cert.serial_number:x}, valid until "
            f"{cert.not_valid_after_utc:%Y-%m-%d}")


# --- the command line ---------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ca", help="export or rotate the school CA certificate",
                                   description=__doc__)
    commands = parser.add_subparsers(dest="ca_command", metavar="ACTION")
    commands.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="the gateway's data directory (default: $SCHOOLGATE_DATA_DIR or "
                             "./var/schoolgate)")

    exp = commands.add_parser("export", parents=[common], help="write the CA certificate(s)",
                              description="pem: every published certificate (during a rotation "
                                          "both); der: the one in use (.cer/.crt for Windows, "
                                          "Intune, Jamf, ChromeOS); p12: certificates only.")
    exp.add_argument("--format", choices=FORMATS, default="pem")
    exp.add_argument("--out", type=Path, help="write here (default: standard output)")
    exp.add_argument("--current-only", action="store_true",
                     help="only the certificate in use, even during a rotation")
    exp.set_defaults(handler=run_export)

    rot = commands.add_parser("rotate", parents=[common], help="stage a new CA, or switch to it",
                              description="Without --activate: make a new CA and publish it "
                                          "beside the one in use. After the overlap, --activate "
                                          "puts it in use (restart the gateway then); the old "
                                          "certificate stays published for another overlap.")
    rot.add_argument("--overlap-days", type=int, default=30,
                     help="days both certificates are published before and after the switch "
                          "(default: 30)")
    rot.add_argument("--activate", action="store_true", help="put the staged CA in use")
    rot.add_argument("--force", action="store_true", help="with --activate: before the overlap "
                                                          "has passed")
    rot.add_argument("--school-name", default=os.environ.get("SCHOOLGATE_SCHOOL_NAME", "School"))
    rot.set_defaults(handler=run_rotate)

    status = commands.add_parser("status", parents=[common], help="what is in use and published")
    status.set_defaults(handler=run_status)


def _confdir(args: argparse.Namespace) -> Path:
    return data_dir(args) / "ca"


def run_export(args: argparse.Namespace) -> int:
    try:
        data = export(_confdir(args), args.format, datetime.now(UTC),
                      current_only=args.current_only)
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
            print(f"schoolgate ca: now in use: {describe(pub.current)}. Restart the gateway "
                  "(every worker) to use it. Still published: "
                  f"{len(pub.previous)} previous certificate(s).", file=sys.stderr)
            return 0
        if args.overlap_days < 1:
            raise CAError("--overlap-days must be at least 1")
        after = stage(confdir, args.school_name, timedelta(days=args.overlap_days), now)
    except (CAError, OSError) as exc:
        print(f"schoolgate ca rotate: {exc}", file=sys.stderr)
        return 2
    print(f"schoolgate ca: a new CA is staged and published beside the one in use. Distribute "
          f"'schoolgate ca export --format pem' (both certificates) now; after {after:%Y-%m-%d} "
          "run 'schoolgate ca rotate --activate' and restart the gateway.", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    confdir = _confdir(args)
    try:
        pub = published(confdir, datetime.now(UTC))
    except CAError as exc:
        print(f"schoolgate ca status: {exc}", file=sys.stderr)
        return 2
    state = read_state(confdir)
    print(f"in use:    {describe(pub.current)}")
    if pub.next is not None:
        print(f"staged:    {describe(pub.next)}; may go live after "
              f"{state['next']['activate_after'][:10]}")
    for cert in pub.previous:
        print(f"previous:  {describe(cert)}")
    return 0
