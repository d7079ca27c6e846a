"""secretclient: cached, rotation-aware secrets and rotation-proof MySQL connections.

Start here:

- :class:`SecretClient` — the cached, rotation-aware reader applications hold (:mod:`secretclient.client`).
- :mod:`secretclient.db` — PyMySQL connections and SQLAlchemy engines that survive rotations.
- :class:`EmbeddedStore` / :class:`AliyunKmsStore` / :class:`AwsSecretsManagerStore` /
  :class:`NcpSecretManagerStore` — where secrets live (:mod:`secretclient.stores`).
- :class:`Secret`, :class:`DbCredentials` — the values (:mod:`secretclient.model`).
- :mod:`secretclient.errors` — every error, under :class:`SecretClientError`.
- :mod:`secretclient.testing` — a KMS emulator, a throwaway MariaDB and pytest fixtures.
"""

from ._default_client import get_default_client, set_default_client
from .backoff import Backoff
from .cache_policy import CachePolicy
from .client import SecretClient
from .decorators import inject_db_credentials, inject_secret
from .errors import (
    AccessDenied,
    ClientClosed,
    EncryptionKeyError,
    InvalidParameter,
    InvalidSecretContent,
    LimitExceeded,
    NoDefaultClient,
    SecretClientError,
    SecretNotFound,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    Throttled,
    VersionConflict,
)
from .model import (
    ACS_STAGES,
    AWS_STAGES,
    CURRENT,
    NCP_STAGES,
    PENDING,
    PREVIOUS,
    DbCredentials,
    PasswordPolicy,
    Secret,
    SecretInfo,
    Stage,
    StageLabels,
    VersionInfo,
    stage_labels,
)
from .stats import ClientEvent, ClientObserver, ClientStats
from .stores import (
    AliyunKmsStore,
    AwsSecretsManagerStore,
    EmbeddedStore,
    NcpSecretManagerStore,
    SecretStore,
    open_store,
)

__version__ = "0.1.0"

__all__ = [
    "ACS_STAGES",
    "AWS_STAGES",
    "CURRENT",
    "NCP_STAGES",
    "PENDING",
    "PREVIOUS",
    "AccessDenied",
    "AliyunKmsStore",
    "AwsSecretsManagerStore",
    "Backoff",
    "CachePolicy",
    "ClientClosed",
    "ClientEvent",
    "ClientObserver",
    "ClientStats",
    "DbCredentials",
    "EmbeddedStore",
    "EncryptionKeyError",
    "InvalidParameter",
    "InvalidSecretContent",
    "LimitExceeded",
    "NcpSecretManagerStore",
    "NoDefaultClient",
    "PasswordPolicy",
    "Secret",
    "SecretClient",
    "SecretClientError",
    "SecretInfo",
    "SecretNotFound",
    "SecretStore",
    "Stage",
    "StageLabels",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "Throttled",
    "VersionConflict",
    "VersionInfo",
    "get_default_client",
    "inject_db_credentials",
    "inject_secret",
    "open_store",
    "set_default_client",
    "stage_labels",
]

