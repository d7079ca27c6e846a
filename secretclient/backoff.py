"""Exponential backoff with full jitter, as an immutable policy object."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import InvalidParameter

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempt`` (0-based): uniform in ``[0, ceiling(attempt)]``.

    Full jitter (not "equal" jitter) spreads many clients that failed together, which is what
    a password rotation does to a fleet.
    """

    base: float = 0.05
    cap: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.multiplier < 1:
            raise InvalidParameter("Backoff needs base >= 0, cap >= 0 and multiplier >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay ``attempt`` may wait."""
        if attempt < 0:
            return 0.0
        # Cap the exponent so huge attempt counts do not overflow.
        return min(self.cap, self.base * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A random delay for ``attempt`` (full jitter)."""
        return (rng or random).uniform(0.0, self.ceiling(attempt))
