"""Building stores and strategies from plain settings (used by the CLI and the FC handler).

Stores come from :func:`secretclient.stores.open_store` (``embedded:PATH``, with the key of an
encrypted file in ``$SECRETCLIENT_EMBEDDED_KEY``; or ``kms``).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from secretclient.model import PasswordPolicy
from secretclient.stores import open_store  # re-exported: the CLI and the FC handler use it
from secretclient.stores.base import SecretStore

from .dbconn import ConnectOptions
from .errors import InvalidRotationSetup
from .lock import Lock
from .passwords import MYSQL_PASSWORD_POLICY, RDS_PASSWORD_POLICY
from .strategies import AlternatingUsersStrategy, RdsApiStrategy, SingleUserStrategy, Strategy
from .strategies.base import DEFAULT_GRACE, DrainPolicy
from .strategies.by_engine import ByEngineStrategy
from .strategies.postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy

__all__ = ["ENGINES", "STRATEGIES", "lock_for", "make_strategy", "open_store"]

STRATEGIES = ("alternating", "single", "rds")
#: Longest grace period accepted (ten years): beyond it a number is a mistake, and timedelta overflows.
MAX_GRACE_SECONDS = 10 * 365 * 86400.0
#: ``engine=`` of :func:`make_strategy`: ``auto`` reads the secret's ``engine`` field.
ENGINES = ("auto", "mysql", "postgres")


def make_strategy(
    kind: str = "alternating",
    *,
    name_limit: int = 32,
    grace_seconds: float = DEFAULT_GRACE.total_seconds(),
    master_secret: str | None = None,
    exclude_characters: str | None = None,
    password_length: int = MYSQL_PASSWORD_POLICY.length,
    ca_file: str | None = None,
    instance_id: str | None = None,
    rds_client: Any = None,
    allow_accounts: tuple[str, ...] = (),
    engine: str = "auto",
    drain_wait: float = 0.0,
    drain_proceed: bool = False,
    suffix: str | None = None,
) -> Strategy:
    """A database strategy: ``alternating`` (the seed's ``_rt`` users) or ``single``; or ``rds``,
    alternating users through the RDS API on instance ``instance_id`` with ``rds_client`` (an
    ``AcsClient``, see :func:`rotation.strategies.rds.rds_client`).

    ``engine``: ``mysql`` (MySQL / MariaDB) or ``postgres``; ``auto`` picks per secret from its
    ``engine`` field (MySQL when absent), see :mod:`rotation.strategies.by_engine`.

    ``suffix``: the alternate account's suffix of the alternating strategies (default ``_rt``;
    ``_clone`` is AWS's multi-user template's), checked by each strategy; refused for ``single``."""
    if not isinstance(grace_seconds, (int, float)) or not math.isfinite(grace_seconds) or not (
        0 <= grace_seconds <= MAX_GRACE_SECONDS
    ):
        raise InvalidRotationSetup(f"the grace period must be 0 to {MAX_GRACE_SECONDS:.0f} seconds")
    if engine not in ENGINES:
        raise InvalidRotationSetup(f"engine must be one of {', '.join(ENGINES)}")
    if suffix is not None and not isinstance(suffix, str):
        raise InvalidRotationSetup("suffix must be a string")
    if suffix is not None and kind == "single":
        raise InvalidRotationSetup("a suffix names the second account of alternating users: strategy 'single' has none")
    alternate: dict[str, Any] = {} if suffix is None else {"suffix": suffix}
    if kind == "rds":
        if not instance_id:
            raise InvalidRotationSetup(
                "strategy 'rds' needs the RDS instance id (the event's InstanceId or --instance-id)"
            )
        if rds_client is None:
            raise InvalidRotationSetup("strategy 'rds' needs an RDS client (rds_client=)")
        # RDS refuses passwords with other specials, whatever else is excluded.
        excluded = set(RDS_PASSWORD_POLICY.exclude_characters) | set(exclude_characters or "")
        policy = PasswordPolicy(length=password_length, exclude_characters="".join(sorted(excluded)))
        return RdsApiStrategy(
            instance_id, rds_client, name_limit=name_limit, grace=timedelta(seconds=grace_seconds),
            password_policy=policy, connect_options=ConnectOptions(ca_file=ca_file or None),
            allow_accounts=allow_accounts, **alternate,
        )
    policy = PasswordPolicy(
        length=password_length,
        exclude_characters=(
            MYSQL_PASSWORD_POLICY.exclude_characters if exclude_characters is None else exclude_characters
        ),
    )
    common: dict[str, Any] = {
        "master_secret": master_secret or None, "password_policy": policy,
        "connect_options": ConnectOptions(ca_file=ca_file or None), "allow_accounts": allow_accounts,
    }
    if kind == "alternating":
        grace = timedelta(seconds=grace_seconds)
        drain = DrainPolicy(wait=drain_wait, proceed=drain_proceed)
        mysql: Strategy = AlternatingUsersStrategy(grace=grace, name_limit=name_limit, drain=drain,
                                                   **alternate, **common)
        postgres: Strategy = PostgresAlternatingUsersStrategy(grace=grace, drain=drain, **alternate, **common)
    elif kind == "single":
        mysql, postgres = SingleUserStrategy(name_limit=name_limit, **common), PostgresSingleUserStrategy(**common)
    else:
        raise InvalidRotationSetup(f"strategy must be one of {', '.join(STRATEGIES)}")
    if engine == "mysql":
        return mysql
    return postgres if engine == "postgres" else ByEngineStrategy(mysql, postgres)


def lock_for(strategy: Strategy, store: SecretStore) -> Lock | None:
    """The lock a Rotator with ``strategy`` needs, or None for the Rotator's default (``GET_LOCK``
    through the strategy's database connection)."""
    return strategy.lock(store) if isinstance(strategy, RdsApiStrategy) else None
