"""What the local Alibaba Cloud emulators share: the RPC protocol (signature 1.0, HMAC-SHA1),
a threaded HTTP(S) server with proxy mode, fault injection, error answers, and
:class:`ProxyRouter`, one HTTPS proxy in front of several emulators.

:class:`~secretclient.testing.KmsEmulator` and :class:`~secretclient.testing.RdsEmulator` are
:class:`RpcEmulator` subclasses: each names its product, API version, error table and actions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import random
import secrets as _secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, quote, urlsplit

from secretclient.errors import InvalidParameter

__all__ = [
    "COMMON_ERRORS",
    "Faults",
    "ProxyRouter",
    "RpcEmulator",
    "RpcError",
    "missing",
    "sign",
    "string_to_sign",
]

_TIMESTAMP_SKEW = timedelta(minutes=15)

#: Code -> (HTTP status, message) of the errors the API gateway answers for every product.
COMMON_ERRORS: dict[str, tuple[int, str]] = {
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidSecurityToken.Malformed": (400, "Specified SecurityToken is malformed."),
    "InvalidSecurityToken.Mismatch": (400, "Specified SecurityToken mismatch with the AccessKey."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
}


class RpcError(Exception):
    """An error answer: code, HTTP status and message (status and message default to the
    common gateway errors, else 400 and the code)."""

    table: ClassVar[Mapping[str, tuple[int, str]]] = COMMON_ERRORS

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        known = self.table.get(code) or COMMON_ERRORS.get(code, (400, code))
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else known[0]
        self.message = message if message is not None else known[1]


def missing(param: str) -> RpcError:
    """The gateway's answer to a missing required parameter (``MissingSecretName``)."""
    return RpcError(f"Missing{param}", f"{param} is mandatory for this action.", 400)


