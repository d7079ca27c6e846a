"""Rotation strategies: the :class:`Strategy` protocol and the MySQL/MariaDB ones."""

from .base import Check, RotationContext, Strategy, StrategyPlan
from .mysql import AlternatingUsersStrategy, SingleUserStrategy

__all__ = ["AlternatingUsersStrategy", "Check", "RotationContext", "SingleUserStrategy", "Strategy", "StrategyPlan"]
