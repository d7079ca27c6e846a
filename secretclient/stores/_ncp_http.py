"""NCP API Gateway plumbing for :mod:`secretclient.stores.ncp`: signature v2, one signed JSON
request over ``http.client``, and NCP's ``error.errorCode`` mapped to :mod:`secretclient.errors`.

Signature v2 (API Gateway): ``base64(HMAC-SHA256(secret_key, "METHOD path?query\\ntimestamp\\naccess_key"))``
in ``x-ncp-apigw-signature-v2``, beside ``x-ncp-apigw-timestamp`` (epoch milliseconds) and
``x-ncp-iam-access-key``. Messages built here never quote request or answer bodies: both may
carry secret values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ._server_clock import ServerClock

__all__ = ["NcpTransport", "map_error", "sign_v2", "string_to_sign"]

TIMESTAMP_HEADER = "x-ncp-apigw-timestamp"
ACCESS_KEY_HEADER = "x-ncp-iam-access-key"
SIGNATURE_HEADER = "x-ncp-apigw-signature-v2"
JOB_TOKEN_HEADER = "SECRET-JOB-TOKEN"


def string_to_sign(method: str, path: str, timestamp: str, access_key: str) -> str:
    """What signature v2 signs: ``path`` is the request path with its query string."""
    return f"{method.upper()} {path}\n{timestamp}\n{access_key}"


def sign_v2(method: str, path: str, timestamp: str, access_key: str, secret_key: str) -> str:
    """The ``x-ncp-apigw-signature-v2`` value of a request."""
    digest = hmac.new(
        secret_key.encode(), string_to_sign(method, path, timestamp, access_key).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


# -- errors ---------------------------------------------------------------------------------

# Secret Manager's own codes, then the API Gateway's numeric ones (authentication, quota).
_BY_CODE: dict[str, type[errors.StoreError]] = {
    "NOT_FOUND": errors.SecretNotFound,
    "FORBIDDEN": errors.AccessDenied,
    "UNAUTHORIZED": errors.AccessDenied,
    "INVALID_REQUEST": errors.InvalidParameter,
    "UNPROCESSABLE_ENTITY": errors.VersionConflict,
    "INVALID_STATUS": errors.VersionConflict,
    "INTERNAL_SERVER_ERROR": errors.StoreUnavailable,
    "100": errors.InvalidParameter,
    "200": errors.AccessDenied,
    "210": errors.AccessDenied,
    "230": errors.AccessDenied,
    "300": errors.SecretNotFound,
    "400": errors.Throttled,
}
_BY_STATUS: dict[int, type[errors.StoreError]] = {
    400: errors.InvalidParameter, 401: errors.AccessDenied, 403: errors.AccessDenied, 404: errors.SecretNotFound,
    409: errors.VersionConflict, 422: errors.VersionConflict, 429: errors.Throttled,
}
_WHAT: dict[type[errors.StoreError], str] = {
    errors.SecretNotFound: "the secret or the rotation job does not exist",
    errors.AccessDenied: "access denied: check the access key, the secret key, the clock and the job token",
    errors.InvalidParameter: "NCP refused a parameter",
    errors.VersionConflict: "the secret's state does not allow this (rotation status, job already ended, name taken)",
    errors.Throttled: "NCP is throttling requests",
    errors.StoreUnavailable: "NCP Secret Manager failed or is unavailable",
}


def map_error(status: int, body: Any, what: str) -> errors.StoreError:
    """The typed error for an NCP error answer (``{"error": {"errorCode", "message", "details"}}``).

    Only the code and the status are kept from the answer: NCP's texts are not ours to vouch for.
    """
    code = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        raw = body["error"].get("errorCode")
        code = str(raw) if raw is not None else None
    fallback = errors.StoreUnavailable if status >= 500 else errors.StoreError
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or fallback
    reason = _WHAT.get(cls, "NCP refused the request")
    return cls(f"NCP {what}: {reason} (HTTP {status})", code=code or f"HTTP{status}", http_status=status)


# -- transport ------------------------------------------------------------------------------


class NcpTransport:
    """Signed JSON requests to one endpoint; one new connection per request (thread-safe).

    ``verify``: True (system CAs), False, or a CA file path. ``proxy``: ``host:port`` of an HTTP
    proxy to tunnel through (CONNECT), or None for a direct connection.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        timeout: float,
        verify: bool | str,
        proxy: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/") or url.query:
            raise errors.InvalidParameter("endpoint must be http(s)://host[:port] without a path")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port
        self.access_key = access_key
        self._secret_key = secret_key
        self.timeout = timeout
        self._proxy = proxy
        self._clock = clock
        #: The server's time from the ``Date`` of its last answer (see ``server_time()`` of the stores).
        self.server_clock = ServerClock()
        self._ssl: ssl.SSLContext | None = None
        if self.scheme == "https":
            if verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            self._ssl = ctx

    def __repr__(self) -> str:
        return f"NcpTransport({self.scheme}://{self.host}{':' + str(self.port) if self.port else ''})"

    def _connection(self) -> http.client.HTTPConnection:
        if self._proxy:
            phost, _, pport = self._proxy.rpartition(":")
            target_port = self.port or (443 if self._ssl else 80)
            if self._ssl is not None:
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    phost, int(pport), timeout=self.timeout, context=self._ssl
                )
            else:
                conn = http.client.HTTPConnection(phost, int(pport), timeout=self.timeout)
            conn.set_tunnel(self.host, target_port)
            return conn
        if self._ssl is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._ssl)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(
        self, method: str, path: str, what: str, body: Any = None, *, job_token: str | None = None
    ) -> Any:
        """Send one signed request and return the answer's JSON, or raise the typed error."""
        timestamp = str(int(self._clock() * 1000))
        headers = {
            TIMESTAMP_HEADER: timestamp,
            ACCESS_KEY_HEADER: self.access_key,
            SIGNATURE_HEADER: sign_v2(method, path, timestamp, self.access_key, self._secret_key),
            "Accept": "application/json",
        }
        if job_token is not None:
            headers[JOB_TOKEN_HEADER] = job_token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            self.server_clock.observe(resp.getheader("Date"))
            raw = resp.read()
            status = resp.status
        except TimeoutError:
            raise errors.StoreTimeout(f"NCP {what}: no answer within {self.timeout:g} s", code="Timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            # The exception text may name the proxy or host, never a value; keep only its type.
            raise errors.StoreUnavailable(
                f"NCP {what}: connection failed ({type(exc).__name__})", code="NetworkError"
            ) from None
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if status >= 300:
            raise map_error(status, parsed, what)
        if not isinstance(parsed, Mapping):
            raise errors.StoreUnavailable(
                f"NCP {what}: the answer is not a JSON object (HTTP {status})", code="BadAnswer", http_status=status
            )
        return parsed
