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
from typing import Any, Self

from ..errors import (
    AccessDenied,
    InvalidParameter,
    LimitExceeded,
    SecretNotFound,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    Throttled,
    VersionConflict,
)
from ..model import (
    ACS_STAGES,
    CURRENT,
    DEFAULT_PASSWORD_POLICY,
    PasswordPolicy,
    Secret,
    StageLabels,
    SecretInfo,
    VersionInfo,
)

__all__ = ["AliyunKmsStore", "kms_endpoint", "map_sdk_error"]

API_VERSION = "2016-01-20"
_ENV_AK = "ALIBABA_CLOUD_ACCESS_KEY_ID"
_ENV_SK = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
_ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
_ENV_REGION = "ALIBABA_CLOUD_REGION_ID"
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
# Actions whose request carries secret data: their server messages are never copied.
_DATA_ACTIONS = frozenset({"PutSecretValue", "CreateSecret"})


def _sdk() -> Any:
    """The SDK modules, imported lazily; a clear error when the ``kms`` extra is missing."""
    try:
        from aliyunsdkcore import client as acs_client
        from aliyunsdkcore.acs_exception import exceptions as acs_exceptions
        from aliyunsdkcore.auth import credentials as acs_credentials
        from aliyunsdkcore.http import protocol_type
        from aliyunsdkcore.request import RpcRequest
    except ImportError:
        raise InvalidParameter(
            "AliyunKmsStore needs the Alibaba Cloud SDK: pip install secretclient[kms]"
        ) from None
    return acs_client, acs_exceptions, acs_credentials, RpcRequest, protocol_type


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


# -- error mapping -------------------------------------------------------------------------

_ACCESS_CODES = (
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "InvalidAccessKeySecret",
    "InvalidSecurityToken",
    "InvalidTimeStamp",
    "IllegalTimestamp",
    "RequestTimeTooSkewed",
    "Forbidden",
    "NoPermission",
    "Unauthorized",
    "SDK.InvalidCredential",
)
_THROTTLE_CODES = ("Rejected.Throttling", "Throttling", "ServiceUnavailable.Throttling")
_INVALID_CODES = ("InvalidParameter", "Missing", "InvalidParam", "IllegalParameter",
                  "UnsupportedOperation", "Rejected.UnsupportedOperation", "SDK.InvalidParameter",
                  "SDK.InvalidRequest", "SDK.InvalidRegionId", "SDK.EndpointResolvingError")
_UNAVAILABLE_CODES = ("InternalFailure", "InternalError", "ServiceUnavailable",
                      "ServiceUnavailableTemporary", "SignatureNonceUsed")


def _matches(code: str, prefixes: Sequence[str]) -> bool:
    return code.startswith(tuple(prefixes))


def _explain(cls: type[StoreError], code: str) -> str:
    if code == "SignatureDoesNotMatch":
        return "the request signature does not match: check the AccessKey secret"
    if code.startswith("InvalidAccessKeyId"):
        return "the AccessKey ID is unknown or disabled"
    if code.startswith("InvalidSecurityToken"):
        return "the STS security token is invalid or expired"
    if code in ("IllegalTimestamp", "RequestTimeTooSkewed") or code.startswith("InvalidTimeStamp"):
        return "the request timestamp was refused: check the local clock"
    return {
        SecretNotFound: "the secret, version or stage does not exist",
        AccessDenied: "access denied: check the credentials and their RAM permissions",
        Throttled: "KMS is throttling requests",
        InvalidParameter: "KMS refused a parameter",
        VersionConflict: "the resource already exists with other content",
        LimitExceeded: "a KMS quota or limit would be exceeded",
        StoreUnavailable: "KMS failed or is unavailable",
    }.get(cls, "KMS refused the request")


