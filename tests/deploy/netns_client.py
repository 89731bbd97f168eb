"""Run inside the test's client network namespace: one probe, its result as JSON on stdout.

http HOST_HEADER IP PORT      -> {"status": ..., "body": ...} or {"error": ...}
https SNI IP PORT CAFILE      -> the same, over TLS with SNI, trusting CAFILE only
udp IP PORT                   -> {"reply": ...} or {"error": "ConnectionRefusedError"}
tcp IP PORT                   -> {"connected": true} or {"error": ...}
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys


def main(argv: list[str]) -> dict[str, object]:
    kind = argv[0]
    try:
        if kind in ("http", "https"):
            name, ip, port = argv[1], argv[2], int(argv[3])
            if kind == "https":
                context = ssl.create_default_context(cafile=argv[4])
                sock = socket.create_connection((ip, port), timeout=10)
                wrapped = context.wrap_socket(sock, server_hostname=name)
                conn = http.client.HTTPConnection(name, port, timeout=10)
                conn.sock = wrapped
            else:
                conn = http.client.HTTPConnection(ip, port, timeout=10)
            conn.request("GET", "/", headers={"Host": name})
            response = conn.getresponse()
            return {"status": response.status, "body": response.read().decode(errors="replace")}
        if kind == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.connect((argv[1], int(argv[2])))
                s.send(b"quic initial, or so")
                return {"reply": s.recv(100).decode()}
        if kind == "tcp":
            with socket.create_connection((argv[1], int(argv[2])), timeout=5):
                return {"connected": True}
    except OSError as exc:
        return {"error": type(exc).__name__, "detail": str(exc)}
    raise SystemExit(f"unknown probe {kind!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
