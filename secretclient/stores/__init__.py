"""Secret stores: the :class:`SecretStore` protocol and its implementations.

:class:`AliyunKmsStore` imports the Alibaba Cloud SDK (the ``kms`` extra) and
:class:`AwsSecretsManagerStore` boto3 (the ``aws`` extra) only when one is created, so
importing them here costs nothing without the SDKs.
"""

from .aliyun import AliyunKmsStore
from .aws import AwsSecretsManagerStore
from .base import MAX_VERSIONS, SecretStore
from .embedded import EmbeddedStore
from ._open import open_store
from .ncp import NcpSecretManagerStore

__all__ = [
    "MAX_VERSIONS",
    "AliyunKmsStore",
    "AwsSecretsManagerStore",
    "EmbeddedStore",
    "NcpSecretManagerStore",
    "SecretStore",
    "open_store",
]
