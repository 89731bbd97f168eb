"""Recognise, from a decrypted request's path and query, the web-proxy scripts that schools' lists
never finish listing (anyone can put Glype or PHProxy on a new host), and the upgrades that turn
an HTTP request into a tunnel (MASQUE CONNECT-UDP / CONNECT-IP): pure functions for Detect.

Shapes, from each script's own source and documentation:
- Glype: `browse.php?u=<url>&b=<flags>` (and `includes/process.php?action=update` for its form);
- PHProxy and php-proxy: `index.php?q=<base64 or plain url>&hl=<flags>`;
- CGIProxy: `nph-proxy.cgi/<flags>/<url>` (also `.pl`);
- miniProxy: `miniProxy.php?<url>`;
- CroxyProxy: a `__cpo=<base64 origin>` parameter;
- MASQUE: `Upgrade: connect-udp` (RFC 9298) or `connect-ip` (RFC 9484), also a
  `/.well-known/masque/` path.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qs, unquote

Evidence = dict[str, str]

_URL = re.compile(r"^(https?:/*|www\.)[^\s/]+\.[^\s]+", re.IGNORECASE)
_CGIPROXY = re.compile(r"/nph-[\w.-]*proxy[\w.-]*\.(cgi|pl)(/|$)", re.IGNORECASE)
_MINIPROXY = re.compile(r"/miniproxy\.php$", re.IGNORECASE)
TUNNEL_UPGRADES = frozenset({"connect-udp", "connect-ip"})
# Upgrades a browser makes by itself; any other is a tunnel or nothing a page needs.
_ORDINARY_UPGRADES = frozenset({"websocket", "h2c"})


def _looks_like_url(value: str) -> bool:
    return bool(_URL.match(value.strip()))


def _decoded_url(value: str) -> str | None:
    """`value` if it is a URL as it stands, percent-decoded, or base64 of one."""
    for candidate in (value, unquote(value)):
        if _looks_like_url(candidate):
            return candidate
    text = value.strip()
    if len(text) >= 12 and re.fullmatch(r"[A-Za-z0-9+/_-]+=*", text):
        padded = text + "=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=False)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if _looks_like_url(decoded):
            return decoded
    return None


def proxy_script_evidence(path: str, query: str) -> Evidence | None:
    """What marks this request as a web-proxy script fetching another page, else None."""
    lowered = path.lower()
    if _CGIPROXY.search(lowered):
        return {"script": "cgiproxy", "path": path[:200]}
    if _MINIPROXY.search(lowered) and _decoded_url(query):
        return {"script": "miniproxy", "target": query[:200]}
    if lowered.endswith("/includes/process.php") and "action=update" in query:
        return {"script": "glype", "path": path[:200]}
    if not query:
        return None
    try:
        params = parse_qs(query, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        return None
    first = {name: values[0] for name, values in params.items() if values}
    if "__cpo" in first and _decoded_url(first["__cpo"]):
        return {"script": "croxyproxy", "target": _decoded_url(first["__cpo"]) or ""}
    if lowered.endswith("/browse.php") and "u" in first:
        target = _decoded_url(first["u"])
        if target:
            return {"script": "glype", "target": target[:200]}
    if lowered.endswith("/index.php") and "q" in first:
        target = _decoded_url(first["q"])
        if target:
            return {"script": "phproxy", "target": target[:200]}
    return None


def tunnel_upgrade_evidence(path: str, upgrade: str) -> Evidence | None:
    """An HTTP request that asks to become a tunnel (MASQUE), else None. `upgrade` is the
    request's Upgrade header (HTTP/1.1), or the :protocol of an extended CONNECT."""
    tokens = {t.strip().lower().split("/")[0] for t in upgrade.split(",") if t.strip()}
    for token in sorted(tokens):
        if token in TUNNEL_UPGRADES:
            return {"signal": "upgrade", "value": token}
    if path.lower().startswith("/.well-known/masque/"):
        return {"signal": "path", "value": "/.well-known/masque/"}
    unusual = sorted(tokens - _ORDINARY_UPGRADES)
    if unusual:
        return {"signal": "upgrade", "value": unusual[0][:50]}
    return None
