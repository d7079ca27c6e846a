"""``with helper:`` for every test helper that starts and stops something (servers, emulators,
the fault proxy): one context-manager behaviour for all of them."""

from __future__ import annotations

from typing import Self

__all__ = ["StartStop"]


class StartStop:
    """``with x:`` starts ``x`` unless it runs already (``with X().start() as x`` works too) and
    stops it after the block, however the block ends."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def _has_started(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self if self._has_started else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