def _classify(code: str, status: int | None) -> type[StoreError]:
    if code == "Forbidden.ResourceNotFound" or (
        code.endswith("NotFound") and not _matches(code, ("InvalidAccessKeyId", "Forbidden.KeyNotFound"))
    ):
        return SecretNotFound
    if _matches(code, _THROTTLE_CODES) or code.endswith("Throttling"):
        return Throttled
    if _matches(code, _ACCESS_CODES):
        return AccessDenied
    if code in ("Rejected.ResourceExist", "Rejected.StageNotOnVersion") or code.endswith(
        ("AlreadyExists", "ResourceExist")
    ):
        return VersionConflict
    if "LimitExceed" in code or "QuotaExceed" in code:
        return LimitExceeded
    if _matches(code, _INVALID_CODES):
        return InvalidParameter
    if _matches(code, _UNAVAILABLE_CODES) or (status is not None and status >= 500):
        return StoreUnavailable
    if status == 404:
        return SecretNotFound
    if status in (401, 403):
        return AccessDenied
    if status == 429:
        return Throttled
    return StoreError


def _target(action: str, name: str | None) -> str:
    return f"KMS {action}" + (f" for secret {name!r}" if name else "")


def map_sdk_error(exc: BaseException, action: str, name: str | None = None) -> StoreError:
    """Translate an ``aliyunsdkcore`` exception into our hierarchy.

    Never copies the SDK's text for connection errors (it holds the request URL) nor for
    actions that carry secret data; the server message is kept otherwise, since it names
    the parameter that is wrong.
    """
    _, acs_exceptions, _, _, _ = _sdk()
    target = _target(action, name)
    if isinstance(exc, acs_exceptions.ServerException):
        code = str(exc.get_error_code() or "SDK.UnknownServerError")
        status = exc.get_http_status()
        request_id = exc.get_request_id()
        if code == "InvalidAccessKeySecret":
            # The SDK renames the server's SignatureDoesNotMatch when its own string to
            # sign equals the server's, i.e. when only the secret can be wrong.
            code = "SignatureDoesNotMatch"
        cls = _classify(code, status)
        message = f"{target} failed: {_explain(cls, code)}"
        server_msg = str(exc.get_error_msg() or "")
        if (
            server_msg
            and action not in _DATA_ACTIONS
            and cls is not AccessDenied
            and code != "SDK.UnknownServerError"
            and len(server_msg) <= 300
        ):
            message += f" ({server_msg})"
        return cls(message, code=code, request_id=request_id, http_status=status)
    if isinstance(exc, acs_exceptions.ClientException):
        code = str(exc.get_error_code() or "SDK.ClientError")
        text = str(exc.get_error_msg() or "").lower()
        if code == "SDK.HttpError":
            if "timed out" in text or "timeout" in text:
                return StoreTimeout(f"{target} timed out", code=code)
            return StoreUnavailable(f"{target} failed: KMS could not be reached", code=code)
        cls = _classify(code, None)
        return cls(f"{target} failed in the SDK: {_explain(cls, code)}", code=code)
    return StoreError(f"{target} failed: {type(exc).__name__}", code="SDK.Unexpected")


