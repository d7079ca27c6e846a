"""botocore errors -> :mod:`secretclient.errors`, for :class:`~secretclient.stores.aws.AwsSecretsManagerStore`.

Messages are built here. The server's message is kept only for calls that carry no secret
data and for codes whose text names a parameter; botocore's own text (which may quote a
parameter value, e.g. ``ParamValidationError``) is never copied.
"""

from __future__ import annotations

from .. import errors

__all__ = ["DATA_OPERATIONS", "map_aws_error"]

#: Operations whose request or response carries secret data: their server text is never copied.
DATA_OPERATIONS = frozenset({"PutSecretValue", "CreateSecret", "GetSecretValue", "GetRandomPassword"})

_CODES: dict[str, type[errors.StoreError]] = {
    "ResourceNotFoundException": errors.SecretNotFound,
    "ThrottlingException": errors.Throttled,
    "Throttling": errors.Throttled,
    "TooManyRequestsException": errors.Throttled,
    "RequestLimitExceeded": errors.Throttled,
    "InternalServiceError": errors.StoreUnavailable,
    "InternalFailure": errors.StoreUnavailable,
    "ServiceUnavailable": errors.StoreUnavailable,
    # A KMS key the caller may not use, or one that is disabled: not retryable.
    "DecryptionFailure": errors.AccessDenied,
    "EncryptionFailure": errors.AccessDenied,
    "AccessDeniedException": errors.AccessDenied,
    "UnrecognizedClientException": errors.AccessDenied,
    "InvalidClientTokenId": errors.AccessDenied,
    "InvalidSignatureException": errors.AccessDenied,
    "SignatureDoesNotMatch": errors.AccessDenied,
    "IncompleteSignature": errors.AccessDenied,
    "MissingAuthenticationToken": errors.AccessDenied,
    "ExpiredTokenException": errors.AccessDenied,
    "ExpiredToken": errors.AccessDenied,
    "InvalidRequestException": errors.InvalidParameter,
    "InvalidParameterException": errors.InvalidParameter,
    "InvalidParameterValue": errors.InvalidParameter,
    "ValidationException": errors.InvalidParameter,
    "InvalidNextTokenException": errors.InvalidParameter,
    "MalformedPolicyDocumentException": errors.InvalidParameter,
    "PreconditionNotMetException": errors.InvalidParameter,
    "ResourceExistsException": errors.VersionConflict,
    "LimitExceededException": errors.LimitExceeded,
}

_EXPLAIN: dict[type[errors.StoreError], str] = {
    errors.SecretNotFound: "the secret, version or stage does not exist",
    errors.Throttled: "Secrets Manager is throttling requests",
    errors.StoreUnavailable: "Secrets Manager failed or is unavailable",
    errors.AccessDenied: "access denied: check the AWS credentials, their IAM permissions and the secret's KMS key",
    errors.InvalidParameter: "Secrets Manager refused a parameter",
    errors.VersionConflict: "the resource already exists with other content",
    errors.LimitExceeded: "a Secrets Manager quota would be exceeded",
}

# Codes whose server text only names parameters, versions or labels (never values).
_KEEP_TEXT = frozenset({"InvalidRequestException", "InvalidParameterException", "ValidationException",
                        "InvalidParameterValue", "LimitExceededException", "DecryptionFailure"})


def _classify(code: str, status: int | None) -> type[errors.StoreError]:
    if code in _CODES:
        return _CODES[code]
    if status is not None and status >= 500:
        return errors.StoreUnavailable
    by_status = {404: errors.SecretNotFound, 401: errors.AccessDenied, 403: errors.AccessDenied, 429: errors.Throttled}
    return by_status.get(status or 0, errors.StoreError)


def _target(operation: str, name: str | None) -> str:
    return f"Secrets Manager {operation}" + (f" for secret {name!r}" if name else "")


def is_marked_deleted(code: str, message: str) -> bool:
    """Whether an ``InvalidRequestException`` says the secret is scheduled for deletion."""
    return code == "InvalidRequestException" and "deleted" in message.lower()


def map_aws_error(exc: BaseException, operation: str, name: str | None = None) -> errors.StoreError:
    """Translate a botocore exception raised by ``operation`` into our hierarchy."""
    from botocore import exceptions as bce

    target = _target(operation, name)
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {}) or {}
        meta = exc.response.get("ResponseMetadata", {}) or {}
        code = str(err.get("Code") or "Unknown")
        server_msg = str(err.get("Message") or "")
        status = meta.get("HTTPStatusCode")
        request_id = meta.get("RequestId") or None
        if is_marked_deleted(code, server_msg):
            return errors.SecretNotFound(
                f"{target} failed: the secret is scheduled for deletion (RestoreSecret undoes that)",
                code=code, request_id=request_id, http_status=status,
            )
        cls = _classify(code, status)
        message = f"{target} failed: {_EXPLAIN.get(cls, 'Secrets Manager refused the request')}"
        if code in _KEEP_TEXT and operation not in DATA_OPERATIONS and server_msg and len(server_msg) <= 300:
            message += f" ({' '.join(server_msg.split())})"
        return cls(message, code=code, request_id=request_id, http_status=status)
    if isinstance(exc, (bce.ReadTimeoutError, bce.ConnectTimeoutError)):
        return errors.StoreTimeout(f"{target} timed out", code=type(exc).__name__)
    if isinstance(exc, (bce.EndpointConnectionError, bce.ConnectionClosedError, bce.HTTPClientError)):
        return errors.StoreUnavailable(
            f"{target} failed: Secrets Manager could not be reached", code=type(exc).__name__
        )
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return errors.AccessDenied(f"{target} failed: no AWS credentials were found", code=type(exc).__name__)
    if isinstance(exc, bce.ParamValidationError):
        return errors.InvalidParameter(f"{target} failed: botocore refused a parameter", code="ParamValidationError")
    if isinstance(exc, bce.BotoCoreError):
        return errors.StoreError(f"{target} failed: {type(exc).__name__}", code=type(exc).__name__)
    return errors.StoreError(f"{target} failed: {type(exc).__name__}", code="Unexpected")
