"""Secret stores: the :class:`SecretStore` protocol and its implementations.

:class:`AliyunKmsStore` imports the Alibaba Cloud SDK (the ``kms`` extra) only when one is
created, so importing it here costs nothing without the SDK.
"""

from ._open import open_store
from .aliyun import AliyunKmsStore
from .base import MAX_VERSIONS, LifecycleStore, SecretStore
from .embedded import EmbeddedStore

__all__ = ["MAX_VERSIONS", "AliyunKmsStore", "EmbeddedStore", "LifecycleStore", "SecretStore", "open_store"]
