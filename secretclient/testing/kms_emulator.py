"""A local Alibaba Cloud KMS Secrets Manager: a real HTTP(S) server speaking the KMS RPC API.

It checks request signatures (version 1.0, HMAC-SHA1) like KMS, answers with the JSON
shapes, codes and HTTP statuses of KMS, and keeps the secrets in an
:class:`~secretclient.stores.embedded.EmbeddedStore`. Code written for the real service with
the official SDK runs against it with only the endpoint changed.

    with KmsEmulator() as kms:
        store = kms.store()                 # an AliyunKmsStore pointed at it
        client = kms.acs_client()           # a plain aliyunsdkcore AcsClient
        kms.faults.set_latency(0.05)
        with kms.faults.outage(): ...
        kms.calls["GetSecretValue"]

It can also act as an HTTP proxy (``HTTPS_PROXY=http://127.0.0.1:PORT``) that answers every
KMS host itself, so unmodified code that insists on ``kms-vpc.<region>.aliyuncs.com`` over
HTTPS reaches it (trust :attr:`KmsEmulator.ca_file` via ``ALIBABA_CLOUD_CA_BUNDLE``).

From a shell: ``python -m secretclient.testing.kms_emulator --port 8100 [--https] [--db FILE]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import random
import secrets as _secrets
import shutil
import signal
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
from typing import Any, Self
from urllib.parse import parse_qsl, quote, urlsplit

from secretclient.errors import (
    AccessDenied,
    InvalidParameter,
    LimitExceeded,
    SecretClientError,
    SecretNotFound,
    VersionConflict,
)
from secretclient.model import CURRENT, PREVIOUS, PasswordPolicy
from secretclient.stores.embedded import EmbeddedStore

__all__ = ["ACCOUNT_ID", "Faults", "KmsEmulator", "KmsError", "main"]

API_VERSION = "2016-01-20"
#: The account id in the ARNs the emulator hands out.
ACCOUNT_ID = "1234567890123456"
_TIMESTAMP_SKEW = timedelta(minutes=15)

# Code -> (HTTP status, message) as KMS documents them.
_KMS_ERRORS: dict[str, tuple[int, str]] = {
    "InvalidParameter": (400, "The specified parameter is invalid."),
    "Rejected.LimitExceeded": (400, "The secret quota is exceeded."),
    "Forbidden.NoPermission": (403, "You are not authorized to perform the operation."),
    "Forbidden.ResourceNotFound": (404, "The resource is not found."),
    "Rejected.ResourceExist": (409, "The resource already exists."),
    "Rejected.ResourceInDeleteWindow": (409, "The secret is planned to be deleted."),
    "Rejected.Throttling": (429, "The QPS upper limit is exceeded."),
    "InternalFailure": (500, "An internal error occurred."),
    "ServiceUnavailableTemporary": (503, "Service Unavailable Temporary"),
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
# Our error classes -> the KMS code to use when the store left ``code`` empty.
_DEFAULT_CODES: tuple[tuple[type[SecretClientError], str], ...] = (
    (SecretNotFound, "Forbidden.ResourceNotFound"),
    (VersionConflict, "Rejected.ResourceExist"),
    (LimitExceeded, "Rejected.LimitExceeded"),
    (InvalidParameter, "InvalidParameter"),
    (AccessDenied, "Forbidden.NoPermission"),
)


class KmsError(Exception):
    """An error answer: KMS code, HTTP status and message."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None) -> None:
        known = _KMS_ERRORS.get(code, (400, code))
        super().__init__(code)
        self.code = code
        self.status = status if status is not None else known[0]
        self.message = message if message is not None else known[1]


def _missing(param: str) -> KmsError:
    return KmsError(f"Missing{param}", f"{param} is mandatory for this action.", 400)


