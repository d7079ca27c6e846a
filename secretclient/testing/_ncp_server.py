"""The request handler of :class:`~secretclient.testing.NcpEmulator` (NCP's REST API); the server
under it, TLS and proxy mode (``CONNECT`` to NCP's hosts answered here, never forwarded) are
:mod:`._http`'s."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from secretclient.stores._ncp_http import ACCESS_KEY_HEADER, JOB_TOKEN_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from secretclient.testing._http import ServiceHandler

if TYPE_CHECKING:
    from secretclient.testing.ncp_emulator import NcpEmulator

__all__ = ["NCP_HOSTS", "NcpHandler"]

#: The hosts proxy mode answers for (and the TLS certificate names).
NCP_HOSTS = ("secretmanager.apigw.ntruss.com", "ocapi-kr.ncloud.com", "ocapi-jp.ncloud.com")


class NcpHandler(ServiceHandler):
    """NCP's REST requests, answered by the :class:`NcpEmulator` that serves them."""

    @property
    def _emulator(self) -> NcpEmulator:
        return cast("NcpEmulator", self.server.service)

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
            status, payload = self._emulator._handle(self.command, target, headers, raw)
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
        self.send_header("Date", self.date_time_string(self._emulator.server_timestamp()))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = _serve
