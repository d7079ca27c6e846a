"""Rotation strategies: the :class:`Strategy` protocol, the MySQL/MariaDB ones (SQL) and the
ApsaraDB RDS one (RDS API)."""

from .base import Check, RotationContext, Strategy, StrategyPlan
from .mysql import AlternatingUsersStrategy, SingleUserStrategy
from .rds import RdsApiStrategy

__all__ = [
    "AlternatingUsersStrategy",
    "Check",
    "RdsApiStrategy",
    "RotationContext",
    "SingleUserStrategy",
    "Strategy",
    "StrategyPlan",
]