def _percent(value: str) -> str:
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The RPC signature 1.0 string to sign (every parameter but ``Signature``)."""
    canonical = "&".join(
        f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    return f"{method.upper()}&%2F&{_percent(canonical)}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """The signature the service expects for ``params`` under ``secret``."""
    digest = hmac.new((secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Faults:
    """Fault injection and per-Action request counters; safe from many threads.

    Faults apply to every request, in this order: outage, throttling, error rate, latency.
    ``actions`` limits a fault to those Actions. Codes and statuses are the emulator's own
    (KMS answers throttling with ``Rejected.Throttling``/429, RDS with ``Throttling``/400).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = random.Random(seed)
        self._calls: Counter[str] = Counter()
        self._latency = 0.0
        self._latency_actions: frozenset[str] | None = None
        self._error_rate = 0.0
        self._error: tuple[str | None, int | None, str | None] = (None, None, None)
        self._error_actions: frozenset[str] | None = None
        self._outage: str | None = None
        self._rps: float | None = None
        self._recent: deque[float] = deque()

    # -- configuration -------------------------------------------------------------------

    def set_latency(self, seconds: float, *, actions: set[str] | None = None) -> None:
        """Delay every answer by ``seconds``."""
        if seconds < 0:
            raise InvalidParameter("latency must be >= 0 seconds")
        with self._lock:
            self._latency, self._latency_actions = float(seconds), frozenset(actions) if actions else None

    def set_error_rate(
        self,
        rate: float,
        *,
        code: str | None = None,
        status: int | None = None,
        message: str | None = None,
        seed: int | None = None,
        actions: set[str] | None = None,
    ) -> None:
        """Answer a fraction ``rate`` (0..1) of requests with error ``code`` (default: the
        service's internal error) and its documented status unless ``status`` is given."""
        if not 0.0 <= rate <= 1.0:
            raise InvalidParameter("error rate must be between 0 and 1")
        with self._lock:
            self._error_rate = float(rate)
            self._error = (code, status, message)
            self._error_actions = frozenset(actions) if actions else None
            if seed is not None:
                self._rng.seed(seed)

    def start_outage(self, mode: str = "error") -> None:
        """Fail every request: ``"error"`` answers the service's 503, ``"drop"`` closes the
        connection without an answer."""
        if mode not in ("error", "drop"):
            raise InvalidParameter("outage mode must be 'error' or 'drop'")
        with self._lock:
            self._outage = mode

    def stop_outage(self) -> None:
        """End the outage."""
        with self._lock:
            self._outage = None

    @contextlib.contextmanager
    def outage(self, mode: str = "error") -> Iterator[None]:
        """An outage for the duration of the ``with`` block."""
        self.start_outage(mode)
        try:
            yield
        finally:
            self.stop_outage()

    def throttle(self, requests_per_second: float | None) -> None:
        """Accept at most this many requests in any one-second window, answer the rest with the
        service's throttling error; ``None`` turns throttling off."""
        if requests_per_second is not None and requests_per_second <= 0:
            raise InvalidParameter("requests_per_second must be positive (or None)")
        with self._lock:
            self._rps = requests_per_second
            self._recent.clear()

    def clear(self) -> None:
        """Remove every fault (counters are kept)."""
        with self._lock:
            self._latency, self._latency_actions = 0.0, None
            self._error_rate, self._error_actions = 0.0, None
            self._outage, self._rps = None, None
            self._recent.clear()

    # -- counters ------------------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """Requests received per Action so far (a snapshot)."""
        with self._lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        """Zero the per-Action counters."""
        with self._lock:
            self._calls.clear()

    # -- used by the server ----------------------------------------------------------------

    def _admit(self, action: str, emu: RpcEmulator) -> tuple[str | None, RpcError | None, float]:
        """Count the request and decide: (outage mode, injected error, delay)."""
        with self._lock:
            self._calls[action] += 1
            delay = self._latency if self._latency_actions is None or action in self._latency_actions else 0.0
            if self._outage == "drop":
                return "drop", None, delay
            if self._outage == "error":
                return None, emu.error(emu.unavailable_code), delay
            if self._rps is not None:
                now = self._clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self._rps:
                    return None, emu.error(emu.throttling_code), delay
                self._recent.append(now)
            in_scope = self._error_actions is None or action in self._error_actions
            if self._error_rate and in_scope and self._rng.random() < self._error_rate:
                code, status, message = self._error
                code = code or emu.internal_code
                if status is None:  # the documented status; unknown codes are server errors
                    known = emu.error_class.table.get(code) or COMMON_ERRORS.get(code)
                    status = known[0] if known else 500
                return None, emu.error(code, message, status), delay
            return None, None, delay


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: _HttpService


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections end on their own
    server: _Server
    #: The emulator a CONNECT tunnel was opened to: it serves every request inside the tunnel.
    _tunnel: RpcEmulator | None = None

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
        pass  # request lines carry secret data in their query string: never log them

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
        emu = service.route(self.path.rsplit(":", 1)[0])
        if emu is None:
            self._refuse()
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
        service._track(self.connection, False)
        self.request = self.connection = tls
        service._track(tls, True)
        self.rfile = tls.makefile("rb")
        self.wfile = tls.makefile("wb")  # buffered: the handler flushes after each response
        self.close_connection = False
        self._tunnel = emu

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        # A plain-HTTP proxy request names its host in the URL ("POST http://rds.aliyuncs.com/?…").
        host = url.hostname or (self.headers.get("Host") or "").rsplit(":", 1)[0]
        emu = self._tunnel or self.server.service.route(host)
        if emu is None:
            self._refuse()
            return
        request_id = str(uuid.uuid4()).upper()
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if body and "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
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
            result = emu._dispatch(self.command, params)
            result["RequestId"] = request_id
            self._send(200, result, request_id)
        except RpcError as err:
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
            )

    def _send(self, status: int, payload: Mapping[str, Any], request_id: str) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", request_id)
        self.end_headers()
        self.wfile.write(data)


