"""The front door's TLS ClientHello reader: the few fields the gateway's hooks read (the SNI, the
ALPN offers, the extensions' types and bodies) straight from the raw bytes, strictly.

mitmproxy parses every ClientHello with a generated kaitai-struct parser that builds an object
per field; the front door needs only the SNI (to compare with the CONNECT and to decide) and the
extension types (Encrypted ClientHello). This reader gives the same answers as mitmproxy's
`parse_client_hello` on every ClientHello it accepts (tests/proxy_addons/test_frontdoor_hello.py
checks it against mitmproxy's parser, on real ClientHellos and on hostile bytes), as mitmproxy's
own ClientHello class (mitm_internals.PreparsedHello), and refuses
(ValueError) everything it does not fully understand, which the front door then hands to
mitmproxy as today: lengths that disagree with what they frame, a repeated extension, a server
name extension that is not exactly one valid host name, a ClientHello without extensions, a
handshake message that is not a ClientHello. Reading records is mitmproxy's own rule (a hello may
span several handshake records), so "not complete yet" (None) means the same here and there.
"""

from __future__ import annotations

from schoolgate.proxy_addons.frontdoor_connect import valid_host
from schoolgate.proxy_addons.mitm_internals import PreparsedHello as Hello

RECORD_HEADER = 5
HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
SERVER_NAME = 0x0000
ALPN = 0x0010


def read_hello(data: bytes) -> Hello | None:
    """The ClientHello at the start of `data` (TLS records as a client sends them): None while
    it is not all there; ValueError when it is not a ClientHello this reader fully understands."""
    message = _handshake_message(data)
    if message is None:
        return None
    if message[0] != CLIENT_HELLO:
        raise ValueError("not a ClientHello")
    return _read_body(message[4:])


def _handshake_message(data: bytes) -> bytes | None:
    """The first handshake message, from as many handshake records as it spans (mitmproxy's
    `get_client_hello`, same checks)."""
    message = b""
    offset = 0
    while True:
        if len(data) < offset + RECORD_HEADER:
            return None
        if not (data[offset] == HANDSHAKE and data[offset + 1] == 0x03 and data[offset + 2] <= 3):
            raise ValueError("not a TLS handshake record")
        size = (data[offset + 3] << 8) | data[offset + 4]
        if size == 0:
            raise ValueError("an empty TLS record")
        offset += RECORD_HEADER
        if len(data) < offset + size:
            return None
        message += data[offset : offset + size]
        offset += size
        if len(message) >= 4:
            total = int.from_bytes(message[1:4], "big") + 4
            if len(message) >= total:
                return message[:total]


def _read_body(body: bytes) -> Hello:
    end = len(body)
    if end < 2 + 32 + 1 or body[0] != 0x03:
        raise ValueError("not a TLS ClientHello")
    at = 2 + 32  # legacy version, random
    at = _skip(body, at, 1, end, most=32)  # session id
    suites = _length(body, at, 2, end)
    if suites < 2 or suites % 2:
        raise ValueError("bad cipher suites")
    at += 2 + suites
    if _length(body, at, 1, end) < 1:
        raise ValueError("no compression method")
    at = _skip(body, at, 1, end)
    if at == end or _length(body, at, 2, end) != end - at - 2:
        raise ValueError("the extensions' length does not match the ClientHello")
    at += 2
    sni: str | None = None
    alpn: tuple[bytes, ...] = ()
    seen: set[int] = set()
    extensions: list[tuple[int, bytes]] = []
    while at < end:
        if at + 4 > end:
            raise ValueError("a truncated extension")
        kind = (body[at] << 8) | body[at + 1]
        size = (body[at + 2] << 8) | body[at + 3]
        at += 4
        if at + size > end:
            raise ValueError("an extension longer than the ClientHello")
        if kind in seen:
            raise ValueError("a repeated extension")
        seen.add(kind)
        value = body[at : at + size]
        at += size
        if kind == SERVER_NAME:
            sni = _server_name(value)
        elif kind == ALPN:
            alpn = _alpn(value)
        extensions.append((kind, value))
    return Hello(body, sni, alpn, tuple(extensions))


def _length(data: bytes, at: int, size: int, end: int) -> int:
    """The `size`-byte big-endian length at `at`, and that it fits before `end`."""
    if at + size > end:
        raise ValueError("truncated")
    length = int.from_bytes(data[at : at + size], "big")
    if at + size + length > end:
        raise ValueError("a length longer than what it is in")
    return length


def _skip(data: bytes, at: int, size: int, end: int, most: int = 1 << 16) -> int:
    """Past a vector with a `size`-byte length at `at`."""
    length = _length(data, at, size, end)
    if length > most:
        raise ValueError("too long")
    return at + size + length


def _server_name(value: bytes) -> str:
    """Exactly one host name (type 0), valid as mitmproxy checks it; anything else is refused
    (mitmproxy would then see no SNI, or the next server name extension)."""
    if len(value) < 5 or int.from_bytes(value[0:2], "big") != len(value) - 2 or value[2] != 0:
        raise ValueError("not one host name")
    name = value[5:]
    if int.from_bytes(value[3:5], "big") != len(name) or not name.isascii():
        raise ValueError("not one host name")
    if not valid_host(name):
        raise ValueError("not a valid host name")
    return name.decode("ascii")


def _alpn(value: bytes) -> tuple[bytes, ...]:
    if len(value) < 2 or int.from_bytes(value[0:2], "big") != len(value) - 2:
        raise ValueError("bad ALPN list")
    names = []
    at, end = 2, len(value)
    while at < end:
        size = value[at]
        if size == 0 or at + 1 + size > end:
            raise ValueError("bad ALPN protocol")
        names.append(value[at + 1 : at + 1 + size])
        at += 1 + size
    return tuple(names)