class AliyunKmsStore:
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
        acs_client, _, acs_credentials, _, _ = _sdk()
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

        if credential is None:
            ak = access_key_id or os.environ.get(_ENV_AK)
            sk = access_key_secret or os.environ.get(_ENV_SK)
            token = security_token or (None if access_key_id else os.environ.get(_ENV_TOKEN))
            if not ak or not sk:
                raise InvalidParameter(
                    "AliyunKmsStore needs credentials: access_key_id= and access_key_secret= "
                    f"(plus security_token= for STS), credential=, or ${_ENV_AK} and ${_ENV_SK}"
                )
            if token:
                credential = acs_credentials.StsTokenCredential(ak, sk, token)
            else:
                credential = acs_credentials.AccessKeyCredential(ak, sk)
        self.access_key_id: str | None = getattr(credential, "access_key_id", None) or getattr(
            credential, "sts_access_key_id", None
        )
        self._client = acs_client.AcsClient(
            region_id=region,
            credential=credential,
            auto_retry=False,  # one attempt: SecretClient owns retries and backoff
            connect_timeout=connect_timeout,
            timeout=read_timeout,
            verify=verify,
            proxy=_proxies(self.protocol, self.host, proxy),
        )

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
        _, acs_exceptions, _, RpcRequest, protocol_type = _sdk()
        # A plain RpcRequest (not CommonRequest) so the SDK keeps its string to sign: with it
        # the SDK recognises a wrong AccessKey secret and logs no server string to sign.
        request = RpcRequest("Kms", API_VERSION, action)
        request.set_endpoint(self.host)
        request.set_method("POST")
        # The SDK tests the protocol with `is`: hand it its own constant.
        request.set_protocol_type(protocol_type.HTTPS if self.protocol == "https" else protocol_type.HTTP)
        request.set_accept_format("JSON")
        for key, value in params.items():
            if value is not None:
                request.add_query_param(key, value)
        # Secret data travels in the form body: the SDK logs query parameters and quotes
        # the URL in its connection errors.
        for key, value in (body or {}).items():
            request.add_body_params(key, value)
        error: StoreError | None = None
        try:
            # What do_action_with_exception does, minus its DEBUG log of the response body,
            # which holds SecretData.
            _, _, raw, sdk_error = self._client._implementation_of_do_action(request)
            if sdk_error is not None:
                raise sdk_error
        except (acs_exceptions.ServerException, acs_exceptions.ClientException) as exc:
            error = map_sdk_error(exc, action, name)
        except Exception as exc:  # the SDK lets some transport errors through unwrapped
            error = StoreUnavailable(f"{_target(action, name)} failed: {type(exc).__name__}", code="SDK.HttpError")
        if error is not None:
            # Raised here, outside the except clause, so that neither __cause__ nor
            # __context__ holds the SDK's exception: its text may quote the request.
            raise error
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise StoreUnavailable(f"KMS {action} answered with a body that is not JSON", code="SDK.InvalidResponse") from None
        if not isinstance(parsed, dict):
            raise StoreUnavailable(f"KMS {action} answered with unexpected JSON", code="SDK.InvalidResponse")
        return parsed

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidParameter("secret name must be a non-empty string")

    @staticmethod
    def _encode(data: str | bytes) -> tuple[str, str]:
        if isinstance(data, bytes):
            return base64.b64encode(data).decode("ascii"), "binary"
        if isinstance(data, str):
            return data, "text"
        raise InvalidParameter("secret data must be str or bytes")

    # -- SecretStore ---------------------------------------------------------------------

    def get_secret(self, name: str, *, stage: str | None = None, version_id: str | None = None) -> Secret:
        stage = self.stage_labels.label(stage) if stage is not None else None
        self._check_name(name)
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
        if stages is not None and not isinstance(stages, (str, bytes)):
            stages = [self.stage_labels.label(s) for s in stages]
        self._check_name(name)
        if not isinstance(version_id, str) or not version_id:
            raise InvalidParameter("version_id must be a non-empty string")
        if isinstance(stages, str):
            raise InvalidParameter("stages must be a list of stage names, not a string")
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
        stage = self.stage_labels.label(stage)
        self._check_name(name)
        if move_to is None and remove_from is None:
            raise InvalidParameter("update_stage needs move_to, remove_from or both")
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
        self._check_name(name)
        resp = self._call("DescribeSecret", {"SecretName": name}, name=name)
        return SecretInfo(
            name=resp.get("SecretName", name),
            secret_type=resp.get("SecretType") or "Generic",
            description=resp.get("Description") or "",
            created=_parse_time(resp.get("CreateTime")),
            updated=_parse_time(resp.get("UpdateTime")),
            automatic_rotation=resp.get("AutomaticRotation") == "Enabled",
            rotation_interval=_parse_interval(resp.get("RotationInterval")),
            last_rotation=_parse_time(resp.get("LastRotationDate")),
            next_rotation=_parse_time(resp.get("NextRotationDate")),
            arn=resp.get("Arn"),
            extended_config=_extended(resp.get("ExtendedConfig")),
        )

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

    def create_secret(
        self,
        name: str,
        data: str | bytes,
        *,
        version_id: str,
        secret_type: str = "Generic",
        description: str = "",
        extended_config: Mapping[str, Any] | None = None,
        rotation_interval: timedelta | None = None,
    ) -> SecretInfo:
        self._check_name(name)
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
            seconds = int(rotation_interval.total_seconds())
            if seconds <= 0:
                raise InvalidParameter("rotation_interval must be positive")
            params["EnableAutomaticRotation"] = "true"
            params["RotationInterval"] = f"{seconds}s"
        self._call("CreateSecret", params, name=name, body={"SecretData": payload})
        return self.describe(name)

    def delete_secret(self, name: str) -> None:
        self._check_name(name)
        self._call("DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "true"}, name=name)

    def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
