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

import base64
import binascii
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Unpack

from secretclient.errors import (
    AccessDenied,
    InvalidParameter,
    LimitExceeded,
    SecretClientError,
    SecretNotFound,
    VersionConflict,
)
from secretclient.model import CURRENT, PREVIOUS, PasswordPolicy, SecretInfo
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing._cli import emulator_parser, serve_until_signalled
from secretclient.testing.rpc_server import (
    COMMON_ERRORS,
    EmulatorOptions,
    Faults,
    Handler,
    RpcEmulator,
    RpcError,
    sign,
    string_to_sign,
)

from . import _kms_params as P
from ._kms_params import ACCOUNT_ID

__all__ = ["ACCOUNT_ID", "Faults", "KmsEmulator", "KmsError", "main", "sign", "string_to_sign"]

API_VERSION = "2016-01-20"
#: KMS's limit on a secret value (bytes of text, or of the binary value).
MAX_SECRET_DATA = 30720
#: Custom (non-ACS) stages one secret may use at once.
MAX_CUSTOM_STAGES = 8

# Code -> (HTTP status, message) as KMS documents them.
_KMS_ERRORS: dict[str, tuple[int, str]] = {
    "InvalidParameter": (400, "The specified parameter is invalid."),
    "Rejected.LimitExceeded": (400, "The secret quota is exceeded."),
    "Forbidden.NoPermission": (403, "You are not authorized to perform the operation."),
    "Forbidden.ResourceNotFound": (404, "The resource is not found."),
    "Rejected.ResourceExist": (409, "The resource already exists."),
    "Rejected.ResourceInDeleteWindow": (400, "The secret is planned to be deleted."),
    "Rejected.UnsupportedOperation": (400, "The operation is not supported."),
    "DryRunOperationError": (400, "Request validation has been passed with DryRun flag set."),
    "Rejected.Throttling": (429, "The QPS upper limit is exceeded."),
    "InternalFailure": (500, "An internal error occurred."),
    "IllegalTimestamp": (400, "The input timestamp is illegal or expired."),
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
    stale_timestamp_code = "IllegalTimestamp"

    def __init__(self, store: EmbeddedStore | None = None, **options: Unpack[EmulatorOptions]) -> None:
        super().__init__(**options)
        self._own_store = store is None
        # What KMS keeps beside values and the EmbeddedStore does not: tags and descriptions
        # set by UpdateSecret (in memory, lost at stop). Deletion windows are the store's.
        self._meta_lock = threading.Lock()
        self._tags: dict[str, dict[str, str]] = {}
        self._descriptions: dict[str, str] = {}
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

    def _actions(self) -> Mapping[str, Handler]:
        return {name: getattr(self, method) for name, method in _ACTIONS.items()}

    def _invoke(self, handler: Handler, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return handler(params)
        except SecretClientError as err:
            raise _from_store_error(err) from None

    def missing(self, param: str) -> RpcError:
        """KMS answers every missing required parameter with ``MissingParameter``."""
        return KmsError("MissingParameter", f"The parameter {param} is mandatory for this action.", 400)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def server_timestamp(self) -> float:
        """The backing store's time: the clock that stamps the versions (their ``CreateTime``)."""
        return self.backing_store.server_time().timestamp()

    # -- names -------------------------------------------------------------------------------

    def _name(self, params: Mapping[str, str]) -> str:
        """The secret a request names: a name or an ARN of this region."""
        if not params.get("SecretName"):
            raise self.missing("SecretName")
        return P.secret_name(params, self.region)

    def _forget(self, name: str) -> None:
        """Drop what the emulator keeps beside the store for ``name`` (it is gone or new)."""
        with self._meta_lock:
            self._tags.pop(name, None)
            self._descriptions.pop(name, None)

    # -- values and their checks -------------------------------------------------------------

    def _data(self, params: Mapping[str, str]) -> str | bytes:
        data = params.get("SecretData")
        if data is None or data == "":
            raise self.missing("SecretData")
        kind = params.get("SecretDataType") or "text"
        value: str | bytes
        if kind == "text":
            value, size = data, len(data.encode())
        elif kind == "binary":
            try:
                value = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise P.invalid("SecretData", " It is not valid base64.") from None
            size = len(value)
        else:
            raise P.invalid("SecretDataType")
        if size > MAX_SECRET_DATA:
            raise P.invalid("SecretData", f" It is longer than {MAX_SECRET_DATA} bytes.")
        return value

    def _check_custom_stages(self, name: str, adding: Sequence[str]) -> None:
        custom = {s for v in self.backing_store.list_versions(name, include_deprecated=True) for s in v.stages}
        custom |= set(adding)
        if len({s for s in custom if not s.startswith("ACS")}) > MAX_CUSTOM_STAGES:
            raise self.error("Rejected.LimitExceeded", f"A secret can have at most {MAX_CUSTOM_STAGES} custom stages.")

    def _rotation_fields(self, info: SecretInfo) -> dict[str, Any]:
        """Rotation fields, which KMS returns only for the secret types it rotates itself."""
        if info.secret_type not in P.MANAGED_TYPES:
            return {}
        out: dict[str, Any] = {"AutomaticRotation": "Enabled" if info.automatic_rotation else "Disabled"}
        if info.automatic_rotation and info.rotation_interval:
            out["RotationInterval"] = f"{int(info.rotation_interval.total_seconds())}s"
            if info.next_rotation:
                out["NextRotationDate"] = P.iso(info.next_rotation)
        if info.last_rotation:
            out["LastRotationDate"] = P.iso(info.last_rotation)
        return out

    def _tag_list(self, name: str) -> dict[str, Any]:
        with self._meta_lock:
            tags = dict(self._tags.get(name, {}))
        return {"Tag": [{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())]}

    def _description(self, info: SecretInfo) -> str:
        with self._meta_lock:
            return self._descriptions.get(info.name, info.description)

    # -- actions ------------------------------------------------------------------------------

    def _get_secret_value(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        version = P.version_id(params["VersionId"]) if params.get("VersionId") else None
        stage = P.stage(params["VersionStage"]) if params.get("VersionStage") else None
        dry_run = P.flag(params, "DryRun", False)
        secret = self.backing_store.get_secret(name, stage=stage, version_id=version)
        if dry_run:  # checked, found, allowed: KMS says so and never returns the value
            raise self.error("DryRunOperationError")
        binary = isinstance(secret.data, bytes)
        out: dict[str, Any] = {
            "SecretName": secret.name,
            "VersionId": secret.version_id,
            "CreateTime": P.iso(secret.created),
            "SecretData": base64.b64encode(secret.data).decode() if isinstance(secret.data, bytes) else secret.data,
            "SecretDataType": "binary" if binary else "text",
            "VersionStages": {"VersionStage": sorted(secret.stages)},
            "SecretType": secret.secret_type,
        }
        out.update(self._rotation_fields(self.backing_store.describe(name)))
        if P.flag(params, "FetchExtendedConfig", False) and secret.extended_config is not None:
            out["ExtendedConfig"] = json.dumps(dict(secret.extended_config))
        return out

    def _put_secret_value(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        version = P.version_id(self._require(params, "VersionId")[0])
        data = self._data(params)
        raw_stages = params.get("VersionStages")
        stages = P.parse_stages(raw_stages) if raw_stages else None
        self._check_custom_stages(name, stages or [])
        info = self.backing_store.put_secret(name, version, data, stages=stages)
        labels = {"VersionStage": sorted(info.stages)}
        return {"SecretName": name, "VersionId": info.version_id, "VersionStages": labels}

    def _update_secret_version_stage(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        stage = P.stage(self._require(params, "VersionStage")[0])
        move_to = P.version_id(params["MoveToVersion"], "MoveToVersion") if params.get("MoveToVersion") else None
        remove_from = (
            P.version_id(params["RemoveFromVersion"], "RemoveFromVersion") if params.get("RemoveFromVersion") else None
        )
        if move_to is None and remove_from is None:
            raise KmsError("InvalidParameter", "At least one of MoveToVersion and RemoveFromVersion is required.")
        if stage in (CURRENT, PREVIOUS) and move_to is None:
            raise KmsError("InvalidParameter", f"MoveToVersion is required when VersionStage is {stage}.")
        if move_to is not None:
            self._check_custom_stages(name, [stage])
        self.backing_store.update_stage(name, stage, move_to=move_to, remove_from=remove_from)
        return {"SecretName": name}

    def _list_secret_version_ids(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        page, size = P.page(params, 20)
        versions = self.backing_store.list_versions(name, include_deprecated=P.flag(params, "IncludeDeprecated", False))
        chunk = versions[(page - 1) * size : page * size]
        return {
            "SecretName": name,
            "PageNumber": page,
            "PageSize": size,
            "TotalCount": len(versions),
            "VersionIds": {
                "VersionId": [
                    {"VersionId": v.version_id, "CreateTime": P.iso(v.created),
                     "VersionStages": {"VersionStage": sorted(v.stages)}}
                    for v in chunk
                ]
            },
        }

    def _describe_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        info = self.backing_store.describe(name)
        out: dict[str, Any] = {
            "SecretName": info.name,
            "Arn": P.arn(self.region, info.name),
            "SecretType": info.secret_type,
            "Description": self._description(info),
            "CreateTime": P.iso(info.created),
            "UpdateTime": P.iso(info.updated),
        }
        out.update(self._rotation_fields(info))
        if info.planned_deletion is not None:
            out["PlannedDeleteTime"] = P.iso(info.planned_deletion)
        if info.extended_config is not None:
            out["ExtendedConfig"] = json.dumps(dict(info.extended_config))
        if P.flag(params, "FetchTags", False):
            out["Tags"] = self._tag_list(name)
        return out

    def _list_secrets(self, params: Mapping[str, str]) -> dict[str, Any]:
        page, size = P.page(params, 10)
        filters = P.parse_filters(params.get("Filters"))
        fetch_tags = P.flag(params, "FetchTags", False)
        with self._meta_lock:
            tags = {n: dict(t) for n, t in self._tags.items()}
        rows = []
        for info in self.backing_store.list_secrets():
            mine = tags.get(info.name, {})
            fields = {"SecretName": [info.name], "Description": [self._description(info)],
                      "TagKey": list(mine), "TagValue": list(mine.values())}
            if all(not values or set(values) & set(fields[key]) for key, values in filters):
                rows.append((info, mine))
        out_rows = []
        for info, mine in rows[(page - 1) * size : page * size]:
            row: dict[str, Any] = {"SecretName": info.name, "SecretType": info.secret_type,
                                   "CreateTime": P.iso(info.created), "UpdateTime": P.iso(info.updated)}
            if info.planned_deletion is not None:
                row["PlannedDeleteTime"] = P.iso(info.planned_deletion)
            if fetch_tags:
                row["Tags"] = {"Tag": [{"TagKey": k, "TagValue": v} for k, v in sorted(mine.items())]}
            out_rows.append(row)
        return {"PageNumber": page, "PageSize": size, "TotalCount": len(rows), "SecretList": {"Secret": out_rows}}

    def _get_random_password(self, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            length = int(params.get("PasswordLength") or 32)
        except ValueError:
            raise P.invalid("PasswordLength") from None
        policy = PasswordPolicy(
            length=length,
            exclude_characters=params.get("ExcludeCharacters") or "",
            exclude_lowercase=P.flag(params, "ExcludeLowercase", False),
            exclude_uppercase=P.flag(params, "ExcludeUppercase", False),
            exclude_numbers=P.flag(params, "ExcludeNumbers", False),
            exclude_punctuation=P.flag(params, "ExcludePunctuation", False),
            require_each_included_type=P.flag(params, "RequireEachIncludedType", True),
        )
        return {"RandomPassword": self.backing_store.random_password(policy)}

    def _create_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        version = P.version_id(self._require(params, "VersionId")[0])
        data = self._data(params)
        secret_type = params.get("SecretType") or "Generic"
        if secret_type not in P.SECRET_TYPES:
            raise P.invalid("SecretType", f" Valid values: {', '.join(sorted(P.SECRET_TYPES))}.")
        extended: dict[str, Any] | None = None
        if params.get("ExtendedConfig"):
            try:
                extended = json.loads(params["ExtendedConfig"])
            except ValueError:
                extended = None
            if not isinstance(extended, dict):
                raise P.invalid("ExtendedConfig")
        elif secret_type in P.MANAGED_TYPES:
            raise self.missing("ExtendedConfig")
        interval = None
        # KMS rotates managed types only: for a Generic secret the flag has no effect.
        if P.flag(params, "EnableAutomaticRotation", False) and secret_type in P.MANAGED_TYPES:
            if not params.get("RotationInterval"):
                raise self.missing("RotationInterval")
            interval = P.interval(params["RotationInterval"])
        info = self.backing_store.create_secret(
            name, data, version_id=version, secret_type=secret_type,
            description=params.get("Description") or "", extended_config=extended, rotation_interval=interval,
        )
        self._forget(name)  # a name used before starts without its old tags
        out: dict[str, Any] = {"Arn": P.arn(self.region, name), "SecretName": name, "VersionId": version,
                               "SecretType": info.secret_type}
        if interval is not None:
            out.update(self._rotation_fields(info))
        if extended is not None:
            out["ExtendedConfig"] = json.dumps(extended)
        return out

    def _update_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        description = params.get("Description")
        if description is not None:
            if len(description) > 8192:
                raise P.invalid("Description")
            with self._meta_lock:
                self._descriptions[name] = description
        return {"SecretName": name}

    def _managed(self, name: str, action: str) -> SecretInfo:
        info = self.backing_store.describe(name)
        if info.secret_type not in P.MANAGED_TYPES:
            raise self.error(
                "Rejected.UnsupportedOperation",
                f"{action} is not supported for Generic secrets: KMS rotates only managed secret types.",
            )
        return info

    def _update_secret_rotation_policy(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        if not params.get("EnableAutomaticRotation"):
            raise self.missing("EnableAutomaticRotation")
        enable = P.flag(params, "EnableAutomaticRotation", False)
        self._managed(name, "UpdateSecretRotationPolicy")
        if enable and not params.get("RotationInterval"):
            raise self.missing("RotationInterval")
        self.backing_store.set_rotation(name, P.interval(params["RotationInterval"]) if enable else None)
        return {"SecretName": name}

    def _rotate_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        version = P.version_id(self._require(params, "VersionId")[0])
        self._managed(name, "RotateSecret")
        current = self.backing_store.get_secret(name)
        # KMS would reset the account's password at the service; the emulator changes no
        # database, it stores the current value with a fresh AccountPassword.
        try:
            doc = json.loads(current.data) if isinstance(current.data, str) else None
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise self.error("Rejected.UnsupportedOperation", "The secret value is not a JSON object to rotate.")
        doc["AccountPassword"] = self.backing_store.random_password(PasswordPolicy())
        self.backing_store.put_secret(name, version, json.dumps(doc))
        return {"Arn": P.arn(self.region, name), "SecretName": name, "VersionId": version}

    def _delete_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        force = P.flag(params, "ForceDeleteWithoutRecovery", False)
        raw_days = params.get("RecoveryWindowInDays") or "30"
        if not raw_days.isascii() or not raw_days.isdigit() or not 7 <= int(raw_days) <= 30:
            raise P.invalid("RecoveryWindowInDays", " It must be from 7 to 30.")
        self.backing_store.delete_secret(name, recovery_window_days=int(raw_days), force=force)
        if force:
            self._forget(name)
            return {"SecretName": name, "PlannedDeleteTime": P.iso(self._now())}
        return {"SecretName": name, "PlannedDeleteTime": P.iso(self.backing_store.describe(name).planned_deletion)}

    def _restore_secret(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._name(params)
        self.backing_store.restore_secret(name)
        return {"SecretName": name}

    def _resource(self, params: Mapping[str, str]) -> str:
        if params.get("KeyId") or params.get("CertificateId"):
            raise P.invalid("KeyId", " The emulator tags secrets only.")
        return self._name(params)

    def _tag_resource(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._resource(params)
        tags = P.parse_tags(self._require(params, "Tags")[0])
        with self._meta_lock:
            merged = {**self._tags.get(name, {}), **tags}
            if len(merged) > 10:
                raise self.error("Rejected.LimitExceeded", "A secret can have at most 10 tags.")
            self._tags[name] = merged
        return {}

    def _untag_resource(self, params: Mapping[str, str]) -> dict[str, Any]:
        name = self._resource(params)
        keys = P.parse_tag_keys(self._require(params, "TagKeys")[0])
        with self._meta_lock:
            mine = self._tags.get(name, {})
            for key in keys:
                mine.pop(key, None)
        return {}


_ACTIONS: dict[str, str] = {
    "GetSecretValue": "_get_secret_value",
    "PutSecretValue": "_put_secret_value",
    "UpdateSecretVersionStage": "_update_secret_version_stage",
    "ListSecretVersionIds": "_list_secret_version_ids",
    "DescribeSecret": "_describe_secret",
    "ListSecrets": "_list_secrets",
    "GetRandomPassword": "_get_random_password",
    "CreateSecret": "_create_secret",
    "UpdateSecret": "_update_secret",
    "UpdateSecretRotationPolicy": "_update_secret_rotation_policy",
    "RotateSecret": "_rotate_secret",
    "DeleteSecret": "_delete_secret",
    "RestoreSecret": "_restore_secret",
    "TagResource": "_tag_resource",
    "UntagResource": "_untag_resource",
}


def main(argv: list[str] | None = None) -> int:
    """Command line: run an emulator until Ctrl-C or SIGTERM."""
    parser = emulator_parser("secretclient.testing.kms_emulator", __doc__, port=8100,
                             error_code="InternalFailure", throttled="Rejected.Throttling")
    parser.add_argument("--db", help="EmbeddedStore file to keep secrets in (default: memory)")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument(
        "--access-key", action="append", default=[], metavar="ID:SECRET[:TOKEN]",
        help="an accepted AccessKey pair (repeatable); with :TOKEN an STS key",
    )
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

    def describe(emu: KmsEmulator) -> list[str]:
        lines = [f"KMS emulator listening on {emu.endpoint} (region {emu.region})",
                 f"access key id: {emu.access_key_id}"]
        if not keys:  # a generated throwaway key: the user cannot know it otherwise
            lines.append(f"access key secret: {emu.access_key_secret}")
        if args.https:
            lines.append(f"CA file: {emu.ca_file}")
        return lines

    serve_until_signalled(parser, args, lambda: KmsEmulator(
        store, access_keys=keys or None, https=args.https, host=args.host, port=args.port, region=args.region,
        security_tokens=tokens,
    ), describe)
    if store is not None:
        store.close()
    print("KMS emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