class _HttpService:
    """A threaded HTTP server on ``host:port`` (``port=0`` picks a free one) and its lifecycle."""

    https = False

    def __init__(self, host: str, port: int) -> None:
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._conns: set[Any] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def server_name(self) -> str:
        return type(self).__name__

    def route(self, hostname: str) -> RpcEmulator | None:
        """The emulator that serves a request for ``hostname`` (None: answer 502)."""
        raise NotImplementedError

    def _ssl_context(self) -> ssl.SSLContext:
        raise NotImplementedError

    def start(self) -> Self:
        """Start serving (in a daemon thread); a no-op when already started."""
        if self._server is not None:
            return self
        if self.https:
            self._ssl_context()
        server = _Server(self._bind, _Handler)
        server.service = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.server_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, and free the port."""
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise InvalidParameter(f"{self.server_name} is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return self._bind[0]

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


class RpcEmulator(_HttpService):
    """Base of the local endpoints: HTTP(S) on ``host:port`` (``port=0`` picks a free one),
    signature checks, fault injection, proxy mode and lifecycle.

    Subclasses set :attr:`product` (``"Kms"``), :attr:`endpoint_product` (the SDK's product
    code, ``"kms"``), :attr:`api_version` and :attr:`error_class` (whose ``table`` holds the
    documented statuses and messages), and implement :meth:`_actions` and :meth:`tls_hostnames`.
    """

    product: ClassVar[str] = ""
    endpoint_product: ClassVar[str] = ""
    api_version: ClassVar[str] = ""
    error_class: ClassVar[type[RpcError]] = RpcError
    #: The codes the fault injector answers with.
    internal_code: ClassVar[str] = "InternalError"
    unavailable_code: ClassVar[str] = "ServiceUnavailable"
    throttling_code: ClassVar[str] = "Throttling"

    def __init__(
        self,
        access_keys: Mapping[str, str] | None = None,
        https: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "cn-hangzhou",
        *,
        security_tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        faults: Faults | None = None,
    ) -> None:
        if access_keys is None:
            access_keys = {"LTAI" + _secrets.token_hex(10): _secrets.token_urlsafe(24)}
        if not access_keys:
            raise InvalidParameter(f"{type(self).__name__} needs at least one access key")
        super().__init__(host, port)
        self._keys: dict[str, str] = dict(access_keys)
        self._tokens: dict[str, str] = dict(security_tokens or {})
        self.https = https
        self.region = region
        self._clock = clock
        self.faults = faults if faults is not None else Faults(seed=seed)
        self._nonces: dict[str, float] = {}
        self._tmpdir: str | None = None
        self._certs: Any = None
        self._ctx: ssl.SSLContext | None = None

    # -- what subclasses define ----------------------------------------------------------

    def _actions(self) -> Mapping[str, Callable[[Mapping[str, str]], dict[str, Any]]]:
        """Action name -> handler of the request parameters, returning the answer's JSON."""
        raise NotImplementedError

    def tls_hostnames(self) -> tuple[str, ...]:
        """Host names the TLS certificate names (beside ``localhost`` and ``127.0.0.1``)."""
        return ()

    def answers_host(self, hostname: str) -> bool:
        """Whether this emulator stands in for ``hostname`` (:class:`ProxyRouter` routes by it)."""
        name = hostname.lower()
        for pattern in self.tls_hostnames():
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return True
            if name == pattern:
                return True
        return False

    def _invoke(self, handler: Callable[[Mapping[str, str]], dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
        """Run an action's handler (subclasses translate their own exceptions here)."""
        return handler(params)

    def error(self, code: str, message: str | None = None, status: int | None = None) -> RpcError:
        """An error answer with this service's status and message for ``code``."""
        return self.error_class(code, message, status)

    @property
    def server_name(self) -> str:
        return f"{self.product}Emulator"

    def route(self, hostname: str) -> RpcEmulator | None:
        return self  # alone, it answers for every host (proxy mode)

    def stop(self) -> None:
        """Stop serving, drop open connections, and free the port."""
        super().stop()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir, self._certs, self._ctx = None, None, None

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"{type(self).__name__}({state}, region={self.region!r})"

    # -- addresses and credentials -------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host_port}"

    @property
    def access_key_id(self) -> str:
        return next(iter(self._keys))

    @property
    def access_key_secret(self) -> str:
        return self._keys[self.access_key_id]

    def add_access_key(self, key_id: str, secret: str, security_token: str | None = None) -> None:
        """Accept another AccessKey pair; with ``security_token`` it behaves as an STS key."""
        with self._lock:
            self._keys[key_id] = secret
            if security_token is not None:
                self._tokens[key_id] = security_token

    @property
    def calls(self) -> Counter[str]:
        """Requests received per Action (``emu.calls["DescribeAccounts"]``)."""
        return self.faults.calls

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the emulator's TLS certificate (made on first use)."""
        self._ssl_context()
        return Path(self._certs.ca_file)

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ctx is None:
                from secretclient.testing.certs import make_certificates

                self._tmpdir = tempfile.mkdtemp(prefix=f"{self.product.lower()}-emulator-")
                names = ("localhost", *self.tls_hostnames())
                ips = ("127.0.0.1",) if self.host in ("127.0.0.1", "0.0.0.0", "localhost") else ("127.0.0.1", self.host)
                self._certs = make_certificates(self._tmpdir, hostnames=names, ips=ips)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self._certs.cert_file, self._certs.key_file)
                self._ctx = ctx
            return self._ctx

    def acs_client(self, **kw: Any) -> Any:
        """An ``aliyunsdkcore.client.AcsClient`` whose endpoint for this product is this emulator.

        Requests built from the SDK's request classes work unchanged (the endpoint's scheme
        wins over their default HTTPS).
        """
        from aliyunsdkcore.client import AcsClient

        options: dict[str, Any] = {
            "ak": self.access_key_id,
            "secret": self.access_key_secret,
            "region_id": self.region,
            "proxy": {"all": None},  # never send loopback traffic through HTTP(S)_PROXY
        }
        if self.https:
            options["verify"] = str(self.ca_file)
        options.update(kw)
        client = AcsClient(**options)
        client.add_endpoint(self.region, self.endpoint_product, self.endpoint)
        return client

    # -- request handling ----------------------------------------------------------------

    def _authenticate(self, method: str, params: Mapping[str, str]) -> None:
        key_id = params.get("AccessKeyId")
        signature = params.get("Signature")
        if not key_id or not signature or params.get("SignatureMethod") != "HMAC-SHA1" or params.get(
            "SignatureVersion"
        ) != "1.0":
            raise self.error("IncompleteSignature")
        with self._lock:
            secret = self._keys.get(key_id)
            token = self._tokens.get(key_id)
        if secret is None:
            raise self.error("InvalidAccessKeyId.NotFound")
        if token is not None:
            given = params.get("SecurityToken")
            if not given:
                raise self.error("InvalidSecurityToken.Malformed")
            if not hmac.compare_digest(given, token):
                raise self.error("InvalidSecurityToken.Mismatch")
        expected = sign(method, params, secret)
        if not hmac.compare_digest(expected, signature):
            # The SDK splits this message at ':' and compares the rest with its own string to sign.
            raise self.error(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
                400,
            )
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise self.error("InvalidTimeStamp.Format") from None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if abs(now - stamp) > _TIMESTAMP_SKEW:
            raise self.error("InvalidTimeStamp.Expired")
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise missing("SignatureNonce")
        with self._lock:
            horizon = self._clock() - 2 * _TIMESTAMP_SKEW.total_seconds()
            if len(self._nonces) > 10000:
                self._nonces = {n: t for n, t in self._nonces.items() if t > horizon}
            if nonce in self._nonces:
                raise self.error("SignatureNonceUsed")
            self._nonces[nonce] = self._clock()

    def _dispatch(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        action = params.get("Action")
        if not action:
            raise missing("Action")
        handler = self._actions().get(action)
        if handler is None:
            raise self.error("InvalidAction.NotFound")
        if params.get("Version") != self.api_version:
            raise self.error("InvalidVersion")
        self._authenticate(method, params)
        return self._invoke(handler, params)

    @staticmethod
    def _require(params: Mapping[str, str], *names: str) -> list[str]:
        values = []
        for name in names:
            value = params.get(name)
            if value is None or value == "":
                raise missing(name)
            values.append(value)
        return values


class ProxyRouter(_HttpService):
    """One HTTP proxy in front of several emulators, for code that hard-codes service host names.

    Set ``HTTPS_PROXY`` and ``HTTP_PROXY`` to :attr:`proxy_url` and ``ALIBABA_CLOUD_CA_BUNDLE``
    to :attr:`ca_file` (the emulators' CAs in one bundle). A ``CONNECT host:443`` tunnel, or a
    plain-HTTP request for ``http://host/…``, is served by the emulator whose
    :meth:`RpcEmulator.answers_host` accepts the host (``kms-vpc.<region>.aliyuncs.com``: the
    KMS emulator; ``rds.aliyuncs.com``: the RDS one), in this process, over the emulator's own
    TLS certificate. Other hosts get ``502``: nothing ever leaves the machine.
    """

    def __init__(self, *emulators: RpcEmulator, host: str = "127.0.0.1", port: int = 0) -> None:
        if not emulators:
            raise InvalidParameter("ProxyRouter needs at least one emulator")
        super().__init__(host, port)
        self.emulators = emulators
        self._tmpdir: str | None = None

    def __repr__(self) -> str:
        state = self.proxy_url if self._server is not None else "stopped"
        return f"ProxyRouter({state}, {len(self.emulators)} emulators)"

    @property
    def ca_file(self) -> Path:
        """A CA bundle holding every emulator's CA."""
        with self._lock:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="proxy-router-")
                bundle = Path(self._tmpdir) / "ca-bundle.pem"
                bundle.write_text("".join(Path(e.ca_file).read_text() for e in self.emulators))
            return Path(self._tmpdir) / "ca-bundle.pem"

    def route(self, hostname: str) -> RpcEmulator | None:
        """The emulator that answers ``hostname``, if any."""
        return next((e for e in self.emulators if e.answers_host(hostname)), None)

    def stop(self) -> None:
        super().stop()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
