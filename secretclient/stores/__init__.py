"""Secret stores: the :class:`SecretStore` protocol and its implementations.

:class:`AliyunKmsStore` imports the Alibaba Cloud SDK (the ``kms`` extra) and
:class:`AwsSecretsManagerStore` boto3 (the ``aws`` extra) only when one is created, so
importing them here costs nothing without the SDKs.
"""

from ._open import open_store
from .aliyun import AliyunKmsStore
from .aws import AwsSecretsManagerStore
from .base import MAX_VERSIONS, LifecycleStore, SecretStore
from .embedded import EmbeddedStore
from .ncp import NcpSecretManagerStore

__all__ = [
    "MAX_VERSIONS",
    "AliyunKmsStore",
    "AwsSecretsManagerStore",
    "EmbeddedStore",
    "LifecycleStore",
    "NcpSecretManagerStore",
    "SecretStore",
    "open_store",
]
