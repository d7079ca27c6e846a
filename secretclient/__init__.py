"""secretclient: cached, rotation-aware secrets and rotation-proof MySQL connections.

Start here:

- :class:`EmbeddedStore` / :class:`AliyunKmsStore` — where secrets live (:mod:`secretclient.stores`).
- :class:`Secret`, :class:`DbCredentials` — the values (:mod:`secretclient.model`).
- :mod:`secretclient.errors` — every error, under :class:`SecretClientError`.
- :mod:`secretclient.testing` — a KMS emulator, a throwaway MariaDB and pytest fixtures.
"""

from .backoff import Backoff
from .errors import (
    AccessDenied,
    InvalidParameter,
    InvalidSecretContent,
    LimitExceeded,
    SecretClientError,
    SecretNotFound,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    Throttled,
    VersionConflict,
)
from .model import CURRENT, PENDING, PREVIOUS, DbCredentials, PasswordPolicy, Secret, SecretInfo, VersionInfo
from .stores import EmbeddedStore, SecretStore

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AliyunKmsStore",
    "Backoff",
    "CURRENT",
    "DbCredentials",
    "EmbeddedStore",
    "InvalidParameter",
    "InvalidSecretContent",
    "LimitExceeded",
    "PENDING",
    "PREVIOUS",
    "PasswordPolicy",
    "Secret",
    "SecretClientError",
    "SecretInfo",
    "SecretNotFound",
    "SecretStore",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "Throttled",
    "VersionConflict",
    "VersionInfo",
]


def __getattr__(name: str):  # optional extras are imported on first use
    if name == "AliyunKmsStore":
        from .stores.aliyun import AliyunKmsStore

        return AliyunKmsStore
    raise AttributeError(f"module 'secretclient' has no attribute {name!r}")
