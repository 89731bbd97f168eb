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
    return (b"\x03\x03" + os.urandom(32) + _vec(os.urandom(32), 1)
            + _vec(b"\x13\x01\x13\x02\xc0\x2f", 2) + _vec(b"\x00", 1) + _vec(exts, 2))


def client_hello_record(sni: str | None, extensions: dict[int, bytes] | None = None) -> bytes:
    """A whole TLS record carrying the ClientHello, as a client sends it on the wire."""
    body = client_hello_body(sni, extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + _vec(handshake, 2)


# An ECH "outer" extension payload: type outer(0), kdf/aead ids, config id, enc, payload.
ECH_PAYLOAD = b"\x00" + b"\x00\x01\x00\x01" + b"\x2a" + _vec(os.urandom(32), 2) \
    + _vec(os.urandom(64), 2)
