"""Secret stores: the :class:`SecretStore` protocol and its implementations.

:class:`AliyunKmsStore` imports the Alibaba Cloud SDK (the ``kms`` extra) only when one is
created, so importing it here costs nothing without the SDK.
"""

from .aliyun import AliyunKmsStore
from .base import MAX_VERSIONS, SecretStore
from .embedded import EmbeddedStore
from ._open import open_store

__all__ = ["MAX_VERSIONS", "AliyunKmsStore", "EmbeddedStore", "SecretStore", "open_store"]
