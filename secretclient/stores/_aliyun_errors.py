"""KMS error codes -> our error hierarchy, and the messages that say what to fix.

Used by :class:`~secretclient.stores.aliyun.AliyunKmsStore` through
:func:`map_sdk_error`; the codes are those KMS and the Alibaba Cloud API gateway document.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import errors
from ._aliyun_rpc import BadResponse, sdk, server_text

__all__ = ["DATA_ACTIONS", "classify", "map_sdk_error"]

#: Actions whose request carries secret data: their server messages are never copied.
DATA_ACTIONS = frozenset({"PutSecretValue", "CreateSecret", "UpdateSecret"})

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
                  "SDK.InvalidRequest", "SDK.InvalidRegionId", "SDK.EndpointResolvingError",
                  "DryRunOperationError")
_UNAVAILABLE_CODES = ("InternalFailure", "InternalError", "ServiceUnavailable",
                      "ServiceUnavailableTemporary", "SignatureNonceUsed")
_CONFLICT_CODES = frozenset({"Rejected.ResourceExist", "Rejected.StageNotOnVersion"})
_IN_DELETE_WINDOW = "Rejected.ResourceInDeleteWindow"


def _matches(code: str, prefixes: Sequence[str]) -> bool:
    return code.startswith(tuple(prefixes))


def _explain(cls: type[errors.StoreError], code: str) -> str:
    if code == "SignatureDoesNotMatch":
        return "the request signature does not match: check the AccessKey secret"
    if code.startswith("InvalidAccessKeyId"):
        return "the AccessKey ID is unknown or disabled"
    if code.startswith("InvalidSecurityToken"):
        return "the STS security token is invalid or expired"
    if code in ("IllegalTimestamp", "RequestTimeTooSkewed") or code.startswith("InvalidTimeStamp"):
        return "the request timestamp was refused: check the local clock"
    if code == _IN_DELETE_WINDOW:
        return "the secret is scheduled for deletion: restore it (restore_secret) or wait for the window to end"
    return {
        errors.SecretNotFound: "the secret, version or stage does not exist",
        errors.AccessDenied: "access denied: check the credentials and their RAM permissions",
        errors.Throttled: "KMS is throttling requests",
        errors.InvalidParameter: "KMS refused a parameter",
        errors.VersionConflict: "the resource already exists with other content",
        errors.LimitExceeded: "a KMS quota or limit would be exceeded",
        errors.StoreUnavailable: "KMS failed or is unavailable",
    }.get(cls, "KMS refused the request")


def classify(code: str, status: int | None, action: str = "") -> type[errors.StoreError]:
    """Our error class for a KMS ``code`` (and HTTP status when the code is unknown)."""
    if code == _IN_DELETE_WINDOW:  # the name is taken for CreateSecret, gone for the rest
        return errors.VersionConflict if action == "CreateSecret" else errors.SecretNotFound
    if code == "Forbidden.ResourceNotFound" or (
        code.endswith("NotFound") and not _matches(code, ("InvalidAccessKeyId", "Forbidden.KeyNotFound"))
    ):
        return errors.SecretNotFound
    if _matches(code, _THROTTLE_CODES) or code.endswith("Throttling"):
        return errors.Throttled
    if _matches(code, _ACCESS_CODES):
        return errors.AccessDenied
    if code in _CONFLICT_CODES or code.endswith(("AlreadyExists", "ResourceExist")):
        return errors.VersionConflict
    if "LimitExceed" in code or "QuotaExceed" in code:
        return errors.LimitExceeded
    if _matches(code, _INVALID_CODES):
        return errors.InvalidParameter
    if _matches(code, _UNAVAILABLE_CODES) or (status is not None and status >= 500):
        return errors.StoreUnavailable
    if status == 404:
        return errors.SecretNotFound
    if status in (401, 403):
        return errors.AccessDenied
    if status == 429:
        return errors.Throttled
    return errors.StoreError


def target(action: str, name: str | None) -> str:
    """``KMS GetSecretValue for secret 'db/app'``: how our messages name a call."""
    return f"KMS {action}" + (f" for secret {name!r}" if name else "")


def map_sdk_error(exc: BaseException, action: str, name: str | None = None) -> errors.StoreError:
    """Translate an ``aliyunsdkcore`` exception (or a :class:`BadResponse`) into our hierarchy.

    Never copies the SDK's text for connection errors (it holds the request URL) nor for
    actions that carry secret data; the server message is kept otherwise (capped), since it
    names the parameter that is wrong.
    """
    where = target(action, name)
    if isinstance(exc, BadResponse):
        return errors.StoreUnavailable(f"{where} failed: KMS {exc}", code="SDK.InvalidResponse")
    acs_exceptions = sdk(errors.InvalidParameter).exceptions
    if isinstance(exc, acs_exceptions.ServerException):
        code = str(exc.get_error_code() or "SDK.UnknownServerError")
        status = exc.get_http_status()
        if code == "InvalidAccessKeySecret":
            # The SDK renames the server's SignatureDoesNotMatch when its own string to
            # sign equals the server's, i.e. when only the secret can be wrong.
            code = "SignatureDoesNotMatch"
        cls = classify(code, status, action)
        message = f"{where} failed: {_explain(cls, code)}"
        text = server_text(exc)
        if text and action not in DATA_ACTIONS and cls is not errors.AccessDenied and code != "SDK.UnknownServerError":
            message += f" ({text})"
        return cls(message, code=code, request_id=exc.get_request_id(), http_status=status)
    if isinstance(exc, acs_exceptions.ClientException):
        code = str(exc.get_error_code() or "SDK.ClientError")
        text = str(exc.get_error_msg() or "").lower()
        if code == "SDK.HttpError":
            if "timed out" in text or "timeout" in text:
                return errors.StoreTimeout(f"{where} timed out", code=code)
            return errors.StoreUnavailable(f"{where} failed: KMS could not be reached", code=code)
        cls = classify(code, None)
        return cls(f"{where} failed in the SDK: {_explain(cls, code)}", code=code)
    return errors.StoreUnavailable(f"{where} failed: {type(exc).__name__}", code="SDK.HttpError")
