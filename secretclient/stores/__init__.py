"""Secret stores: the :class:`SecretStore` protocol and its implementations."""

from .base import MAX_VERSIONS, SecretStore
from .embedded import EmbeddedStore

__all__ = ["SecretStore", "EmbeddedStore", "AliyunKmsStore", "MAX_VERSIONS"]


def __getattr__(name: str):  # the KMS SDK is an optional extra: import it on first use
    if name == "AliyunKmsStore":
        from .aliyun import AliyunKmsStore

        return AliyunKmsStore
    raise AttributeError(name)
