"""Request authentication of the local Alibaba Cloud emulators, as the API gateway does it:
signature 1.0 (HMAC-SHA1 over the parameters, ``aliyun-python-sdk-core``) and signature V3
(ACS3-HMAC-SHA256 over a canonical request, the default of the Tea SDKs such as
``alibabacloud_kms20160120``), with the AccessKey, STS token, timestamp and nonce checks every
product shares."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from ._rpc_errors import RpcError, missing

__all__ = [
    "TIMESTAMP_SKEW",
    "V3_ALGORITHM",
    "Authenticator",
    "Incoming",
    "canonical_request_v3",
    "sign",
    "sign_v3",
    "string_to_sign",
]

#: How far a request's time may be from the server's.
TIMESTAMP_SKEW = timedelta(minutes=15)
#: The V3 algorithm the Tea SDKs use by default.
V3_ALGORITHM = "ACS3-HMAC-SHA256"
# The headers a V3 request must carry and sign.
_V3_REQUIRED = ("host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256")
_V3_AUTH = re.compile(r"(\S+) Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request as received: ``params`` merges the query and a form body (later wins)."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


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


def canonical_request_v3(req: Incoming, signed_headers: list[str]) -> str:
    """The V3 canonical request: method, path, sorted query, signed headers, payload hash."""
    query = "&".join(f"{_percent(k)}={_percent(v)}" for k, v in sorted(req.query))
    headers = "".join(f"{name}:{req.headers.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join((
        req.method.upper(), req.path or "/", query, headers, ";".join(signed_headers),
        req.headers.get("x-acs-content-sha256", ""),
    ))


def sign_v3(canonical_request: str, secret: str) -> str:
    """The hex V3 signature of a canonical request under ``secret``."""
    to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


class Authenticator:
    """The AccessKeys (and STS tokens) a service accepts, and the checks of each request.

    ``error(code, message=None, status=None)`` builds the service's error answer;
    ``stale_code`` is the code of a request whose time is too far from the server's.
    """

    def __init__(
        self,
        keys: Mapping[str, str],
        tokens: Mapping[str, str],
        clock: Callable[[], float],
        error: Callable[..., RpcError],
        stale_code: str = "InvalidTimeStamp.Expired",
    ) -> None:
        self._stale_code = stale_code
        self._lock = threading.Lock()
        self._keys = dict(keys)
        self._tokens = dict(tokens)
        self._clock = clock
        self._error = error
        self._nonces: dict[str, float] = {}

    @property
    def first_key(self) -> tuple[str, str]:
        """``(id, secret)`` of the first AccessKey."""
        with self._lock:
            key_id = next(iter(self._keys))
            return key_id, self._keys[key_id]

    def token(self, key_id: str) -> str | None:
        """The STS token ``key_id`` must carry, if it is an STS key."""
        with self._lock:
            return self._tokens.get(key_id)

    def add_key(self, key_id: str, secret: str, security_token: str | None = None) -> None:
        with self._lock:
            self._keys[key_id] = secret
            if security_token is not None:
                self._tokens[key_id] = security_token

    def check(self, req: Incoming) -> None:
        """Raise the gateway's error unless ``req`` is signed by a known key, in time, once."""
        if "authorization" in req.headers:
            self._check_v3(req)
        else:
            self._check_v1(req.method, req.params)

    # -- shared steps --------------------------------------------------------------------

    def _secret_and_token(self, key_id: str, given_token: str | None) -> str:
        with self._lock:
            secret = self._keys.get(key_id)
            token = self._tokens.get(key_id)
        if secret is None:
            raise self._error("InvalidAccessKeyId.NotFound")
        if token is not None:
            if not given_token:
                raise self._error("InvalidSecurityToken.Malformed")
            if not hmac.compare_digest(given_token.encode(), token.encode()):
                raise self._error("InvalidSecurityToken.Mismatch")
        return secret

    def _check_time(self, stamp_text: str, expired: str) -> None:
        try:
            stamp = datetime.strptime(stamp_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise self._error("InvalidTimeStamp.Format") from None
        now = datetime.fromtimestamp(self._clock(), UTC)
        if abs(now - stamp) > TIMESTAMP_SKEW:
            raise self._error(expired)

    def _check_nonce(self, nonce: str | None, name: str) -> None:
        if not nonce:
            raise missing(name)
        with self._lock:
            now = self._clock()
            horizon = now - 2 * TIMESTAMP_SKEW.total_seconds()
            if len(self._nonces) > 10000:
                self._nonces = {n: t for n, t in self._nonces.items() if t > horizon}
            if nonce in self._nonces:
                raise self._error("SignatureNonceUsed")
            self._nonces[nonce] = now

    # -- signature 1.0 ---------------------------------------------------------------------

    def _check_v1(self, method: str, params: Mapping[str, str]) -> None:
        key_id = params.get("AccessKeyId")
        signature = params.get("Signature")
        if not key_id or not signature or params.get("SignatureMethod") != "HMAC-SHA1" or params.get(
            "SignatureVersion"
        ) != "1.0":
            raise self._error("IncompleteSignature")
        secret = self._secret_and_token(key_id, params.get("SecurityToken"))
        expected = sign(method, params, secret)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            # The SDK splits this message at ':' and compares the rest with its own string to sign.
            raise self._error(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign is:"
                + string_to_sign(method, params),
                400,
            )
        self._check_time(params.get("Timestamp", ""), self._stale_code)
        self._check_nonce(params.get("SignatureNonce"), "SignatureNonce")

    # -- signature V3 (ACS3-HMAC-SHA256) ---------------------------------------------------

    def _check_v3(self, req: Incoming) -> None:
        m = _V3_AUTH.fullmatch(req.headers["authorization"].strip())
        if not m or m.group(1) != V3_ALGORITHM:
            raise self._error("IncompleteSignature")
        key_id, signed, signature = m.group(2), m.group(3).split(";"), m.group(4).lower()
        if signed != sorted(set(signed)) or any(h not in signed or h not in req.headers for h in _V3_REQUIRED):
            raise self._error("IncompleteSignature")
        unsigned = [h for h in req.headers if h.startswith("x-acs-") and h not in signed]
        if unsigned:  # every x-acs-* header the service reads must be covered by the signature
            raise self._error("IncompleteSignature")
        secret = self._secret_and_token(key_id, req.headers.get("x-acs-security-token"))
        canonical = canonical_request_v3(req, signed)
        payload_ok = hmac.compare_digest(
            hashlib.sha256(req.body).hexdigest().encode(), req.headers["x-acs-content-sha256"].lower().encode()
        )
        if not payload_ok or not hmac.compare_digest(sign_v3(canonical, secret).encode(), signature.encode()):
            # No canonical request in the answer: its query may hold secret data.
            raise self._error("SignatureDoesNotMatch", "Specified signature is not matched with our calculation.", 400)
        self._check_time(req.headers["x-acs-date"], self._stale_code)
        self._check_nonce(req.headers["x-acs-signature-nonce"], "SignatureNonce")
