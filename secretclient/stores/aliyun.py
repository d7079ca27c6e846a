"""AliyunKmsStore: secrets from Alibaba Cloud KMS Secrets Manager (``aliyun-python-sdk-kms``).

The SDK is imported on first use, so ``import secretclient`` works without the ``kms``
extra. The store makes exactly one attempt per call: retries, backoff and throttling
handling belong to :class:`~secretclient.SecretClient`. Every SDK error becomes one of
:mod:`secretclient.errors` with the KMS code, request id and HTTP status; messages are
built here and never copy SDK text that could quote request parameters (the SDK puts the
whole request URL into connection errors).
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidParameter, StoreError, StoreUnavailable
from ..model import (
    ACS_STAGES,
    CURRENT,
    DEFAULT_PASSWORD_POLICY,
    PasswordPolicy,
    Secret,
    SecretInfo,
    StageLabels,
    VersionInfo,
)
from . import _aliyun_rpc as _rpc
from ._aliyun_errors import map_sdk_error
from ._checks import (
    check_name,
    check_put_stages,
    check_read,
    check_recovery_window,
    check_rotation_interval,
    check_stage_move,
    check_version_id,
    invalid,
)
from ._server_clock import ServerClock
from ._store_base import NewSecret, StoreBase

__all__ = ["MANAGED_TYPES", "NEXT_ROTATION_TAG", "AliyunKmsStore", "kms_endpoint", "map_sdk_error"]

API_VERSION = "2016-01-20"
_ENV_REGION = "ALIBABA_CLOUD_REGION_ID"
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
_ARN = re.compile(r"acs:kms:[a-z0-9-]+:\d+:secret/(.+)", re.DOTALL)
#: The tag where the rotation engine records a Generic secret's next rotation (ISO 8601, UTC):
#: KMS keeps no rotation schedule for Generic secrets, and DescribeSecret returns tags.
NEXT_ROTATION_TAG = "secretclient:NextRotation"
#: The secret types KMS rotates itself; a Generic secret is rotated by your own code.
MANAGED_TYPES = frozenset({"Rds", "Redis", "RAMCredentials", "ECS", "PolarDB"})


def _missing_sdk(reason: str) -> InvalidParameter:
    return InvalidParameter(
        f"AliyunKmsStore needs the Alibaba Cloud SDK: pip install 'secretclient-rotation[kms]' ({reason})"
    )


def _sdk() -> Any:
    """The SDK modules, imported lazily; a clear error when the ``kms`` extra is missing."""
    return _rpc.sdk(_missing_sdk)


def kms_endpoint(region: str, *, vpc: bool = False) -> str:
    """The public (``kms.<region>.aliyuncs.com``) or VPC (``kms-vpc.…``) KMS host of a region."""
    return f"kms{'-vpc' if vpc else ''}.{region}.aliyuncs.com"


def _split_endpoint(endpoint: str, protocol: str | None) -> tuple[str, str]:
    """``(scheme, host[:port])`` from ``https://h:p``, ``http://h``, ``h:p`` or ``h``."""
    m = re.fullmatch(r"(?:(https?)://)?([^/?#\s]+)/?", endpoint.strip())
    if not m:
        raise InvalidParameter(
            "endpoint must be a host, host:port or http(s)://host[:port] without a path"
        )
    scheme = m.group(1)
    if scheme and protocol and scheme != protocol:
        raise InvalidParameter(f"endpoint says {scheme} but protocol={protocol!r}; give one of them")
    return scheme or protocol or "https", m.group(2)


