"""The HTTP(S) server under :class:`~secretclient.testing.NcpEmulator`: one thread per
connection, TLS when asked, proxy mode (``CONNECT`` to NCP's hosts answered here, never
forwarded), and nothing logged (bodies carry secret values)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from secretclient.stores._ncp_http import ACCESS_KEY_HEADER, JOB_TOKEN_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

if TYPE_CHECKING:
    from secretclient.testing.ncp_emulator import NcpEmulator

__all__ = ["NCP_HOSTS", "Server"]

#: The hosts proxy mode answers for (and the TLS certificate names).
NCP_HOSTS = ("secretmanager.apigw.ntruss.com", "ocapi-kr.ncloud.com", "ocapi-jp.ncloud.com")


class Server(ThreadingHTTPServer):
    """Serves ``emulator``'s API on ``address``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: NcpEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client that went away is no news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    server_version = "NcpEmulator"
    timeout = 30
    server: Server

    def setup(self) -> None:
        emu = self.server.emulator
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if emu.https:
            self.request.settimeout(10)
            try:
                self.request = emu._ssl_context().wrap_socket(self.request, server_side=True)
            except (OSError, ssl.SSLError):
                self.request.close()
                raise
        super().setup()
        emu._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # bodies carry secret values; request lines are not worth the risk either

    def do_CONNECT(self) -> None:
        """Proxy mode: answer the tunnel to an NCP host ourselves, over TLS."""
        emu = self.server.emulator
        if self.path.rsplit(":", 1)[0].lower() not in NCP_HOSTS:
            self.send_response(502, "Bad Gateway")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        self.send_response(200, "Connection Established")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        try:
            tls = emu._ssl_context().wrap_socket(self.connection, server_side=True)
        except (OSError, ssl.SSLError):
            self.close_connection = True
            return
        emu._track(self.connection, False)
        self.request = self.connection = tls
        emu._track(tls, True)
        self.rfile = tls.makefile("rb")
        self.wfile = tls.makefile("wb")
        self.close_connection = False

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        target = self.path
        if "://" in target:  # a plain-HTTP proxy request names its host
            url = urlsplit(target)
            target = url.path + (f"?{url.query}" if url.query else "")
        headers = {k.lower(): v for k, v in self.headers.items()}
        wanted = {h: headers.get(h, "") for h in (TIMESTAMP_HEADER, ACCESS_KEY_HEADER, SIGNATURE_HEADER)}
        if JOB_TOKEN_HEADER.lower() in headers:
            wanted[JOB_TOKEN_HEADER] = headers[JOB_TOKEN_HEADER.lower()]
        headers = wanted
        try:
            status, payload = self.server.emulator._handle(self.command, target, headers, raw)
        except ConnectionAbortedError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(payload).encode()
        # send_response() without its Date (this process's clock): the emulator's, which dates its values.
        self.log_request(status)
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string(self.server.emulator.server_timestamp()))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = _serve
