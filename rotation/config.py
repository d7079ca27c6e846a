"""Building stores and strategies from plain settings (used by the CLI and the FC handler)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from secretclient.model import PasswordPolicy
from secretclient.stores.base import SecretStore

from .dbconn import ConnectOptions
from .errors import InvalidRotationSetup
from .passwords import DEFAULT_POLICY
from .strategies import AlternatingUsersStrategy, SingleUserStrategy, Strategy

__all__ = ["STRATEGIES", "make_strategy", "open_store"]

STRATEGIES = ("alternating", "single")


def open_store(
    spec: str,
    *,
    region: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
) -> SecretStore:
    """``embedded:PATH`` → :class:`~secretclient.EmbeddedStore`; ``kms`` → :class:`~secretclient.AliyunKmsStore`
    (credentials default to the ``ALIBABA_CLOUD_*`` environment variables)."""
    if spec.startswith("embedded:") and len(spec) > len("embedded:"):
        from secretclient.stores.embedded import EmbeddedStore

        return EmbeddedStore(spec[len("embedded:"):])
    if spec == "kms":
        from secretclient.stores.aliyun import AliyunKmsStore

        return AliyunKmsStore(
            region=region, endpoint=endpoint, access_key_id=access_key_id,
            access_key_secret=access_key_secret, security_token=security_token,
        )
    raise InvalidRotationSetup("store must be 'embedded:PATH' or 'kms'")


def make_strategy(
    kind: str = "alternating",
    *,
    name_limit: int = 32,
    grace_seconds: float = 0.0,
    master_secret: str | None = None,
    exclude_characters: str | None = None,
    password_length: int = DEFAULT_POLICY.length,
    ca_file: str | None = None,
) -> Strategy:
    """A MySQL strategy: ``alternating`` (the seed's ``_rt`` users) or ``single``."""
    policy = PasswordPolicy(
        length=password_length,
        exclude_characters=DEFAULT_POLICY.exclude_characters if exclude_characters is None else exclude_characters,
    )
    common: dict[str, Any] = {
        "master_secret": master_secret or None, "password_policy": policy, "name_limit": name_limit,
        "connect_options": ConnectOptions(ca_file=ca_file or None),
    }
    if kind == "alternating":
        return AlternatingUsersStrategy(grace=timedelta(seconds=grace_seconds), **common)
    if kind == "single":
        return SingleUserStrategy(**common)
    raise InvalidRotationSetup(f"strategy must be one of {', '.join(STRATEGIES)}")
