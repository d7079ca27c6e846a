"""Rotation strategies: the :class:`Strategy` protocol, the MySQL/MariaDB and PostgreSQL ones
(SQL) and the ApsaraDB RDS one (RDS API)."""

from .base import Check, RotationContext, Strategy, StrategyPlan
from .mysql import AlternatingUsersStrategy, SingleUserStrategy
from .postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy
from .rds import RdsApiStrategy

__all__ = [
    "AlternatingUsersStrategy",
    "Check",
    "PostgresAlternatingUsersStrategy",
    "PostgresSingleUserStrategy",
    "RdsApiStrategy",
    "RotationContext",
    "SingleUserStrategy",
    "Strategy",
    "StrategyPlan",
]
