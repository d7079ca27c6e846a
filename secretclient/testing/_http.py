"""The threaded HTTP(S) server under every local emulator (KMS, RDS, NCP, the proxy router):
lifecycle, TLS, connection tracking, CONNECT tunnels (proxy mode); and the Alibaba Cloud RPC
handler: fault admission, JSON answers in the gateway's error shape."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, cast
from urllib.parse import parse_qsl, urlsplit

from secretclient.errors import InvalidParameter

from ._lifecycle import StartStop
from ._rpc_errors import RpcError
from ._signing import Incoming

if TYPE_CHECKING:
    from .certs import TestCertificates
    from .rpc_server import RpcEmulator

__all__ = ["MAX_BODY", "HttpService", "RpcHandler", "ServiceHandler", "TlsEndpoint"]

#: Largest request body read (a 30,720-byte secret, base64-encoded, fits many times over).
MAX_BODY = 1 << 20


class TlsEndpoint(Protocol):
    """What a CONNECT tunnel is opened to: something with a server-side TLS context."""

    def _ssl_context(self) -> ssl.SSLContext: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: HttpService

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that left before its answer (reset, broken pipe, TLS cut) is no server
        # error: no traceback on stderr for it.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class ServiceHandler(BaseHTTPRequestHandler):
    """What every emulator's request handler does: TCP_NODELAY, TLS when the service serves
    HTTPS, connection tracking (so stop() can cut them), nothing logged, and proxy mode's
    ``CONNECT`` answered here, over the TLS of the endpoint :meth:`HttpService.route` names."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections end on their own
    server: _Server
    #: The endpoint a CONNECT tunnel was opened to: it serves every request inside the tunnel.
    _tunnel: TlsEndpoint | None = None

    def version_string(self) -> str:
        return self.server.service.server_name

    def setup(self) -> None:
        service = self.server.service
        # Headers and body go out in separate writes: without NODELAY each answer waits
        # for the client's delayed ACK (~40 ms).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if service.https:
            self.request.settimeout(10)
            try:
                self.request = service._ssl_context().wrap_socket(self.request, server_side=True)
            except (OSError, ssl.SSLError):
                self.request.close()
                raise
        super().setup()
        service._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.service._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines and bodies carry secret data: never log them

    def _refuse(self) -> None:
        """502 for a host no emulator here stands in for: nothing is ever forwarded."""
        self.send_response(502, "Bad Gateway")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def do_CONNECT(self) -> None:
        """Proxy mode: pretend to open a tunnel to the host, then serve its API over TLS ourselves."""
        service = self.server.service
        endpoint = service.route(self.path.rsplit(":", 1)[0])
        if endpoint is None:
            self._refuse()
            return
        self.send_response(200, "Connection Established")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        try:
            tls = endpoint._ssl_context().wrap_socket(self.connection, server_side=True)
        except (OSError, ssl.SSLError):
            self.close_connection = True
            return
        service._track(self.connection, False)
        self.request = self.connection = tls
        service._track(tls, True)
        self.rfile = tls.makefile("rb")
        self.wfile = tls.makefile("wb")  # buffered: the handler flushes after each response
        self.close_connection = False
        self._tunnel = endpoint


