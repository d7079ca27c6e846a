"""The base of the local Alibaba Cloud emulators, :class:`RpcEmulator`, and the public names of
the pieces they are built from: request signing (:mod:`._signing`), :class:`Faults`
(:mod:`._faults`), the HTTP/CONNECT server (:mod:`._http`), error answers
(:mod:`._rpc_errors`) and :class:`ProxyRouter` (:mod:`._router`).

:class:`~secretclient.testing.KmsEmulator` and :class:`~secretclient.testing.RdsEmulator` are
:class:`RpcEmulator` subclasses: each names its product, API version, error table and actions.
"""

from __future__ import annotations

import secrets as _secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypedDict, Unpack

from secretclient.errors import InvalidParameter

from ._faults import Faults
from ._http import HttpService, RpcHandler
from ._router import ProxyRouter
from ._rpc_errors import COMMON_ERRORS, RpcError, missing
from ._signing import Authenticator, Incoming, sign, string_to_sign

__all__ = [
    "COMMON_ERRORS",
    "EmulatorOptions",
    "Faults",
    "Handler",
    "ProxyRouter",
    "RpcEmulator",
    "RpcError",
    "missing",
    "sign",
    "string_to_sign",
]


#: An action's handler: the request parameters in, the answer's JSON out.
Handler = Callable[[Mapping[str, str]], dict[str, Any]]


class EmulatorOptions(TypedDict, total=False):
    """The keyword options every emulator takes (``KmsEmulator(store, **options)``).

    ``access_keys``: AccessKey id -> secret accepted (default: one random pair);
    ``security_tokens``: id -> the STS token requests with that key must carry;
    ``https``: serve HTTPS with a throwaway CA; ``host``/``port`` (``0`` picks a free port);
    ``region``; ``clock``: wall clock for request timestamps; ``seed`` of the fault RNG;
    ``faults``: a :class:`Faults` to use (e.g. one with an injected clock).
    """

    access_keys: Mapping[str, str] | None
    https: bool
    host: str
    port: int
    region: str
    security_tokens: Mapping[str, str] | None
    clock: Callable[[], float]
    seed: int | None
    faults: Faults | None


class RpcEmulator(HttpService):
    """Base of the local endpoints: HTTP(S) on ``host:port`` (``port=0`` picks a free one),
    signature checks, fault injection, proxy mode and lifecycle.

    Subclasses set :attr:`product` (``"Kms"``), :attr:`endpoint_product` (the SDK's product
    code, ``"kms"``), :attr:`api_version` and :attr:`error_class` (whose ``table`` holds the
    documented statuses and messages), and implement :meth:`_actions` and :meth:`tls_hostnames`.
    """

    handler_class = RpcHandler
    product: ClassVar[str] = ""
    endpoint_product: ClassVar[str] = ""
    api_version: ClassVar[str] = ""
    error_class: ClassVar[type[RpcError]] = RpcError
    #: The codes the fault injector answers with.
    internal_code: ClassVar[str] = "InternalError"
    unavailable_code: ClassVar[str] = "ServiceUnavailable"
    throttling_code: ClassVar[str] = "Throttling"
    #: The code of a request whose time is more than 15 minutes off.
    stale_timestamp_code: ClassVar[str] = "InvalidTimeStamp.Expired"

    def __init__(self, **options: Unpack[EmulatorOptions]) -> None:
        access_keys = options.get("access_keys")
        if access_keys is None:
            access_keys = {"LTAI" + _secrets.token_hex(10): _secrets.token_urlsafe(24)}
        if not access_keys:
            raise InvalidParameter(f"{type(self).__name__} needs at least one access key")
        super().__init__(options.get("host", "127.0.0.1"), options.get("port", 0))
        self.https = options.get("https", False)
        self.region = options.get("region", "cn-hangzhou")
        self._clock = options.get("clock", time.time)
        self.auth = Authenticator(
            access_keys, options.get("security_tokens") or {}, self._clock, self.error, self.stale_timestamp_code
        )
        faults = options.get("faults")
        self.faults = faults if faults is not None else Faults(seed=options.get("seed"))

    # -- what subclasses define ----------------------------------------------------------

    def server_timestamp(self) -> float:
        """The service's time (POSIX seconds) sent in every answer's ``Date`` header."""
        return float(self._clock())

    def _actions(self) -> Mapping[str, Handler]:
        """Action name -> handler of the request parameters, returning the answer's JSON."""
        raise NotImplementedError

    def answers_host(self, hostname: str) -> bool:
        """Whether this emulator stands in for ``hostname`` (:class:`ProxyRouter` routes by it)."""
        name = hostname.lower()
        for pattern in self.tls_hostnames():
            if pattern.startswith("*.") and name.endswith(pattern[1:]):
                return True
            if name == pattern:
                return True
        return False

    def _invoke(self, handler: Handler, params: Mapping[str, str]) -> dict[str, Any]:
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

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"{type(self).__name__}({state}, region={self.region!r})"

    # -- addresses and credentials -------------------------------------------------------

    @property
    def access_key_id(self) -> str:
        return self.auth.first_key[0]

    @property
    def access_key_secret(self) -> str:
        return self.auth.first_key[1]

    def add_access_key(self, key_id: str, secret: str, security_token: str | None = None) -> None:
        """Accept another AccessKey pair; with ``security_token`` it behaves as an STS key."""
        self.auth.add_key(key_id, secret, security_token)

    @property
    def calls(self) -> Counter[str]:
        """Requests received per Action (``emu.calls["DescribeAccounts"]``)."""
        return self.faults.calls

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

    def action_of(self, req: Incoming) -> str:
        """The Action a request names (``""`` when none): a parameter (signature 1.0) or the
        ``x-acs-action`` header (V3)."""
        return req.params.get("Action") or req.headers.get("x-acs-action", "")

    def _dispatch(self, req: Incoming) -> dict[str, Any]:
        action = self.action_of(req)
        if not action:
            raise self.missing("Action")
        handler = self._actions().get(action)
        if handler is None:
            raise self.error("InvalidAction.NotFound")
        if (req.params.get("Version") or req.headers.get("x-acs-version")) != self.api_version:
            raise self.error("InvalidVersion")
        self.auth.check(req)
        return self._invoke(handler, req.params)

    def missing(self, param: str) -> RpcError:
        """This service's answer to a missing required parameter (``MissingSecretName``)."""
        return missing(param)

    def _require(self, params: Mapping[str, str], *names: str) -> list[str]:
        values = []
        for name in names:
            value = params.get(name)
            if value is None or value == "":
                raise self.missing(name)
            values.append(value)
        return values
