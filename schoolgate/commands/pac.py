"""`schoolgate pac`: write the proxy auto-config (PAC) file for a gateway's host and port, the same
text the gateway serves at /proxy.pac and /wpad.dat, and say how to publish it (WPAD)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schoolgate.policy.addresses import InternalSettings
from schoolgate.policy.errors import PolicyError
from schoolgate.proxy_addons import gateway_pages
from schoolgate.store.policy_files import load_policy

WPAD_NOTES = """\
How devices find this file:
  - Set it by policy: Group Policy / Intune "automatic configuration script" =
    http://{host}:{port}/proxy.pac (the gateway serves this file itself).
  - WPAD by DNS: make wpad.<your DNS domain> point at the gateway (an A record, or a CNAME to
    {host}); browsers set to "automatically detect" then ask http://wpad.<domain>/wpad.dat,
    on port 80 (not {port}): publish this file on a web server on port 80 at that address, or
    forward port 80 there to the gateway's {port}.
    Windows DNS Server blocks the name "wpad" until you remove it from its global query block
    list (dnscmd /config /globalqueryblocklist isatap).
  - WPAD by DHCP: option 252 (type string) = http://{host}:{port}/wpad.dat. Chromium-based
    browsers on Windows and Windows itself use it; Firefox and macOS use DNS WPAD only.
  - Either way, the firewall must stop school devices reaching the internet directly (TCP 80,
    443 and UDP 443 from client networks), or removing the proxy setting skips the filter.
"""


def make_pac(gateways: list[tuple[str, int]], internal: InternalSettings | None = None) -> str:
    """The PAC text: DIRECT for the gateways themselves, localhost, private or loopback IP
    literals and the policy's `internal.allow` entries marked `direct: true`; every other host
    through the gateways in order (fail-over), never DIRECT."""
    if not gateways:
        raise ValueError("at least one gateway is needed")
    proxies = "; ".join(f"PROXY {_bracket(host)}:{port}" for host, port in gateways)
    return gateway_pages.make_pac([host for host, _ in gateways], proxies, internal)


def parse_gateway(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port' or '[v6]:port' -> (lower-case host, port); ValueError says why not."""
    text = text.strip().lower().rstrip(".")
    host, port = text, default_port
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = _port(raw, text)
    if not host or any(c in host for c in "/\"' \\"):
        raise ValueError(
            f"{text!r} is not a host name or address (for example "
            "gateway.school.lan or gateway.school.lan:8080)"
        )
    return host.rstrip("."), port


def _port(raw: str, whole: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(raw)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "pac",
        help="write the proxy auto-config (PAC) file, with WPAD notes",
        description="Write the PAC file that sends every internet host through the gateway, "
        "for Group Policy, MDM or a WPAD web server. Only these go DIRECT (not through the "
        "gateway): localhost, the gateway itself, private and loopback IP addresses, and the "
        "policy's internal.allow entries marked 'direct: true'. If no gateway answers, "
        "the browser tries the next one, never DIRECT.",
    )
    parser.add_argument(
        "--gateway",
        action="append",
        required=True,
        metavar="HOST[:PORT]",
        help="the gateway as devices reach it; repeat for fail-over, in order",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port for gateways given without one (default: 8080)"
    )
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="the policy whose internal.allow entries marked 'direct: true' go "
        "DIRECT (default: the seed policy)",
    )
    parser.add_argument("--out", type=Path, help="write here (default: standard output)")
    parser.add_argument(
        "--no-notes", action="store_true", help="do not print the WPAD notes (on standard error)"
    )
    parser.set_defaults(handler=run_pac)


def run_pac(args: argparse.Namespace) -> int:
    try:
        gateways = [parse_gateway(g, args.port) for g in args.gateway]
    except ValueError as exc:
        print(f"schoolgate pac: --gateway {exc}", file=sys.stderr)
        return 2
    try:
        internal = load_policy(args.policy).internal
    except PolicyError as exc:
        print(f"schoolgate pac: --policy: {exc}", file=sys.stderr)
        return 2
    text = make_pac(gateways, internal)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"schoolgate pac: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        print(f"schoolgate pac: wrote {args.out}", file=sys.stderr)
    if not args.no_notes:
        host, port = gateways[0]
        print(WPAD_NOTES.format(host=_bracket(host), port=port), file=sys.stderr)
    return 0
