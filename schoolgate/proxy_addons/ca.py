"""The school's own certificate authority, made in the confdir mitmproxy reads before it starts.

mitmproxy would otherwise make a CA called "mitmproxy"; ours names the school, so a technician
who finds it in a trust store knows what it is. An existing CA is never replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

BASENAME = "mitmproxy"  # the file names mitmproxy looks for in its confdir
KEY_AND_CERT = f"{BASENAME}-ca.pem"  # secret: the key and the certificate
CERT_PEM = f"{BASENAME}-ca-cert.pem"  # public: for distribution
CERT_CER = f"{BASENAME}-ca-cert.cer"  # public: same PEM text, the name Android expects
VALIDITY = timedelta(days=10 * 365)
BACKDATE = timedelta(days=2)  # tolerate clients whose clocks run slow


@dataclass(frozen=True, slots=True)
class SchoolCA:
    confdir: Path
    created: bool  # False: an existing CA was kept

    @property
    def cert_pem_path(self) -> Path:
        return self.confdir / CERT_PEM


def ensure_school_ca(confdir: Path, school_name: str, *, now: datetime | None = None) -> SchoolCA:
    """Make the school CA in `confdir` unless one is already there; return where it is."""
    if (confdir / KEY_AND_CERT).exists():
        return SchoolCA(confdir, created=False)
    if not confdir.exists():
        confdir.mkdir(parents=True)
        owner = confdir.parent.stat()
        if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
            os.chown(confdir, owner.st_uid, owner.st_gid)
    key, cert = make_school_ca(school_name, now=now or datetime.now(UTC))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(confdir / KEY_AND_CERT, key_pem + cert_pem, mode=0o600)
    _write(confdir / CERT_PEM, cert_pem, mode=0o644)
    _write(confdir / CERT_CER, cert_pem, mode=0o644)
    return SchoolCA(confdir, created=True)


def make_school_ca(
    school_name: str, *, now: datetime, key_size: int = 2048
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A self-signed CA: CA:TRUE, keyCertSign. RSA because mitmproxy reuses the CA key for the
    certificates it makes per site, and every client understands RSA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"schoolgate CA ({school_name})"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, school_name[:64] or "schoolgate"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _write(path: Path, data: bytes, *, mode: int) -> None:
    # O_EXCL + the mode at creation: the key file is never readable by others, not even briefly.
    # Owned like the data directory: root preparing it must leave the service user its own CA.
    owner = path.parent.parent.stat()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
            os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
        out.write(data)
