"""Run inside the test's server network namespace: the "internet". Answers HTTP on port 80 (says
which address connected), echoes UDP on 443 (so only a firewall rule can refuse QUIC), and
accepts TCP on 22 and 853 (so only a firewall rule can refuse them)."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDRESS = sys.argv[1]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"origin: host={self.headers.get('Host')} peer={self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def udp_echo() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ADDRESS, 443))
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(b"echo " + data, peer)


def tcp_accept(port: int) -> None:
    with socket.create_server((ADDRESS, port)) as s:
        while True:
            conn, _ = s.accept()
            conn.close()


threading.Thread(target=udp_echo, daemon=True).start()
for extra in (22, 853, 2222):
    threading.Thread(target=tcp_accept, args=(extra,), daemon=True).start()
print("ready", flush=True)
ThreadingHTTPServer((ADDRESS, 80), Handler).serve_forever()
