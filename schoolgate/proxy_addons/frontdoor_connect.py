"""The front door's CONNECT reader: the common, plain CONNECT head (an ASCII host name, a port,
HTTP/1.0 or 1.1, header lines of visible characters) read into mitmproxy's Request with a few
regular expressions, instead of mitmproxy's general request-head parser (authority parsing, IDNA
decoding, line by line).

Strict: it gives exactly the Request mitmproxy's `http1.read_request_head` gives
(tests/proxy_addons/test_frontdoor_connect.py checks it against it), and anything else (an IPv6
or IDNA host, folded or odd header lines, another method) is None: the front door then reads
the head with mitmproxy's parser, as before.
"""

from __future__ import annotations

import re
import time

from mitmproxy import http
from mitmproxy.net.check import is_valid_host

from schoolgate.policy.hostnames import ShortNameMemo

# Host characters that IDNA decoding leaves as they are; "xn--" labels are refused below.
_REQUEST_LINE = re.compile(rb"CONNECT ([A-Za-z0-9._-]{1,253}):([0-9]{1,5}) (HTTP/1\.[01])")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t\x20-\x7e]*)")


def _valid_host(name: bytes) -> bool:
    return bool(is_valid_host(name))


# mitmproxy's `is_valid_host`, remembered per name (a school asks for the same few thousand
# names all day); no name longer than a host can be is kept.
valid_host = ShortNameMemo(_valid_host, longest=255, size=4096)


def plain_host(host: bytes, port: int) -> bool:
    """Is `host`:`port` one the front door's readers take as they are: a valid ASCII host name
    that IDNA decoding would leave alone (no "xn--" label), and a port in range?"""
    return 0 < port <= 65535 and b"xn--" not in host.lower() and valid_host(host)


def read_connect(head: bytes) -> http.Request | None:
    """The CONNECT request in `head` (its lines, without the blank line that ends it), or None
    when it is not one this reader fully understands."""
    unbroken = head.replace(b"\r\n", b"")  # (a lone CR or LF: not a plain head)
    if b"\n" in unbroken or b"\r" in unbroken:
        return None
    lines = head.split(b"\r\n")
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    host, port_text, version = line.groups()
    port = int(port_text)
    if not plain_host(host, port):
        return None
    fields = []
    for text in lines[1:]:
        header = _HEADER.fullmatch(text)
        if header is None:
            return None
        fields.append((header[1], header[2].strip()))
    return http.Request(
        host=host.decode("ascii"),
        port=port,
        method=b"CONNECT",
        scheme=b"",
        authority=host + b":" + port_text,
        path=b"",
        http_version=version,
        headers=http.Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=time.time(),
        timestamp_end=None,
    )
