"""Choosing the MySQL or the PostgreSQL strategy from the secret itself.

A secret names its database engine in the ``engine`` field (AWS's key: ``"postgres"``,
``"mysql"``, …); without one it is MySQL / MariaDB, as before. :class:`ByEngineStrategy` holds
one strategy per engine and hands each call to the one the secret asks for, so one Rotator,
CLI or Function Compute handler rotates both kinds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from secretclient.model import DbCredentials, Secret

from ..errors import InvalidRotationSetup
from ..lock import LockHandle, MySqlLock
from .base import RotationContext, Strategy, StrategyPlan

__all__ = ["ENGINES", "ByEngineStrategy", "engine_of"]

#: Accepted ``engine`` values, by family.
ENGINES = {
    "mysql": "mysql", "mariadb": "mysql", "aurora-mysql": "mysql", "aurora": "mysql",
    "postgres": "postgres", "postgresql": "postgres", "aurora-postgresql": "postgres",
}


def engine_of(creds: DbCredentials) -> str:
    """``"mysql"`` or ``"postgres"``: the family named by the secret's ``engine`` field (MySQL when absent)."""
    raw = creds.extra.get("engine")
    if raw is None:
        return "mysql"
    family = ENGINES.get(str(raw).strip().lower()) if isinstance(raw, str) else None
    if family is None:
        raise InvalidRotationSetup(f"field 'engine' must be one of {', '.join(sorted(ENGINES))}")
    return family


class ByEngineStrategy:
    """Delegates to ``mysql`` or ``postgres`` by the rotated secret's ``engine`` field.

    Both must be the same kind of strategy (same :attr:`name` and password policy).
    """

    def __init__(self, mysql: Strategy, postgres: Strategy) -> None:
        if mysql.name != postgres.name:
            raise InvalidRotationSetup("the MySQL and PostgreSQL strategies must be of the same kind")
        self.mysql, self.postgres = mysql, postgres
        self.name = mysql.name
        self.password_policy = mysql.password_policy

    def __repr__(self) -> str:
        return f"ByEngineStrategy({self.mysql!r}, {self.postgres!r})"

    def for_credentials(self, creds: DbCredentials) -> Strategy:
        """The strategy rotating ``creds``."""
        return self.postgres if engine_of(creds) == "postgres" else self.mysql

    def preflight(self, ctx: RotationContext, current: Secret) -> None:
        self.for_credentials(current.db_credentials()).preflight(ctx, current)

    def pending_credentials(self, current: DbCredentials, password: str) -> DbCredentials:
        return self.for_credentials(current).pending_credentials(current, password)

    def new_password(self, store: Any) -> str:
        return self.mysql.new_password(store)

    def set(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials, *, fresh: bool) -> None:
        self.for_credentials(current).set(ctx, current, pending, fresh=fresh)

    def test(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> None:
        self.for_credentials(current).test(ctx, current, pending)

    def can_login(self, ctx: RotationContext, creds: DbCredentials) -> bool:
        return self.for_credentials(creds).can_login(ctx, creds)

    def plan(self, ctx: RotationContext, current: DbCredentials, pending: DbCredentials) -> StrategyPlan:
        return self.for_credentials(current).plan(ctx, current, pending)

    def account_sessions(self, ctx: RotationContext, current: DbCredentials,
                         accounts: Iterable[str]) -> dict[str, dict[str, int]]:
        """Live sessions per client host of each of ``accounts`` (see ``rotation status``), where
        the chosen strategy can count them (empty otherwise)."""
        counter = getattr(self.for_credentials(current), "account_sessions", None)
        if counter is None:
            return {a: {} for a in accounts}
        sessions: dict[str, dict[str, int]] = counter(ctx, current, accounts)
        return sessions

    def lock(self, store: Any) -> _ByEngineLock:
        """The Rotator's lock: the chosen engine's own (``GET_LOCK`` or ``pg_advisory_lock``)."""
        return _ByEngineLock(self, store)


class _ByEngineLock:
    def __init__(self, strategy: ByEngineStrategy, store: Any) -> None:
        self._strategy, self._store = strategy, store

    def acquire(self, secret_name: str, timeout: float = 0.0) -> LockHandle | None:
        chosen: Any = self._strategy.for_credentials(self._store.get_secret(secret_name).db_credentials())
        if hasattr(chosen, "lock"):
            handle: LockHandle | None = chosen.lock(self._store).acquire(secret_name, timeout)
            return handle
        return MySqlLock(lambda name: chosen.lock_connection(self._store, name)).acquire(secret_name, timeout)
