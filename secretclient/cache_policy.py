"""How a :class:`~secretclient.client.SecretClient` caches: one frozen, validated object.

``SecretClient(store, policy=CachePolicy(ttl=600))`` and ``SecretClient(store, ttl=600)`` are
the same: keyword arguments of the client override fields of ``policy``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .backoff import Backoff
from .errors import InvalidParameter

__all__ = ["DEFAULT_BACKOFF", "CachePolicy"]

#: Between failed store calls for one key: up to 1 s, then 2, 4, ... at most 60 s (full jitter).
DEFAULT_BACKOFF = Backoff(base=1.0, cap=60.0)


def _seconds(what: str, value: Any, *, positive: bool = False, finite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidParameter(f"{what} must be a number of seconds")
    if value < 0 or (positive and value == 0) or (finite and math.isinf(value)):
        bound = "> 0" if positive else ">= 0"
        raise InvalidParameter(f"{what} must be {bound}{' and finite' if finite else ''}")
    return float(value)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What a client caches, for how long, and what it does while the store fails.

    :param ttl: seconds a value is used before it must be re-read (default one hour).
    :param ttls: per-secret TTLs overriding ``ttl``, by secret name (``None``: none).
    :param refresh_ahead: fraction of the TTL, before expiry, during which a read triggers a
        background refresh while callers keep the cached value (0 disables refresh-ahead).
    :param max_stale: seconds past its TTL a value is still served while the store fails;
        after that the store's error is raised.
    :param backoff: delay between failed store calls for one key (full jitter, capped).
    :param negative_ttl: seconds a :class:`~secretclient.errors.SecretNotFound` is remembered
        (0 disables).
    :param max_size: most entries kept (one per secret and stage, and per VersionId read).
    :param rotation_aware: call DescribeSecret once per secret and version, and refresh right
        after the store's next rotation time.
    :param rotation_delay: seconds after the next rotation time to refresh; each client picks a
        random point between it and twice it, and describes a new version that replaced a cached
        one on a read within it, so that a fleet's requests are spread.
    :param wait_timeout: seconds a reader waits for the same read started by another thread
        before giving up on it (then the stale value if allowed, else
        :class:`~secretclient.errors.StoreTimeout`).
    """

    ttl: float = 3600.0
    ttls: Mapping[str, float] = field(default_factory=dict)
    refresh_ahead: float = 0.2
    max_stale: float = 86400.0
    backoff: Backoff = DEFAULT_BACKOFF
    negative_ttl: float = 5.0
    max_size: int = 1024
    rotation_aware: bool = True
    rotation_delay: float = 60.0
    wait_timeout: float = 30.0

    def __post_init__(self) -> None:
        fix = object.__setattr__  # normalising a frozen dataclass's own fields
        fix(self, "ttl", _seconds("ttl", self.ttl, positive=True))
        if self.ttls is not None and not isinstance(self.ttls, Mapping):
            raise InvalidParameter("ttls must be a mapping of secret name to seconds")
        ttls = {}
        for name, value in (self.ttls or {}).items():
            if not isinstance(name, str) or not name:
                raise InvalidParameter("ttls keys must be secret names (non-empty strings)")
            ttls[name] = _seconds(f"ttls[{name!r}]", value, positive=True)
        fix(self, "ttls", MappingProxyType(ttls))
        ahead = self.refresh_ahead
        if isinstance(ahead, bool) or not isinstance(ahead, (int, float)) or not 0 <= ahead < 1:
            raise InvalidParameter("refresh_ahead must be a fraction of the TTL in [0, 1)")
        fix(self, "refresh_ahead", float(ahead))
        fix(self, "max_stale", _seconds("max_stale", self.max_stale))
        if not isinstance(self.backoff, Backoff):
            raise InvalidParameter("backoff must be a secretclient.Backoff")
        fix(self, "negative_ttl", _seconds("negative_ttl", self.negative_ttl, finite=True))
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 1:
            raise InvalidParameter("max_size must be an integer >= 1")
        fix(self, "rotation_aware", bool(self.rotation_aware))
        fix(self, "rotation_delay", _seconds("rotation_delay", self.rotation_delay, finite=True))
        fix(self, "wait_timeout", _seconds("wait_timeout", self.wait_timeout, positive=True, finite=True))

    def ttl_of(self, name: str) -> float:
        """The TTL of secret ``name``."""
        return self.ttls.get(name, self.ttl)

    def with_overrides(self, overrides: Mapping[str, Any]) -> CachePolicy:
        """A copy with ``overrides`` (field name -> value) applied and validated."""
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise InvalidParameter(f"unknown cache option(s) {', '.join(unknown)}: see CachePolicy")
        if not overrides:
            return self
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(overrides)
        return CachePolicy(**values)