def _host_of(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[: host_port.index("]") + 1]
    return host_port.rsplit(":", 1)[0] if host_port.count(":") == 1 else host_port


def _proxies(scheme: str, host_port: str, proxy: str | bool) -> dict[str, str | None]:
    """The proxy mapping handed to the SDK.

    The SDK reads HTTP(S)_PROXY but ignores NO_PROXY, and an empty mapping makes it read
    them again; ``{"all": None}`` is the SDK's (requests') way to say "no proxy".
    """
    if proxy is False:
        return {"all": None}
    if isinstance(proxy, str):
        return {"http": proxy, "https": proxy}
    host = _host_of(host_port)
    if host in _LOOPBACK or urllib.request.proxy_bypass(host.strip("[]")):
        return {"all": None}
    found = urllib.request.getproxies_environment().get(scheme)
    return {scheme: found} if found else {"all": None}


def _parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_interval(value: Any) -> timedelta | None:
    """KMS intervals: ``604800s``, ``7d``, ``12h``, ``30m`` (plain numbers are seconds)."""
    if value in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*([dhms]?)\s*", str(value))
    if not m:
        return None
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[m.group(2)]
    return timedelta(seconds=int(m.group(1)) * unit)


def _stage_list(value: Any) -> frozenset[str]:
    """``{"VersionStage": [...]}`` (what KMS sends) or a plain list."""
    if isinstance(value, Mapping):
        value = value.get("VersionStage", [])
    if isinstance(value, str):
        value = [value]
    return frozenset(str(s) for s in (value or []))


def _extended(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


class AliyunKmsStore(StoreBase):
    """A :class:`~secretclient.stores.SecretStore` on Alibaba Cloud KMS Secrets Manager.

    :param region: the region id (default: ``$ALIBABA_CLOUD_REGION_ID``).
    :param endpoint: where to send requests: a host (``kms.cn-hangzhou.aliyuncs.com``, a
        KMS instance endpoint, ``127.0.0.1:8100``) or a URL ``http(s)://host[:port]``.
        Default: the region's public endpoint, or the VPC one with ``vpc=True``.
    :param protocol: ``"https"`` (the default) or ``"http"``, when ``endpoint`` has no scheme.
    :param verify: TLS verification: ``True``, ``False`` or a CA bundle path. ``None`` keeps
        the SDK's choice (``$ALIBABA_CLOUD_CA_BUNDLE`` or the system store).
    :param access_key_id, access_key_secret, security_token: an AccessKey pair, with a
        token for STS credentials. Default: ``$ALIBABA_CLOUD_ACCESS_KEY_ID``,
        ``$ALIBABA_CLOUD_ACCESS_KEY_SECRET`` and ``$ALIBABA_CLOUD_SECURITY_TOKEN``.
    :param credential: any ``aliyunsdkcore.auth.credentials`` object instead (ECS RAM role,
        RAM role ARN, …).
    :param connect_timeout, read_timeout: seconds.
    :param proxy: ``True`` (default) uses ``HTTP(S)_PROXY`` but honours ``NO_PROXY`` and
        never proxies loopback; ``False`` never uses a proxy; a URL uses that proxy.
    """

    #: Alibaba KMS labels; a :class:`~secretclient.model.Stage` role is accepted wherever a label is.
    stage_labels: StageLabels = ACS_STAGES

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        vpc: bool = False,
        protocol: str | None = None,
        verify: bool | str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        security_token: str | None = None,
        credential: Any = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 5.0,
        proxy: str | bool = True,
    ) -> None:
        _sdk()
        region = region or os.environ.get(_ENV_REGION)
        if not region or not re.fullmatch(r"[a-zA-Z0-9_-]+", region):
            raise InvalidParameter(
                "AliyunKmsStore needs region= (e.g. 'cn-hangzhou') or $ALIBABA_CLOUD_REGION_ID"
            )
        if protocol not in (None, "http", "https"):
            raise InvalidParameter("protocol must be 'http' or 'https'")
        for label, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidParameter(f"{label} must be a positive number of seconds")
        self.region = region
        self.protocol, self.host = _split_endpoint(endpoint or kms_endpoint(region, vpc=vpc), protocol)
        # KMS endpoints have no port: a scheme-less host:port is usually a local emulator over
        # HTTP, which an HTTPS request cannot reach; connection errors say so.
        self._https_hint = (
            f"; endpoint {self.host!r} has no scheme and is reached over HTTPS: for a plain-HTTP "
            f"endpoint write http://{self.host}"
            if endpoint and protocol is None and "://" not in endpoint and _host_of(self.host) != self.host
            else ""
        )
        credential = _rpc.credential(
            access_key_id, access_key_secret, security_token, credential,
            missing=lambda reason: InvalidParameter(f"AliyunKmsStore: {reason}"),
        )
        self.access_key_id: str | None = getattr(credential, "access_key_id", None) or getattr(
            credential, "sts_access_key_id", None
        )
        self._client = _rpc.make_client(
            region,
            credential,
            missing=_missing_sdk,
            auto_retry=False,  # one attempt: SecretClient owns retries and backoff
            connect_timeout=connect_timeout,
            timeout=read_timeout,
            verify=verify,
            proxy=_proxies(self.protocol, self.host, proxy),
        )
        self._server_clock = ServerClock()

    def __repr__(self) -> str:
        return f"AliyunKmsStore(region={self.region!r}, endpoint='{self.protocol}://{self.host}')"

    @property
    def acs_client(self) -> Any:
        """The underlying ``AcsClient`` (for calls this store does not wrap)."""
        return self._client

    # -- plumbing ------------------------------------------------------------------------

    def _call(
        self,
        action: str,
        params: Mapping[str, Any],
        *,
        name: str | None = None,
        body: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        sdk = _sdk()
        # A plain RpcRequest (not CommonRequest) so the SDK keeps its string to sign: with it
        # the SDK recognises a wrong AccessKey secret and logs no server string to sign.
        request = sdk.RpcRequest("Kms", API_VERSION, action)
        request.set_endpoint(self.host)
        request.set_method("POST")
        # The SDK tests the protocol with `is`: hand it its own constant.
        request.set_protocol_type(sdk.protocol_type.HTTPS if self.protocol == "https" else sdk.protocol_type.HTTP)
        request.set_accept_format("JSON")
        for key, value in params.items():
            if value is not None:
                request.add_query_param(key, value)
        # Secret data travels in the form body: the SDK logs query parameters and quotes
        # the URL in its connection errors.
        for key, value in (body or {}).items():
            request.add_body_params(key, value)
        return _rpc.call(
            self._client, request, lambda exc: self._error(exc, action, name), on_date=self._server_clock.observe
        )

    def _error(self, exc: BaseException, action: str, name: str | None) -> StoreError:
        error = map_sdk_error(exc, action, name)
        if self._https_hint and type(error) is StoreUnavailable and error.code == "SDK.HttpError":
            return StoreUnavailable(error.message + self._https_hint, code=error.code)
        return error

    def server_time(self) -> datetime | None:
        """KMS's time: the ``Date`` of its last answer plus the monotonic time since (one-second
        resolution); None before any answer."""
        return self._server_clock.now()

    @staticmethod
    def _check_name(name: Any) -> None:
        """A secret name, or its ARN ``acs:kms:<region>:<account>:secret/<name>`` (KMS takes both)."""
        m = _ARN.fullmatch(name) if isinstance(name, str) else None
        check_name(m.group(1) if m else name)

    @staticmethod
    def _encode(data: str | bytes) -> tuple[str, str]:
        if isinstance(data, bytes):
            return base64.b64encode(data).decode("ascii"), "binary"
        if isinstance(data, str):
            return data, "text"
        raise InvalidParameter("secret data must be str or bytes")

    # -- SecretStore ---------------------------------------------------------------------

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        self._check_name(name)
        stage = check_read(self.stage_labels, stage, version_id)
        resp = self._call(
            "GetSecretValue",
            {"SecretName": name, "VersionId": version_id, "VersionStage": stage, "FetchExtendedConfig": "true"},
            name=name,
        )
        data: str | bytes = resp.get("SecretData", "")
        if resp.get("SecretDataType") == "binary":
            try:
                data = base64.b64decode(str(data), validate=True)
            except ValueError:
                raise StoreError(
                    f"KMS returned binary data for secret {name!r} that is not base64", code="SDK.InvalidResponse"
                ) from None
        return Secret(
            name=resp.get("SecretName", name),
            version_id=str(resp.get("VersionId", "")),
            stages=_stage_list(resp.get("VersionStages")),
            data=data,
            created=_parse_time(resp.get("CreateTime")),
            secret_type=resp.get("SecretType") or "Generic",
            extended_config=_extended(resp.get("ExtendedConfig")),
        )

    def put_secret(
        self, name: str, version_id: str, data: str | bytes, *, stages: Sequence[str] | None = None
    ) -> VersionInfo:
        self._check_name(name)
        check_version_id(version_id)
        stages = check_put_stages(self.stage_labels, stages)
        payload, data_type = self._encode(data)
        params: dict[str, Any] = {"SecretName": name, "VersionId": version_id, "SecretDataType": data_type}
        if stages is not None:
            params["VersionStages"] = json.dumps(list(stages))
        resp = self._call("PutSecretValue", params, name=name, body={"SecretData": payload})
        got = _stage_list(resp.get("VersionStages"))
        return VersionInfo(version_id, got or frozenset(stages if stages is not None else [CURRENT]))

    def update_stage(
        self, name: str, stage: str, *, move_to: str | None = None, remove_from: str | None = None
    ) -> None:
        self._check_name(name)
        stage = check_stage_move(self.stage_labels, stage, move_to, remove_from)
        self._call(
            "UpdateSecretVersionStage",
            {"SecretName": name, "VersionStage": stage, "MoveToVersion": move_to, "RemoveFromVersion": remove_from},
            name=name,
        )

    def list_versions(self, name: str, *, include_deprecated: bool = False) -> list[VersionInfo]:
        self._check_name(name)
        out: list[VersionInfo] = []
        page = 1
        while True:
            resp = self._call(
                "ListSecretVersionIds",
                {
                    "SecretName": name,
                    "IncludeDeprecated": "true" if include_deprecated else "false",
                    "PageNumber": str(page),
                    "PageSize": "100",
                },
                name=name,
            )
            items = (resp.get("VersionIds") or {}).get("VersionId") or []
            for item in items:
                out.append(
                    VersionInfo(
                        str(item.get("VersionId")),
                        _stage_list(item.get("VersionStages")),
                        _parse_time(item.get("CreateTime")),
                    )
                )
            total = int(resp.get("TotalCount") or 0)
            if not items or len(out) >= total or page >= 100:
                break
            page += 1
        out.sort(key=lambda v: v.created or datetime.min.replace(tzinfo=UTC), reverse=True)
        return out

    def describe(self, name: str) -> SecretInfo:
        """Metadata. For a secret KMS does not rotate (Generic), ``next_rotation`` comes from
        the :data:`NEXT_ROTATION_TAG` tag the rotation engine records (same request)."""
        self._check_name(name)
        resp = self._call("DescribeSecret", {"SecretName": name, "FetchTags": "true"}, name=name)
        tags = {
            str(t.get("TagKey")): str(t.get("TagValue"))
            for t in ((resp.get("Tags") or {}).get("Tag") or [])
            if isinstance(t, Mapping)
        }
        next_rotation = _parse_time(resp.get("NextRotationDate")) or _parse_time(tags.get(NEXT_ROTATION_TAG))
        return SecretInfo(
            name=resp.get("SecretName", name),
            secret_type=resp.get("SecretType") or "Generic",
            description=resp.get("Description") or "",
            created=_parse_time(resp.get("CreateTime")),
            updated=_parse_time(resp.get("UpdateTime")),
            automatic_rotation=resp.get("AutomaticRotation") == "Enabled",
            rotation_interval=_parse_interval(resp.get("RotationInterval")),
            last_rotation=_parse_time(resp.get("LastRotationDate")),
            next_rotation=next_rotation,
            arn=resp.get("Arn"),
            extended_config=_extended(resp.get("ExtendedConfig")),
            planned_deletion=_parse_time(resp.get("PlannedDeleteTime")),
        )

    def record_next_rotation(self, name: str, when: datetime | None) -> None:
        """Record when the rotation engine will next rotate ``name`` (``None``: no schedule)
        in its :data:`NEXT_ROTATION_TAG` tag, which :meth:`describe` reads back. For secrets
        KMS does not rotate itself, so that clients learn of a rotation in time."""
        self._check_name(name)
        if when is None:
            self._call("UntagResource", {"SecretName": name, "TagKeys": json.dumps([NEXT_ROTATION_TAG])}, name=name)
            return
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise invalid("when must be a timezone-aware datetime (or None)")
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tags = json.dumps([{"TagKey": NEXT_ROTATION_TAG, "TagValue": stamp}])
        self._call("TagResource", {"SecretName": name, "Tags": tags}, name=name)

    def list_secrets(self) -> list[SecretInfo]:
        """Every secret's name, type, times and planned deletion (``ListSecrets``, all pages)."""
        out: list[SecretInfo] = []
        page = 1
        while True:
            resp = self._call("ListSecrets", {"PageNumber": str(page), "PageSize": "100"})
            items = (resp.get("SecretList") or {}).get("Secret") or []
            for item in items:
                out.append(
                    SecretInfo(
                        name=str(item.get("SecretName")),
                        secret_type=item.get("SecretType") or "Generic",
                        created=_parse_time(item.get("CreateTime")),
                        updated=_parse_time(item.get("UpdateTime")),
                        planned_deletion=_parse_time(item.get("PlannedDeleteTime")),
                    )
                )
            if not items or len(out) >= int(resp.get("TotalCount") or 0) or page >= 1000:
                break
            page += 1
        out.sort(key=lambda info: info.name)  # the contract's order, whatever the server's
        return out

    def random_password(self, policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY) -> str:
        def flag(value: bool) -> str:
            return "true" if value else "false"

        resp = self._call(
            "GetRandomPassword",
            {
                "PasswordLength": str(policy.length),
                "ExcludeCharacters": policy.exclude_characters or None,
                "ExcludeLowercase": flag(policy.exclude_lowercase),
                "ExcludeUppercase": flag(policy.exclude_uppercase),
                "ExcludeNumbers": flag(policy.exclude_numbers),
                "ExcludePunctuation": flag(policy.exclude_punctuation),
                "RequireEachIncludedType": flag(policy.require_each_included_type),
            },
        )
        password = resp.get("RandomPassword")
        if not isinstance(password, str) or not password:
            raise StoreError("KMS GetRandomPassword returned no password", code="SDK.InvalidResponse")
        return password

    def _create(self, new: NewSecret) -> SecretInfo:
        """``rotation_interval`` turns on KMS's own rotation, which exists for managed types
        only (:data:`MANAGED_TYPES`, with their ``extended_config``); KMS ignores it for a
        Generic secret, so it is refused here: rotate those with the rotation engine.
        """
        name, data, version_id, secret_type, description, extended_config, rotation_interval = new
        self._check_name(name)
        check_version_id(version_id)
        check_rotation_interval(rotation_interval)
        if rotation_interval is not None and secret_type not in MANAGED_TYPES:
            raise invalid(
                f"KMS does not rotate {secret_type} secrets (only {', '.join(sorted(MANAGED_TYPES))}): "
                "leave rotation_interval out and rotate with the rotation engine (rotation.Scheduler)"
            )
        payload, data_type = self._encode(data)
        params: dict[str, Any] = {
            "SecretName": name,
            "VersionId": version_id,
            "SecretDataType": data_type,
            "SecretType": secret_type,
            "Description": description or None,
            "ExtendedConfig": json.dumps(dict(extended_config)) if extended_config is not None else None,
        }
        if rotation_interval is not None:
            params["EnableAutomaticRotation"] = "true"
            params["RotationInterval"] = f"{int(rotation_interval.total_seconds())}s"
        self._call("CreateSecret", params, name=name, body={"SecretData": payload})
        return self.describe(name)

    def delete_secret(self, name: str, *, recovery_window_days: int | None = 30, force: bool = False) -> None:
        """Schedule ``name`` for deletion in ``recovery_window_days`` (7-30, ``None``: 30) or,
        with ``force=True``, delete it and every version at once (no recovery). Meanwhile KMS
        refuses to read or write it or to create its name again; :meth:`restore_secret`
        brings it back."""
        self._check_name(name)
        check_recovery_window(recovery_window_days, force)
        params = {"SecretName": name}
        if force:
            params["ForceDeleteWithoutRecovery"] = "true"
        else:
            params["RecoveryWindowInDays"] = str(recovery_window_days or 30)
        self._call("DeleteSecret", params, name=name)

    def restore_secret(self, name: str) -> None:
        """Cancel the scheduled deletion of ``name`` (``RestoreSecret``)."""
        self._check_name(name)
        self._call("RestoreSecret", {"SecretName": name}, name=name)

    def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()
