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
import json
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Unpack

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
from secretclient.testing.rpc_server import (
    COMMON_ERRORS,
    EmulatorOptions,
    Faults,
    RpcEmulator,
    RpcError,
    missing,
    sign,
    string_to_sign,
)

__all__ = ["ACCOUNT_ID", "Faults", "KmsEmulator", "KmsError", "main", "sign", "string_to_sign"]

API_VERSION = "2016-01-20"
#: The account id in the ARNs the emulator hands out.
ACCOUNT_ID = "1234567890123456"

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
    **COMMON_ERRORS,
}
# Our error classes -> the KMS code to use when the store left ``code`` empty.
_DEFAULT_CODES: tuple[tuple[type[SecretClientError], str], ...] = (
    (SecretNotFound, "Forbidden.ResourceNotFound"),
    (VersionConflict, "Rejected.ResourceExist"),
    (LimitExceeded, "Rejected.LimitExceeded"),
    (InvalidParameter, "InvalidParameter"),
    (AccessDenied, "Forbidden.NoPermission"),
)


class KmsError(RpcError):
    """An error answer: KMS code, HTTP status and message (KMS's own for known codes)."""

    table: ClassVar[Mapping[str, tuple[int, str]]] = _KMS_ERRORS


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



class KmsEmulator(RpcEmulator):
    """A local KMS Secrets Manager endpoint on ``host:port`` (``port=0`` picks a free one).

    :param store: the EmbeddedStore holding the secrets (default: a private ``:memory:`` one).
    :param options: :class:`~secretclient.testing.rpc_server.EmulatorOptions` (access keys,
        STS tokens, HTTPS, host, port, region, clock, fault seed or :class:`Faults`).
    """

    product = "Kms"
    endpoint_product = "kms"
    api_version = API_VERSION
    error_class = KmsError
    internal_code = "InternalFailure"
    unavailable_code = "ServiceUnavailableTemporary"
    throttling_code = "Rejected.Throttling"

    def __init__(self, store: EmbeddedStore | None = None, **options: Unpack[EmulatorOptions]) -> None:
        super().__init__(**options)
        self._own_store = store is None
        self.backing_store: EmbeddedStore = store if store is not None else EmbeddedStore(":memory:")

    def stop(self) -> None:
        """Stop serving, drop open connections, and free the port (and the own store)."""
        super().stop()
        if self._own_store:
            self.backing_store.close()
            self._own_store = False

    def tls_hostnames(self) -> tuple[str, ...]:
        return (
            f"kms.{self.region}.aliyuncs.com",
            f"kms-vpc.{self.region}.aliyuncs.com",
            "*.cryptoservice.kms.aliyuncs.com",
        )

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
        token = self.auth.token(self.access_key_id)
        if token:
            options["security_token"] = token
        if self.https:
            options["verify"] = str(self.ca_file)
        options.update(kw)
        return AliyunKmsStore(**options)

    # -- request handling ----------------------------------------------------------------

    def _actions(self) -> Mapping[str, Callable[[Mapping[str, str]], dict[str, Any]]]:
        return {name: getattr(self, method) for name, method in _ACTIONS.items()}

    def _invoke(self, handler: Callable[[Mapping[str, str]], dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return handler(params)
        except SecretClientError as err:
            raise _from_store_error(err) from None

    def _arn(self, name: str) -> str:
        return f"acs:kms:{self.region}:{ACCOUNT_ID}:secret/{name}"

    @staticmethod
    def _data(params: Mapping[str, str]) -> str | bytes:
        data = params.get("SecretData")
        if data is None or data == "":
            raise missing("SecretData")
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
                raise missing("RotationInterval")
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
        self.backing_store.delete_secret(name, recovery_window_days=days, force=force)
        now = datetime.fromtimestamp(self._clock(), UTC)
        return {"SecretName": name, "PlannedDeleteTime": _iso(now if force else now + timedelta(days=days))}


_ACTIONS: dict[str, str] = {
    "GetSecretValue": "_get_secret_value",
    "PutSecretValue": "_put_secret_value",
    "UpdateSecretVersionStage": "_update_secret_version_stage",
    "ListSecretVersionIds": "_list_secret_version_ids",
    "DescribeSecret": "_describe_secret",
    "GetRandomPassword": "_get_random_password",
    "CreateSecret": "_create_secret",
    "DeleteSecret": "_delete_secret",
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
        store, access_keys=keys or None, https=args.https, host=args.host, port=args.port, region=args.region,
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
