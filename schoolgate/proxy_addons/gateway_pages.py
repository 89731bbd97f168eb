"""Answer requests addressed to the gateway itself: the PAC file (/proxy.pac, /wpad.dat), the
school CA certificate (/ca.pem, /ca.crt) and a short instructions page (/).

Such a request is never forwarded: mitmproxy would otherwise send it to itself. This addon runs
before identity, because browsers fetch the PAC file before they know about any proxy.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.mode_specs import RegularMode

from schoolgate.policy.addresses import InternalSettings
from schoolgate.proxy_addons.ca import CERT_PEM
from schoolgate.proxy_addons.errors import options_error
from schoolgate.proxy_addons.policy_source import PolicySource

PAC_TYPE = "application/x-ns-proxy-autoconfig"

# DIRECT only for the gateways, localhost, private or loopback IP literals (IPv4; IPv6 loopback,
# unique-local fc00::/7 and link-local fe80::/10; IPv4-mapped IPv6 as its IPv4), and the policy's
# internal allow-list entries marked `direct` (names and their subdomains; ranges, for literals).
# Host names are never resolved here (dnsResolve/isInNet on a name would let DNS decide what
# skips the filter). isInNet is IPv4-only in browsers, so IPv6 literals are matched by ipv6().
_PAC = """\
function ipv6(text) {
  if (!/^[0-9a-f:.]+$/.test(text) || text.indexOf(":") < 0) return null;
  var v4 = /^(.*:)(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})$/.exec(text);
  if (v4) {
    for (var k = 2; k < 6; k++) if (+v4[k] > 255) return null;
    text = v4[1] + (v4[2] * 256 + +v4[3]).toString(16) + ":" +
      (v4[4] * 256 + +v4[5]).toString(16);
  }
  var halves = text.split("::");
  if (halves.length > 2) return null;
  var head = halves[0] === "" ? [] : halves[0].split(":");
  var tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  var given = head.length + tail.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return null;
  var parts = head.concat(new Array(8 - given + 1).join("0").split(""), tail);
  var groups = [];
  for (var i = 0; i < 8; i++) {
    if (!/^[0-9a-f]{1,4}$/.test(parts[i])) return null;
    groups.push(parseInt(parts[i], 16));
  }
  return groups;
}
function inNet6(groups, net, bits) {
  var base = ipv6(net);
  for (var i = 0; i < 8 && bits > 16 * i; i++) {
    var mask = (0xffff << (16 - Math.min(16, bits - 16 * i))) & 0xffff;
    if ((groups[i] & mask) !== (base[i] & mask)) return false;
  }
  return true;
}
var PRIVATE6 = [["::1", 128], ["fc00::", 7], ["fe80::", 10]];
function FindProxyForURL(url, host) {
  host = host.toLowerCase();
  if (host.charAt(0) === "[" && host.charAt(host.length - 1) === "]") {
    host = host.substring(1, host.length - 1);
  }
  if (host === "localhost") return "DIRECT";
  for (var g = 0; g < GATEWAYS.length; g++) if (host === GATEWAYS[g]) return "DIRECT";
  for (var i = 0; i < DIRECT_NAMES.length; i++) {
    var name = DIRECT_NAMES[i];
    if (host === name || (host.length > name.length &&
        host.substring(host.length - name.length - 1) === "." + name)) return "DIRECT";
  }
  var v6 = ipv6(host);
  if (v6 !== null && v6.slice(0, 5).join() === "0,0,0,0,0" && v6[5] === 0xffff) {
    host = [v6[6] >> 8, v6[6] & 255, v6[7] >> 8, v6[7] & 255].join(".");  // IPv4-mapped
    v6 = null;
  }
  for (var n = 0; v6 !== null && n < DIRECT_NETS6.length; n++) {
    if (inNet6(v6, DIRECT_NETS6[n][0], DIRECT_NETS6[n][1])) return "DIRECT";
  }
  for (var p = 0; v6 !== null && p < PRIVATE6.length; p++) {
    if (inNet6(v6, PRIVATE6[p][0], PRIVATE6[p][1])) return "DIRECT";
  }
  var literal = /^\\d{1,3}(\\.\\d{1,3}){3}$/.test(host);
  for (var j = 0; literal && j < DIRECT_NETS.length; j++) {
    if (isInNet(host, DIRECT_NETS[j][0], DIRECT_NETS[j][1])) return "DIRECT";
  }
  if (literal &&
      (isInNet(host, "10.0.0.0", "255.0.0.0") ||
       isInNet(host, "172.16.0.0", "255.240.0.0") ||
       isInNet(host, "192.168.0.0", "255.255.0.0") ||
       isInNet(host, "127.0.0.0", "255.0.0.0") ||
       isInNet(host, "169.254.0.0", "255.255.0.0"))) return "DIRECT";
  return PROXY;
}
"""

_INDEX = """<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<title>School web filter</title></head><body style="font-family:sans-serif;max-width:40rem">
<h1>School web filter</h1>
<p>This is the school's web gateway. School devices are set up by IT; you do not need to do
anything here unless IT asked you to.</p>
<ul>
<li><a href="/proxy.pac">Proxy set-up file (PAC)</a>: give this address to the device's
"automatic proxy configuration" setting.</li>
<li><a href="/ca.crt">School certificate (for Windows, Android, iOS)</a> or
<a href="/ca.pem">the same in PEM format</a>: install it as a trusted root so that the
school's "this website is blocked" page can be shown.</li>
</ul></body></html>
"""


@dataclass(frozen=True, slots=True)
class _CA:
    pem: bytes
    der: bytes


class GatewayPages:
    def __init__(self, source: PolicySource) -> None:
        self._source = source  # the policy's internal settings, for the PAC file
        self._gateway_host = ""
        self._ca: _CA | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "schoolgate_gateway_host",
            str,
            "",
            "The gateway's own host name as clients know it (e.g. "
            "gateway.school.lan): used in the PAC file, and requests for it are "
            "answered by the gateway, never forwarded.",
        )

    def configure(self, updated: set[str]) -> None:
        if "schoolgate_gateway_host" in updated:
            name = ctx.options.schoolgate_gateway_host.strip().lower().rstrip(".")
            if any(c in name for c in "/:\"' \\"):
                raise options_error(
                    f"schoolgate_gateway_host: {name!r} is not a host name (give just the name, "
                    "for example gateway.school.lan)"
                )
            self._gateway_host = name
        if "confdir" in updated:
            self._ca = _read_ca(Path(ctx.options.confdir).expanduser())

    def running(self) -> None:
        if self._ca is None:  # mitmproxy made its CA after we were configured
            self._ca = _read_ca(Path(ctx.options.confdir).expanduser())

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or not self._addressed_to_gateway(flow):
            return
        flow.response = http.Response.make(
            403,
            b"Open the gateway's pages over http:// (for example /proxy.pac).\n",
            {"Content-Type": "text/plain; charset=utf-8"},
        )

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or not self._addressed_to_gateway(flow):
            return
        flow.response = self._page(flow)

    def _addressed_to_gateway(self, flow: http.HTTPFlow) -> bool:
        host = flow.request.host.lower().rstrip(".")
        if self._gateway_host and host == self._gateway_host:
            return True
        if not isinstance(flow.client_conn.proxy_mode, RegularMode):
            return False  # in transparent mode sockname is the destination, not us
        sockname = flow.client_conn.sockname
        if not sockname or flow.request.port != sockname[1]:
            return False
        ours = str(sockname[0]).lower()
        if host in (ours, f"[{ours}]"):
            return True
        return host == "localhost" and _is_loopback(ours)

    def _page(self, flow: http.HTTPFlow) -> http.Response:
        if flow.request.method not in ("GET", "HEAD"):
            return http.Response.make(405, b"Only GET is supported here.\n", {"Allow": "GET"})
        path = flow.request.path.split("?", 1)[0]
        if path in ("/proxy.pac", "/wpad.dat"):
            return http.Response.make(
                200,
                self._pac(flow).encode(),
                {"Content-Type": PAC_TYPE, "Cache-Control": "max-age=300"},
            )
        if path in ("/ca.pem", "/ca.crt"):
            self._ca = reread_ca(Path(ctx.options.confdir).expanduser(), self._ca)
            if self._ca is None:
                return http.Response.make(503, b"The school certificate is not ready yet.\n")
            if path == "/ca.pem":
                return http.Response.make(
                    200,
                    self._ca.pem,
                    {
                        "Content-Type": "application/x-pem-file",
                        "Content-Disposition": 'attachment; filename="school-ca.pem"',
                    },
                )
            return http.Response.make(
                200,
                self._ca.der,
                {
                    "Content-Type": "application/x-x509-ca-cert",
                    "Content-Disposition": 'attachment; filename="school-ca.crt"',
                },
            )
        if path == "/":
            return http.Response.make(
                200, _INDEX.encode(), {"Content-Type": "text/html; charset=utf-8"}
            )
        return http.Response.make(
            404,
            b"Not found. See / for what the gateway serves.\n",
            {"Content-Type": "text/plain; charset=utf-8"},
        )

    def _pac(self, flow: http.HTTPFlow) -> str:
        sockname = flow.client_conn.sockname
        host = self._gateway_host or str(sockname[0])
        if ":" in host:
            host = f"[{host}]"
        proxy = f"PROXY {host}:{sockname[1]}"
        return make_pac([self._gateway_host or str(sockname[0])], proxy, self._policy_internal())

    def _policy_internal(self) -> InternalSettings | None:
        """The policy's internal settings, as PolicySource holds them (a refused file keeps the
        last good policy's DIRECT entries)."""
        try:
            return self._source.snapshot.policy.internal
        except AttributeError:  # not configured yet
            return None


