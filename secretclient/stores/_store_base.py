"""What the project's stores share above their own API calls: ``create_secret`` as the store
contract spells it (each store implements :meth:`StoreBase._create`), and ``with store:``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NamedTuple, Self

from ..model import SecretInfo

__all__ = ["NewSecret", "StoreBase"]


class NewSecret(NamedTuple):
    """The arguments of one ``create_secret`` call, its ``version_id`` filled in."""

    name: str
    data: str | bytes
    version_id: str
    secret_type: str
    description: str
    extended_config: Mapping[str, Any] | None
    rotation_interval: timedelta | None


class StoreBase:
    """Base of the stores: the contract's ``create_secret`` once, and a context manager that closes."""

    def create_secret(
        self,
        name: str,
        data: str | bytes,
        *,
        version_id: str | None = None,
        secret_type: str = "Generic",
        description: str = "",
        extended_config: Mapping[str, Any] | None = None,
        rotation_interval: timedelta | None = None,
    ) -> SecretInfo:
        """Create ``name`` with a first, CURRENT version (``version_id``, default a random one,
        as KMS's console does); ``rotation_interval`` turns the store's automatic rotation on.
        What a store refuses is said at its ``_create``."""
        version_id = uuid.uuid4().hex if version_id is None else version_id
        return self._create(
            NewSecret(name, data, version_id, secret_type, description, extended_config, rotation_interval)
        )

    def _create(self, new: NewSecret) -> SecretInfo:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
