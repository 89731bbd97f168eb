"""Hand-built TLS ClientHello messages, for tests that need an extension no Python TLS stack
sends (Encrypted ClientHello, 0xfe0d)."""

from __future__ import annotations

import os

ECH = 0xFE0D


def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def client_hello_body(sni: str | None, extensions: dict[int, bytes] | None = None) -> bytes:
    """The ClientHello handshake body (what mitmproxy.tls.ClientHello parses)."""
    exts = b""
    if sni is not None:
        name = b"\x00" + _vec(sni.encode(), 2)
        exts += (0).to_bytes(2, "big") + _vec(_vec(name, 2), 2)
    for kind, data in (extensions or {}).items():
        exts += kind.to_bytes(2, "big") + _vec(data, 2)
    return (
        b"\x03\x03"
        + os.urandom(32)
        + _vec(os.urandom(32), 1)
        + _vec(b"\x13\x01\x13\x02\xc0\x2f", 2)
        + _vec(b"\x00", 1)
        + _vec(exts, 2)
    )


def client_hello_record(sni: str | None, extensions: dict[int, bytes] | None = None) -> bytes:
    """A whole TLS record carrying the ClientHello, as a client sends it on the wire."""
    body = client_hello_body(sni, extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + _vec(handshake, 2)


# An ECH "outer" extension payload: type outer(0), kdf/aead ids, config id, enc, payload.
ECH_PAYLOAD = (
    b"\x00" + b"\x00\x01\x00\x01" + b"\x2a" + _vec(os.urandom(32), 2) + _vec(os.urandom(64), 2)
)


def real_client_hello_record(sni: str, extensions: dict[int, bytes]) -> bytes:
    """The ClientHello Python's own TLS stack sends for `sni`, with `extensions` added at the
    end: what a browser's handshake with a dummy ("GREASE") ECH extension looks like."""
    import contextlib
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        conn.do_handshake()
    record = outgoing.read()
    body = bytearray(record[9 : 9 + int.from_bytes(record[6:9], "big")])
    at = 2 + 32  # version, random
    at += 1 + body[at]  # session id
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher suites
    at += 1 + body[at]  # compression methods
    added = b"".join(kind.to_bytes(2, "big") + _vec(data, 2) for kind, data in extensions.items())
    total = int.from_bytes(body[at : at + 2], "big") + len(added)
    body[at : at + 2] = total.to_bytes(2, "big")
    body += added
    handshake = b"\x01" + len(body).to_bytes(3, "big") + bytes(body)
    return record[:3] + len(handshake).to_bytes(2, "big") + handshake