def make_pac(
    gateways: Sequence[str], proxies: str, internal: InternalSettings | None = None
) -> str:
    """The PAC file: DIRECT for the `gateways` themselves (every fail-over one), localhost,
    private or loopback IP literals and the `internal.allow` entries marked `direct` (names
    with their subdomains, IPv4 and IPv6 ranges); everything else through `proxies`
    ("PROXY host:port[; PROXY ...]"), never DIRECT."""
    direct = [entry for entry in (internal.allow if internal else ()) if entry.direct]
    names = sorted({host for entry in direct for host in entry.hosts})
    nets = [
        [str(net.network_address), str(net.netmask)]
        for entry in direct
        for net in entry.networks
        if net.version == 4
    ]
    nets6 = [
        [str(net.network_address), net.prefixlen]
        for entry in direct
        for net in entry.networks
        if net.version == 6
    ]
    hosts = [host.lower() for host in gateways]
    # json.dumps: a valid, safely quoted JavaScript literal.
    return (
        f"var GATEWAYS = {json.dumps(hosts)};\nvar PROXY = {json.dumps(proxies)};\n"
        f"var DIRECT_NAMES = {json.dumps(names)};\nvar DIRECT_NETS = {json.dumps(nets)};\n"
        f"var DIRECT_NETS6 = {json.dumps(nets6)};\n" + _PAC
    )


def _read_ca(confdir: Path) -> _CA | None:
    try:
        pem = (confdir / CERT_PEM).read_bytes()
    except FileNotFoundError:
        return None
    cert = x509.load_pem_x509_certificate(pem)
    return _CA(pem=pem, der=cert.public_bytes(serialization.Encoding.DER))


def reread_ca(confdir: Path, known: _CA | None) -> _CA | None:
    """The published certificates as they are now (`schoolgate ca rotate` rewrites them while
    the gateway runs); `known` when the file is unchanged or cannot be read."""
    try:
        pem = (confdir / CERT_PEM).read_bytes()
    except OSError:
        return known
    if known is not None and pem == known.pem:
        return known
    return _read_ca(confdir) or known


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