class RpcHandler(ServiceHandler):
    """Alibaba Cloud RPC requests (query or form parameters) answered by the routed :class:`RpcEmulator`."""

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        # A plain-HTTP proxy request names its host in the URL ("POST http://rds.aliyuncs.com/?…").
        host = url.hostname or (self.headers.get("Host") or "").rsplit(":", 1)[0]
        emu = cast("RpcEmulator | None", self._tunnel or self.server.service.route(host))
        if emu is None:
            self._refuse()
            return
        request_id = str(uuid.uuid4()).upper()
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if not raw_length.isascii() or not raw_length.isdigit():
            self.close_connection = True  # the next request's start is unknown
            self._answer(emu, host, request_id, RpcError("InvalidContentLength", "Content-Length is not valid.", 400))
            return
        if int(raw_length) > MAX_BODY:
            # Refused before reading: a client announcing 40 GB gets no 40 GB buffer.
            self.close_connection = True
            self._answer(emu, host, request_id, RpcError(
                "RequestEntityTooLarge", f"The request body is larger than {MAX_BODY} bytes.", 413))
            return
        body = self.rfile.read(int(raw_length)) if int(raw_length) else b""
        query = tuple(parse_qsl(url.query, keep_blank_values=True))
        params = dict(query)
        if body and "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        incoming = Incoming(self.command, url.path or "/", params, headers, query, body)
        action = emu.action_of(incoming)
        drop, injected, delay = emu.faults._admit(action or "?", emu)
        if delay:
            time.sleep(delay)
        if drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            if injected is not None:
                raise injected
            result = emu._dispatch(incoming)
        except RpcError as err:
            self._answer(emu, host, request_id, err)
            return
        except Exception:
            self._answer(emu, host, request_id, emu.error(emu.internal_code))
            return
        result["RequestId"] = request_id
        self._send(200, result, request_id, emu)

    def _answer(self, emu: RpcEmulator, host: str, request_id: str, err: RpcError) -> None:
        """An error in the gateway's JSON shape."""
        self._send(
            err.status,
            {
                "RequestId": request_id,
                "HostId": host or emu.host,
                "Code": err.code,
                "Message": err.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product={emu.product}&requestId={request_id}",
            },
            request_id,
            emu,
        )

    def _send(self, status: int, payload: Mapping[str, Any], request_id: str, emu: RpcEmulator) -> None:
        data = json.dumps(payload).encode()
        # send_response() without its Date (this process's clock): the emulator's time instead,
        # the clock that stamps its versions, as a real service's Date does.
        self.log_request(status)
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string(emu.server_timestamp()))
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class HttpService(StartStop):
    """A threaded HTTP server on ``host:port`` (``port=0`` picks a free one) and its lifecycle.

    Subclasses set :attr:`handler_class` and implement :meth:`route`; with ``https`` (or as a
    proxy-mode tunnel's end) it serves a throwaway certificate for ``localhost``, 127.0.0.1 and
    :meth:`tls_hostnames`, made on first use and deleted by :meth:`stop`.
    """

    https = False
    handler_class: ClassVar[type[ServiceHandler]]

    def __init__(self, host: str, port: int) -> None:
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._conns: set[Any] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._certs: TestCertificates | None = None
        self._ctx: ssl.SSLContext | None = None

    @property
    def server_name(self) -> str:
        return type(self).__name__

    def route(self, hostname: str) -> TlsEndpoint | None:
        """The endpoint that serves a request for ``hostname`` (None: answer 502)."""
        raise NotImplementedError

    def tls_hostnames(self) -> tuple[str, ...]:
        """Host names the TLS certificate names (beside ``localhost`` and ``127.0.0.1``)."""
        return ()

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the TLS certificate (made on first use)."""
        self._ssl_context()
        assert self._certs is not None
        return Path(self._certs.ca_file)

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ctx is None or self._certs is None:
                from secretclient.testing.certs import make_certificates

                self._tmpdir = tempfile.mkdtemp(prefix=f"{self.server_name.lower()}-")
                names = ("localhost", *self.tls_hostnames())
                ips = ("127.0.0.1",) if self.host in ("127.0.0.1", "0.0.0.0", "localhost") else ("127.0.0.1", self.host)
                self._certs = make_certificates(self._tmpdir, hostnames=names, ips=ips)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self._certs.cert_file, self._certs.key_file)
                self._ctx = ctx
            return self._ctx

    def start(self) -> Self:
        """Start serving (in a daemon thread); a no-op when already started."""
        if self._server is not None:
            return self
        if self.https:
            self._ssl_context()
        server = _Server(self._bind, self.handler_class)
        server.service = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.server_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, free the port and delete the certificates."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            with self._lock:
                conns = list(self._conns)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(5)
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir, self._certs, self._ctx = None, None, None

    @property
    def _has_started(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise InvalidParameter(f"{self.server_name} is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return self._bind[0]

    @property
    def endpoint(self) -> str:
        """``http(s)://host:port``."""
        return f"{'https' if self.https else 'http'}://{self.host_port}"

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def proxy_url(self) -> str:
        """``http://host:port``: set as ``HTTPS_PROXY`` (and ``HTTP_PROXY``) to be reached under
        the services' own host names."""
        return f"http://{self.host_port}"

    def _track(self, conn: Any, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)
