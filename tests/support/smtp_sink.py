"""A tiny SMTP server on loopback that keeps every message it is given (just enough of RFC 5321
for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT, and STARTTLS when given
a server TLS context), for alert tests. Each message records whether it came encrypted."""

from __future__ import annotations

import base64
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message
    login: str | None
    encrypted: bool = False


@dataclass
class SmtpSink:
    port: int
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def smtp_sink(tls: ssl.SSLContext | None = None) -> Iterator[SmtpSink]:
    sink: SmtpSink

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 sink ESMTP")
            sender, recipients, login = "", [], None
            encrypted = False
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                line = raw.decode().rstrip("\r\n")
                verb = line[:4].upper()
                if verb == "EHLO":
                    self.reply("250-sink")
                    if tls is not None and not encrypted:
                        self.reply("250-STARTTLS")
                    self.reply("250 AUTH PLAIN")
                elif line.upper() == "STARTTLS" and tls is not None and not encrypted:
                    self.reply("220 go ahead")
                    self.wfile.flush()
                    self.connection = tls.wrap_socket(self.connection, server_side=True)
                    self.rfile = self.connection.makefile("rb")
                    self.wfile = self.connection.makefile("wb", buffering=0)
                    encrypted = True
                elif verb == "HELO":
                    self.reply("250 sink")
                elif verb == "AUTH":
                    parts = line.split()
                    token = parts[2] if len(parts) > 2 else ""
                    login = base64.b64decode(token).split(b"\0")[1].decode() if token else None
                    self.reply("235 ok")
                elif verb == "MAIL":
                    sender = line.partition(":")[2].strip().strip("<>").split(">")[0]
                    self.reply("250 ok")
                elif verb == "RCPT":
                    recipients.append(line.partition(":")[2].strip().strip("<>"))
                    self.reply("250 ok")
                elif verb == "DATA":
                    self.reply("354 go on")
                    body = b""
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        body += chunk[1:] if chunk.startswith(b"..") else chunk
                    with sink.lock:
                        sink.messages.append(
                            Received(sender, recipients, message_from_bytes(body), login, encrypted)
                        )
                    sender, recipients = "", []
                    self.reply("250 queued")
                elif verb == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 ok")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    sink = SmtpSink(int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
