"""The ApsaraDB RDS account API as rotation needs it (``aliyun-python-sdk-rds``): a client
factory, typed accounts and errors, and the five account calls on one instance.

Requests go through :mod:`secretclient.stores._aliyun_rpc`, the adapter the KMS store uses:
one attempt, passwords and STS tokens in the signed body, errors raised without the SDK's
exception chained, capped server text.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secretclient.stores import _aliyun_rpc as _rpc

from ..errors import InvalidRotationSetup, RdsApiError

__all__ = ["RdsAccount", "RdsApi", "rds_client"]


@dataclass(frozen=True, slots=True)
class RdsAccount:
    """An account as ``DescribeAccounts`` reports it; ``privileges`` maps DBName -> AccountPrivilege."""

    name: str
    account_type: str
    status: str
    privileges: Mapping[str, str] = field(default_factory=dict)


def _missing(reason: str) -> InvalidRotationSetup:
    return InvalidRotationSetup(
        f"the RDS strategy needs aliyun-python-sdk-rds: pip install 'secretclient-rotation[rds]' ({reason})"
    )


def _request(action: str) -> Any:
    """A fresh request object of the SDK's class for ``action`` (its endpoint data included)."""
    try:
        module = importlib.import_module(f"aliyunsdkrds.request.v20140815.{action}Request")
    except ImportError:  # pragma: no cover - depends on the installation
        raise _missing("aliyunsdkrds is not installed") from None
    return getattr(module, f"{action}Request")()


def rds_client(
    region: str,
    *,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    verify: str | bool | None = None,
) -> Any:
    """An ``AcsClient`` for RDS in ``region``: credentials default to ``ALIBABA_CLOUD_ACCESS_KEY_ID`` /
    ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` / ``ALIBABA_CLOUD_SECURITY_TOKEN``; ``endpoint`` (a host or
    ``http(s)://host:port``) overrides the SDK's endpoint for the region (``rds.aliyuncs.com``)."""
    if importlib.util.find_spec("aliyunsdkrds") is None:  # fail at set-up, not at the first call
        raise _missing("aliyunsdkrds is not installed")
    if not region:
        raise InvalidRotationSetup("the RDS API needs a region and an AccessKey (id and secret)")
    cred = _rpc.credential(
        access_key_id, access_key_secret, security_token, None,
        missing=lambda reason: InvalidRotationSetup(
            f"the RDS API needs a region and an AccessKey (id and secret): {reason}"
        ),
    )
    options: dict[str, Any] = {}
    if verify is not None:
        options["verify"] = verify
    client = _rpc.make_client(region, cred, missing=_missing, **options)
    if endpoint:
        client.add_endpoint(region, "rds", endpoint)
    return client


class RdsApi:
    """The account calls rotation needs, on one instance, with typed errors.

    Requests go over HTTPS, and passwords in the request body: the SDK logs query parameters.
    """

    def __init__(self, client: Any, instance_id: str) -> None:
        if not isinstance(instance_id, str) or not instance_id.strip():
            raise InvalidRotationSetup("the RDS strategy needs the instance id (InstanceId / --instance-id)")
        self.client = client
        self.instance_id = instance_id

    def __repr__(self) -> str:
        return f"RdsApi(instance_id={self.instance_id!r})"

    def _error(self, exc: BaseException, action: str, account: str, password: str | None) -> RdsApiError:
        where = f"RDS {action} for account {account!r} on {self.instance_id}"
        if isinstance(exc, _rpc.BadResponse):
            return RdsApiError(f"{where} failed: RDS {exc}", code="SDK.InvalidResponse")
        exceptions = _rpc.sdk(_missing).exceptions
        if isinstance(exc, exceptions.ServerException):
            text = _rpc.server_text(exc, hide=(password,) if password else ())
            return RdsApiError(
                f"{where} failed" + (f": {text}" if text else ""),
                code=str(exc.get_error_code() or "SDK.UnknownServerError"),
                request_id=exc.get_request_id(), http_status=exc.get_http_status(),
            )
        if isinstance(exc, exceptions.ClientException):
            # The SDK's text for transport errors quotes the request URL: keep only the code.
            return RdsApiError(f"{where} could not be sent", code=str(exc.get_error_code()))
        return RdsApiError(f"{where} failed: {type(exc).__name__}", code="SDK.HttpError")

    def _call(
        self, action: str, account: str, params: Mapping[str, str], password: str | None = None
    ) -> dict[str, Any]:
        sdk = _rpc.sdk(_missing)
        request = _request(action)
        request.set_accept_format("json")
        # The SDK's RDS requests default to plain HTTP; passwords go over TLS (an endpoint
        # given as http://host:port, e.g. a local emulator, still wins).
        request.set_protocol_type(sdk.protocol_type.HTTPS)
        request.add_query_param("DBInstanceId", self.instance_id)
        for key, value in params.items():
            request.add_query_param(key, value)
        if password is not None:
            request.add_body_params("AccountPassword", password)
        return _rpc.call(self.client, request, lambda exc: self._error(exc, action, account, password))

    def describe(self, name: str) -> RdsAccount | None:
        """The account ``name``, or None when the instance has no such account."""
        out = self._call("DescribeAccounts", name, {"AccountName": name})
        for item in out.get("Accounts", {}).get("DBInstanceAccount", []):
            if item.get("AccountName") == name:
                privileges = {
                    str(p["DBName"]): str(p["AccountPrivilege"])
                    for p in item.get("DatabasePrivileges", {}).get("DatabasePrivilege", [])
                }
                kind, status = str(item.get("AccountType") or "Normal"), str(item.get("AccountStatus") or "")
                return RdsAccount(name, kind, status, privileges)
        return None

    def create(self, name: str, password: str, account_type: str) -> None:
        self._call("CreateAccount", name, {"AccountName": name, "AccountType": account_type}, password)

    def reset_password(self, name: str, password: str) -> None:
        self._call("ResetAccountPassword", name, {"AccountName": name}, password)

    def grant(self, name: str, db: str, privilege: str) -> None:
        self._call("GrantAccountPrivilege", name, {"AccountName": name, "DBName": db, "AccountPrivilege": privilege})

    def revoke(self, name: str, db: str) -> None:
        self._call("RevokeAccountPrivilege", name, {"AccountName": name, "DBName": db})
