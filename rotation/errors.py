"""Errors raised by the rotation engine, all under :class:`secretclient.errors.SecretClientError`.

Messages name secrets, versions, accounts and steps — never passwords or secret data.
"""

from __future__ import annotations

from secretclient.errors import SecretClientError

__all__ = [
    "AccountInUse",
    "DatabaseError",
    "InvalidRotationSetup",
    "LockLost",
    "LoginFailed",
    "ProtectedAccount",
    "RdsApiError",
    "RotationConflict",
    "RotationError",
    "RotationInProgress",
    "RotationTooSoon",
    "UnsafeAccountName",
    "UnsupportedGrant",
    "UnsupportedServer",
    "VerificationFailed",
]


class RotationError(SecretClientError):
    """Base class of every rotation failure."""


class InvalidRotationSetup(RotationError):
    """The secret, the strategy or its options cannot be rotated as given; nothing was changed."""


class UnsafeAccountName(InvalidRotationSetup):
    """An account or host name fails strict validation (quotes, backticks, ``%``, spaces, length)."""


class ProtectedAccount(InvalidRotationSetup):
    """Rotating this account through a privileged (MasterSecret or RDS API) session is refused:
    it is the privileged account itself, a reserved or administrative account, or holds global
    administrative privileges. Nothing was changed; an operator may allow it explicitly
    (``allow_accounts=`` of the strategy), never the secret."""


class UnsupportedServer(InvalidRotationSetup):
    """The server's version is too old or unknown for the statements rotation needs."""


class UnsupportedGrant(InvalidRotationSetup):
    """A ``SHOW GRANTS`` line could not be parsed, so grants cannot be copied exactly."""


class RotationInProgress(RotationError):
    """Another rotator holds the lock for this secret; nothing was done."""


class LockLost(RotationError):
    """The rotation lock was lost (its connection died); the step stopped before changing more."""


class RotationTooSoon(RotationError):
    """Rotating now would reset the PREVIOUS account inside its grace period."""


class AccountInUse(RotationError):
    """The account a rotation would reset still has live sessions; nothing was changed.

    ``sessions`` maps each client host to its number of sessions (never more than the server shows).
    """

    def __init__(self, message: str, *, sessions: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.sessions: dict[str, int] = dict(sessions or {})


class LoginFailed(RotationError):
    """A login with stored credentials failed (the message says which stage and account)."""


class VerificationFailed(RotationError):
    """The pending credentials logged in but do not have the expected privileges or TLS mode."""


class DatabaseError(RotationError):
    """The database refused a statement; ``code`` holds the server's error number."""


class RdsApiError(RotationError):
    """The RDS API refused or failed a call; ``code`` holds RDS's error code (``InvalidAccountName.NotFound``)."""


class RotationConflict(RotationError):
    """The secret's stages changed under us (another rotator promoted a version); stopped safely."""
