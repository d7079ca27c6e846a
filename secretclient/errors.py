"""One error hierarchy for everything secretclient and rotation raise.

Every error carries the backend's code (``Forbidden.ResourceNotFound``), the request id
and the HTTP status when there is one. Messages name secrets, versions and fields, never
secret values.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ClientClosed",
    "EncryptionKeyError",
    "InvalidParameter",
    "InvalidSecretContent",
    "LimitExceeded",
    "NoDefaultClient",
    "SecretClientError",
    "SecretNotFound",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "Throttled",
    "VersionConflict",
]


class SecretClientError(Exception):
    """Base class of every error raised by secretclient and rotation."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        extra = []
        if self.code:
            extra.append(f"code={self.code}")
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, request_id={self.request_id!r})"


class StoreError(SecretClientError):
    """A secret store refused or failed a request."""

    #: Whether retrying the same request later may succeed.
    retryable: bool = False


class SecretNotFound(StoreError):
    """The secret, the version or the stage does not exist (KMS ``Forbidden.ResourceNotFound``)."""


class AccessDenied(StoreError):
    """Credentials are wrong or lack permission (bad signature, unknown AccessKey, no permission)."""


class Throttled(StoreError):
    """The store asks us to slow down (KMS ``Rejected.Throttling``)."""

    retryable = True


class StoreUnavailable(StoreError):
    """The store could not be reached or failed internally (network error, 5xx)."""

    retryable = True


class StoreTimeout(StoreUnavailable):
    """The store did not answer in time."""


class InvalidParameter(StoreError):
    """A request parameter is invalid; the message says which one and why."""


class VersionConflict(StoreError):
    """A version with this VersionId already exists with other data, or a stage move lost a race."""


class LimitExceeded(StoreError):
    """A store limit (versions, labels, secrets) would be exceeded."""


class InvalidSecretContent(SecretClientError):
    """The secret's value does not have the expected shape (e.g. not database credentials).

    The message names the field that is wrong, never its value.
    """


class ClientClosed(SecretClientError):
    """The :class:`~secretclient.client.SecretClient` was closed; create a new one."""


class NoDefaultClient(SecretClientError):
    """No default client was set: call ``set_default_client(SecretClient(...))`` at start-up,
    or pass a client explicitly."""


class EncryptionKeyError(SecretClientError):
    """The key given to :class:`~secretclient.stores.EmbeddedStore` is malformed or does not
    open this file."""