def _from_store_error(err: SecretClientError) -> KmsError:
    code = err.code
    if not code:
        code = next((c for cls, c in _DEFAULT_CODES if isinstance(err, cls)), "InternalFailure")
    status, generic = _KMS_ERRORS.get(code, (err.http_status or 400, err.message))
    # KMS's own words for known codes; the store's (value-free) message for parameter errors.
    message = err.message if code == "InvalidParameter" or code not in _KMS_ERRORS else generic
    return KmsError(code, message, status)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _percent(value: str) -> str:
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The RPC signature 1.0 string to sign (every parameter but ``Signature``)."""
    canonical = "&".join(
        f"{_percent(k)}={_percent(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    return f"{method.upper()}&%2F&{_percent(canonical)}"


def sign(method: str, params: Mapping[str, str], secret: str) -> str:
    """The signature KMS expects for ``params`` under ``secret``."""
    digest = hmac.new((secret + "&").encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise KmsError("InvalidParameter", f"The specified parameter {name} is not valid.")


def _interval(raw: str) -> timedelta:
    text = raw.strip()
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}.get(text[-1:].lower()) if text else None
    number = text[:-1] if unit else text
    if not number.isdigit():
        raise KmsError("InvalidParameter", "The specified parameter RotationInterval is not valid.")
    return timedelta(seconds=int(number) * (unit or 1))


def _parse_stages(raw: str) -> list[str]:
    """``["ACSPending"]`` (what the SDK users send), ``{"VersionStage": [...]}`` or one label."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    if isinstance(value, dict):
        value = value.get("VersionStage", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise KmsError("InvalidParameter", "The specified parameter VersionStages is not valid.")
    return value


class Faults:
    """Fault injection and per-Action request counters; safe from many threads.

    Faults apply to every request, in this order: outage, throttling, error rate, latency.
    ``actions`` limits a fault to those KMS Actions.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = random.Random(seed)
        self._calls: Counter[str] = Counter()
        self._latency = 0.0
        self._latency_actions: frozenset[str] | None = None
        self._error_rate = 0.0
        self._error: tuple[str, int, str | None] = ("InternalFailure", 500, None)
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
        code: str = "InternalFailure",
        status: int | None = None,
        message: str | None = None,
        seed: int | None = None,
        actions: set[str] | None = None,
    ) -> None:
        """Answer a fraction ``rate`` (0..1) of requests with error ``code`` (KMS status by default)."""
        if not 0.0 <= rate <= 1.0:
            raise InvalidParameter("error rate must be between 0 and 1")
        known = _KMS_ERRORS.get(code, (500, code))
        with self._lock:
            self._error_rate = float(rate)
            self._error = (code, status if status is not None else known[0], message)
            self._error_actions = frozenset(actions) if actions else None
            if seed is not None:
                self._rng.seed(seed)

    def start_outage(self, mode: str = "error") -> None:
        """Fail every request: ``"error"`` answers 503 ServiceUnavailableTemporary, ``"drop"``
        closes the connection without an answer."""
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
        """Accept at most this many requests in any one-second window, answer the rest
        ``Rejected.Throttling`` (HTTP 429); ``None`` turns throttling off."""
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

    def _admit(self, action: str) -> tuple[str | None, KmsError | None, float]:
        """Count the request and decide: (outage mode, injected error, delay)."""
        with self._lock:
            self._calls[action] += 1
            delay = self._latency if self._latency_actions is None or action in self._latency_actions else 0.0
            if self._outage == "drop":
                return "drop", None, delay
            if self._outage == "error":
                return None, KmsError("ServiceUnavailableTemporary"), delay
            if self._rps is not None:
                now = self._clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self._rps:
                    return None, KmsError("Rejected.Throttling"), delay
                self._recent.append(now)
            in_scope = self._error_actions is None or action in self._error_actions
            if self._error_rate and in_scope and self._rng.random() < self._error_rate:
                code, status, message = self._error
                return None, KmsError(code, message, status), delay
            return None, None, delay


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: KmsEmulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KmsEmulator"
    sys_version = ""
    timeout = 30  # idle keep-alive connections end on their own
    server: _Server

    def setup(self) -> None:
        emu = self.server.emulator
        # Headers and body go out in separate writes: without NODELAY each answer waits
        # for the client's delayed ACK (~40 ms).
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
        pass  # request lines carry secret data in their query string: never log them

    def do_CONNECT(self) -> None:
        """Proxy mode: pretend to open a tunnel to any host, then serve KMS over TLS ourselves."""
        emu = self.server.emulator
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
        self.wfile = tls.makefile("wb")  # buffered: the handler flushes after each response
        self.close_connection = False

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        emu = self.server.emulator
        request_id = str(uuid.uuid4()).upper()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        if body and "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action", "")
        drop, injected, delay = emu.faults._admit(action or "?")
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
        except KmsError as err:
            host = (self.headers.get("Host") or emu.host_port).split(":")[0]
            self._send(
                err.status,
                {
                    "RequestId": request_id,
                    "HostId": host,
                    "Code": err.code,
                    "Message": err.message,
                    "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Kms&requestId={request_id}",
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


class KmsEmulator:
    """A local KMS Secrets Manager endpoint on ``host:port`` (``port=0`` picks a free one).

    :param store: the EmbeddedStore holding the secrets (default: a private ``:memory:`` one).
    :param access_keys: AccessKey id -> secret accepted (default: one random pair, see
        :attr:`access_key_id` / :attr:`access_key_secret`).
    :param security_tokens: AccessKey id -> the STS token requests with that key must carry.
    :param https: serve HTTPS with a throwaway CA (:attr:`ca_file`).
    :param clock: wall clock for request timestamps (``time.time``).
    :param seed: seed of the fault-injection RNG.
    :param faults: a :class:`Faults` to use (e.g. one with an injected clock).
    """

    def __init__(
        self,
        store: EmbeddedStore | None = None,
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
        self._own_store = store is None
        self.backing_store: EmbeddedStore = store if store is not None else EmbeddedStore(":memory:")
        if access_keys is None:
            access_keys = {"LTAI" + _secrets.token_hex(10): _secrets.token_urlsafe(24)}
        if not access_keys:
            raise InvalidParameter("KmsEmulator needs at least one access key")
        self._keys: dict[str, str] = dict(access_keys)
        self._tokens: dict[str, str] = dict(security_tokens or {})
        self.https = https
        self.region = region
        self._bind = (host, port)
        self._clock = clock
        self.faults = faults if faults is not None else Faults(seed=seed)
        self._lock = threading.Lock()
        self._nonces: dict[str, float] = {}
        self._conns: set[Any] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._certs: Any = None
        self._ctx: ssl.SSLContext | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        if self.https:
            self._ssl_context()
        server = _Server(self._bind, _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kms-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, and free the port (and the own store)."""
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
        if self._own_store:
            self.backing_store.close()
            self._own_store = False
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir, self._certs, self._ctx = None, None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"KmsEmulator({state}, region={self.region!r})"

    # -- addresses and credentials -------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise InvalidParameter("the KMS emulator is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return self._bind[0]

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.host_port}"

    @property
    def proxy_url(self) -> str:
        """``http://host:port``: set as ``HTTPS_PROXY`` to reach the emulator under KMS host names."""
        return f"http://{self.host_port}"

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
        """Requests received per Action (``emu.calls["GetSecretValue"]``)."""
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

                self._tmpdir = tempfile.mkdtemp(prefix="kms-emulator-")
                names = (
                    "localhost",
                    f"kms.{self.region}.aliyuncs.com",
                    f"kms-vpc.{self.region}.aliyuncs.com",
                    "*.cryptoservice.kms.aliyuncs.com",
                )
                ips = ("127.0.0.1",) if self.host in ("127.0.0.1", "0.0.0.0", "localhost") else ("127.0.0.1", self.host)
                self._certs = make_certificates(self._tmpdir, hostnames=names, ips=ips)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(self._certs.cert_file, self._certs.key_file)
                self._ctx = ctx
            return self._ctx

    def _track(self, conn: Any, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- clients configured for this emulator --------------------------------------------

    def store(self, **kw: Any) -> Any:
        """An :class:`~secretclient.stores.aliyun.AliyunKmsStore` pointed at this emulator."""
        from secretclient.stores.aliyun import AliyunKmsStore

        options: dict[str, Any] = {
            "region": self.region,
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "proxy": False,
        }
        token = self._tokens.get(self.access_key_id)
        if token:
            options["security_token"] = token
        if self.https:
            options["verify"] = str(self.ca_file)
        options.update(kw)
        return AliyunKmsStore(**options)

    def acs_client(self, **kw: Any) -> Any:
        """An ``aliyunsdkcore.client.AcsClient`` whose ``kms`` endpoint is this emulator.

        Requests built from ``aliyunsdkkms`` classes work unchanged (the endpoint's scheme
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
        client.add_endpoint(self.region, "kms", self.endpoint)
        return client

    # -- request handling ----------------------------------------------------------------

    def _authenticate(self, method: str, params: Mapping[str, str]) -> None:
        key_id = params.get("AccessKeyId")
        signature = params.get("Signature")
        if not key_id or not signature or params.get("SignatureMethod") != "HMAC-SHA1" or params.get(
            "SignatureVersion"
        ) != "1.0":
            raise KmsError("IncompleteSignature")
        with self._lock:
            secret = self._keys.get(key_id)
            token = self._tokens.get(key_id)
        if secret is None:
            raise KmsError("InvalidAccessKeyId.NotFound")
        if token is not None:
            given = params.get("SecurityToken")
            if not given:
                raise KmsError("InvalidSecurityToken.Malformed")
            if not hmac.compare_digest(given, token):
                raise KmsError("InvalidSecurityToken.Mismatch")
        expected = sign(method, params, secret)
        if not hmac.compare_digest(expected, signature):
            # The SDK splits this message at ':' and compares the rest with its own string to sign.
            raise KmsError(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
                400,
            )
        try:
            stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise KmsError("InvalidTimeStamp.Format") from None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if abs(now - stamp) > _TIMESTAMP_SKEW:
            raise KmsError("InvalidTimeStamp.Expired")
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise _missing("SignatureNonce")
        with self._lock:
            horizon = self._clock() - 2 * _TIMESTAMP_SKEW.total_seconds()
            if len(self._nonces) > 10000:
                self._nonces = {n: t for n, t in self._nonces.items() if t > horizon}
            if nonce in self._nonces:
                raise KmsError("SignatureNonceUsed")
            self._nonces[nonce] = self._clock()

    def _dispatch(self, method: str, params: Mapping[str, str]) -> dict[str, Any]:
        action = params.get("Action")
        if not action:
            raise _missing("Action")
        handler = _ACTIONS.get(action)
        if handler is None:
            raise KmsError("InvalidAction.NotFound")
        if params.get("Version") != API_VERSION:
            raise KmsError("InvalidVersion")
        self._authenticate(method, params)
        try:
            return handler(self, params)
        except SecretClientError as err:
            raise _from_store_error(err) from None

    def _arn(self, name: str) -> str:
        return f"acs:kms:{self.region}:{ACCOUNT_ID}:secret/{name}"

    @staticmethod
    def _require(params: Mapping[str, str], *names: str) -> list[str]:
        values = []
        for name in names:
            value = params.get(name)
            if value is None or value == "":
                raise _missing(name)
            values.append(value)
        return values

    @staticmethod
    def _data(params: Mapping[str, str]) -> str | bytes:
        data = params.get("SecretData")
        if data is None or data == "":
            raise _missing("SecretData")
        kind = params.get("SecretDataType") or "text"
        if kind == "text":
            return data
        if kind == "binary":
            try:
                return base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise KmsError("InvalidParameter", "The specified parameter SecretData is not valid base64.") from None
        raise KmsError("InvalidParameter", "The specified parameter SecretDataType is not valid.")

    def _rotation_fields(self, name: str) -> dict[str, Any]:
        info = self.backing_store.describe(name)
        out: dict[str, Any] = {"AutomaticRotation": "Enabled" if info.automatic_rotation else "Disabled"}
        if info.automatic_rotation and info.rotation_interval:
            out["RotationInterval"] = f"{int(info.rotation_interval.total_seconds())}s"
            if info.last_rotation:
                out["LastRotationDate"] = _iso(info.last_rotation)
            if info.next_rotation:
                out["NextRotationDate"] = _iso(info.next_rotation)
        return out

    def _get_secret_value(self, params: Mapping[str, str]) -> dict[str, Any]:
        (name,) = self._require(params, "SecretName")
        secret = self.backing_store.get_secret(
            name, stage=params.get("VersionStage") or None, version_id=params.get("VersionId") or None
        )
        binary = isinstance(secret.data, bytes)
        out: dict[str, Any] = {
            "SecretName": secret.name,
            "VersionId": secret.version_id,
            "CreateTime": _iso(secret.created),
            "SecretData": base64.b64encode(secret.data).decode() if isinstance(secret.data, bytes) else secret.data,
            "SecretDataType": "binary" if binary else "text",
            "VersionStages": {"VersionStage": sorted(secret.stages)},
            "SecretType": secret.secret_type,
        }
        out.update(self._rotation_fields(name))
        if _flag(params, "FetchExtendedConfig", False) and secret.extended_config is not None:
            out["ExtendedConfig"] = json.dumps(dict(secret.extended_config))
        return out

    def _put_secret_value(self, params: Mapping[str, str]) -> dict[str, Any]:
        name, version_id = self._require(params, "SecretName", "VersionId")
        data = self._data(params)
        raw_stages = params.get("VersionStages")
        stages = _parse_stages(raw_stages) if raw_stages else None
        info = self.backing_store.put_secret(name, version_id, data, stages=stages)
        return {
            "SecretName": name,
            "VersionId": info.version_id,
            "VersionStages": {"VersionStage": sorted(info.stages)},
        }

    def _update_secret_version_stage(self, params: Mapping[str, str]) -> dict[str, Any]:
        name, stage = self._require(params, "SecretName", "VersionStage")
        move_to = params.get("MoveToVersion") or None
        remove_from = params.get("RemoveFromVersion") or None
        if move_to is None and remove_from is None:
            raise KmsError("InvalidParameter", "At least one of MoveToVersion and RemoveFromVersion is required.")
        if stage in (CURRENT, PREVIOUS) and move_to is None:
            raise KmsError("InvalidParameter", f"MoveToVersion is required when VersionStage is {stage}.")
        self.backing_store.update_stage(name, stage, move_to=move_to, remove_from=remove_from)
        return {"SecretName": name}

    def _list_secret_version_ids(self, params: Mapping[str, str]) -> dict[str, Any]:
        (name,) = self._require(params, "SecretName")
        try:
            page = int(params.get("PageNumber") or 1)
            size = int(params.get("PageSize") or 10)
        except ValueError:
            raise KmsError("InvalidParameter", "The specified parameter PageNumber or PageSize is not valid.") from None
        if page < 1 or not 1 <= size <= 100:
            raise KmsError("InvalidParameter", "The specified parameter PageNumber or PageSize is not valid.")
        versions = self.backing_store.list_versions(
            name, include_deprecated=_flag(params, "IncludeDeprecated", False)
        )
        chunk = versions[(page - 1) * size : page * size]
        return {
            "SecretName": name,
            "PageNumber": page,
            "PageSize": size,
            "TotalCount": len(versions),
            "VersionIds": {
                "VersionId": [
                    {
                        "VersionId": v.version_id,
                        "CreateTime": _iso(v.created),
                        "VersionStages": {"VersionStage": sorted(v.stages)},
                    }
                    for v in chunk
                ]
            },
        }

    def _describe_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        (name,) = self._require(params, "SecretName")
        info = self.backing_store.describe(name)
        out: dict[str, Any] = {
            "SecretName": info.name,
            "Arn": self._arn(info.name),
            "SecretType": info.secret_type,
            "Description": info.description,
            "CreateTime": _iso(info.created),
            "UpdateTime": _iso(info.updated),
        }
        out.update(self._rotation_fields(name))
        if info.extended_config is not None:
            out["ExtendedConfig"] = json.dumps(dict(info.extended_config))
        if _flag(params, "FetchTags", False):
            out["Tags"] = {"Tag": []}
        return out

    def _get_random_password(self, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            length = int(params.get("PasswordLength") or 32)
        except ValueError:
            raise KmsError("InvalidParameter", "The specified parameter PasswordLength is not valid.") from None
        policy = PasswordPolicy(
            length=length,
            exclude_characters=params.get("ExcludeCharacters") or "",
            exclude_lowercase=_flag(params, "ExcludeLowercase", False),
            exclude_uppercase=_flag(params, "ExcludeUppercase", False),
            exclude_numbers=_flag(params, "ExcludeNumbers", False),
            exclude_punctuation=_flag(params, "ExcludePunctuation", False),
            require_each_included_type=_flag(params, "RequireEachIncludedType", True),
        )
        return {"RandomPassword": self.backing_store.random_password(policy)}

    def _create_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name, version_id = self._require(params, "SecretName", "VersionId")
        data = self._data(params)
        extended: dict[str, Any] | None = None
        if params.get("ExtendedConfig"):
            try:
                extended = json.loads(params["ExtendedConfig"])
            except ValueError:
                extended = None
            if not isinstance(extended, dict):
                raise KmsError("InvalidParameter", "The specified parameter ExtendedConfig is not valid.")
        interval = None
        if _flag(params, "EnableAutomaticRotation", False):
            if not params.get("RotationInterval"):
                raise _missing("RotationInterval")
            interval = _interval(params["RotationInterval"])
            if not timedelta(hours=6) <= interval <= timedelta(days=365):
                raise KmsError("InvalidParameter", "The specified parameter RotationInterval is not valid.")
        info = self.backing_store.create_secret(
            name,
            data,
            version_id=version_id,
            secret_type=params.get("SecretType") or "Generic",
            description=params.get("Description") or "",
            extended_config=extended,
            rotation_interval=interval,
        )
        out: dict[str, Any] = {
            "Arn": self._arn(name),
            "SecretName": name,
            "VersionId": version_id,
            "SecretType": info.secret_type,
        }
        if interval is not None:
            out.update(self._rotation_fields(name))
        if extended is not None:
            out["ExtendedConfig"] = json.dumps(extended)
        return out

    def _delete_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        # Deleted at once; the planned time still follows KMS's recovery window rules.
        (name,) = self._require(params, "SecretName")
        force = _flag(params, "ForceDeleteWithoutRecovery", False)
        try:
            days = int(params.get("RecoveryWindowInDays") or 30)
        except ValueError:
            raise KmsError("InvalidParameter", "The specified parameter RecoveryWindowInDays is not valid.") from None
        self.backing_store.delete_secret(name)
        now = datetime.fromtimestamp(self._clock(), UTC)
        return {"SecretName": name, "PlannedDeleteTime": _iso(now if force else now + timedelta(days=days))}


_ACTIONS: dict[str, Callable[[KmsEmulator, Mapping[str, str]], dict[str, Any]]] = {
    "GetSecretValue": KmsEmulator._get_secret_value,
    "PutSecretValue": KmsEmulator._put_secret_value,
    "UpdateSecretVersionStage": KmsEmulator._update_secret_version_stage,
    "ListSecretVersionIds": KmsEmulator._list_secret_version_ids,
    "DescribeSecret": KmsEmulator._describe_secret,
    "GetRandomPassword": KmsEmulator._get_random_password,
    "CreateSecret": KmsEmulator._create_secret,
    "DeleteSecret": KmsEmulator._delete_secret,
}


def main(argv: list[str] | None = None) -> int:
    """Command line: run an emulator until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m secretclient.testing.kms_emulator", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port (default 8100)")
    parser.add_argument("--https", action="store_true", help="serve HTTPS with a throwaway CA")
    parser.add_argument("--db", help="EmbeddedStore file to keep secrets in (default: memory)")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument(
        "--access-key", action="append", default=[], metavar="ID:SECRET[:TOKEN]",
        help="an accepted AccessKey pair (repeatable); with :TOKEN an STS key",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay every answer")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="RATE",
                        help="answer this fraction (0..1) of requests with --error-code")
    faults.add_argument("--error-code", default="InternalFailure", help="KMS code of injected errors")
    faults.add_argument("--throttle", type=float, default=None, metavar="RPS",
                        help="answer Rejected.Throttling above this many requests per second")
    args = parser.parse_args(argv)
    keys: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for item in args.access_key:
        parts = item.split(":", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            parser.error("--access-key must be ID:SECRET or ID:SECRET:TOKEN")
        keys[parts[0]] = parts[1]
        if len(parts) == 3:
            tokens[parts[0]] = parts[2]
    store = EmbeddedStore(args.db) if args.db else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    emu = KmsEmulator(
        store, keys or None, https=args.https, host=args.host, port=args.port, region=args.region,
        security_tokens=tokens,
    )
    try:
        emu.faults.set_latency(args.latency)
        emu.faults.set_error_rate(args.error_rate, code=args.error_code)
        emu.faults.throttle(args.throttle)
    except InvalidParameter as exc:
        parser.error(str(exc))
    with emu:
        print(f"KMS emulator listening on {emu.endpoint} (region {emu.region})", flush=True)
        print(f"access key id: {emu.access_key_id}", flush=True)
        if not keys:  # a generated throwaway key: the user cannot know it otherwise
            print(f"access key secret: {emu.access_key_secret}", flush=True)
        if args.https:
            print(f"CA file: {emu.ca_file}", flush=True)
        print(f"proxy mode: HTTPS_PROXY={emu.proxy_url}", flush=True)
        while not stop.wait(0.5):
            pass
    if store is not None:
        store.close()
    print("KMS emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
