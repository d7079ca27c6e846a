"""Fault injection and per-Action request counters shared by the local emulators."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar, Protocol

from secretclient.errors import InvalidParameter

from ._rpc_errors import COMMON_ERRORS

__all__ = ["FaultTarget", "Faults"]


class FaultTarget(Protocol):
    """What :class:`Faults` needs of an emulator: its codes, its error class (whose ``table``
    maps codes to documented statuses) and how it builds an error answer."""

    internal_code: ClassVar[str]
    unavailable_code: ClassVar[str]
    throttling_code: ClassVar[str]

    @property
    def error_class(self) -> type[Exception]: ...

    def error(self, code: str, message: str | None = None, status: int | None = None) -> Exception: ...


class Faults:
    """Fault injection and per-Action request counters; safe from many threads.

    Faults apply to every request, in this order: outage, throttling, error rate, latency.
    ``actions`` limits a fault to those Actions. Codes and statuses are the emulator's own
    (KMS answers throttling with ``Rejected.Throttling``/429, RDS with ``Throttling``/400).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = random.Random(seed)
        self._calls: Counter[str] = Counter()
        self._latency = 0.0
        self._latency_actions: frozenset[str] | None = None
        self._error_rate = 0.0
        self._error: tuple[str | None, int | None, str | None] = (None, None, None)
        self._error_actions: frozenset[str] | None = None
        self._outage: str | None = None
        self._rps: float | None = None
        self._recent: deque[float] = deque()

    # -- configuration -------------------------------------------------------------------

    def set_latency(self, seconds: float, *, actions: set[str] | None = None) -> None:
        """Delay every answer by ``seconds``."""
        if seconds < 0:
            raise InvalidParameter("latency must be >= 0 seconds")
        with self._lock:
            self._latency, self._latency_actions = float(seconds), frozenset(actions) if actions else None

    def set_error_rate(
        self,
        rate: float,
        *,
        code: str | None = None,
        status: int | None = None,
        message: str | None = None,
        seed: int | None = None,
        actions: set[str] | None = None,
    ) -> None:
        """Answer a fraction ``rate`` (0..1) of requests with error ``code`` (default: the
        service's internal error) and its documented status unless ``status`` is given."""
        if not 0.0 <= rate <= 1.0:
            raise InvalidParameter("error rate must be between 0 and 1")
        with self._lock:
            self._error_rate = float(rate)
            self._error = (code, status, message)
            self._error_actions = frozenset(actions) if actions else None
            if seed is not None:
                self._rng.seed(seed)

    def start_outage(self, mode: str = "error") -> None:
        """Fail every request: ``"error"`` answers the service's 503, ``"drop"`` closes the
        connection without an answer."""
        if mode not in ("error", "drop"):
            raise InvalidParameter("outage mode must be 'error' or 'drop'")
        with self._lock:
            self._outage = mode

    def stop_outage(self) -> None:
        """End the outage."""
        with self._lock:
            self._outage = None

    @contextlib.contextmanager
    def outage(self, mode: str = "error") -> Iterator[None]:
        """An outage for the duration of the ``with`` block."""
        self.start_outage(mode)
        try:
            yield
        finally:
            self.stop_outage()

    def throttle(self, requests_per_second: float | None) -> None:
        """Accept at most this many requests in any one-second window, answer the rest with the
        service's throttling error; ``None`` turns throttling off."""
        if requests_per_second is not None and requests_per_second <= 0:
            raise InvalidParameter("requests_per_second must be positive (or None)")
        with self._lock:
            self._rps = requests_per_second
            self._recent.clear()

    def clear(self) -> None:
        """Remove every fault (counters are kept)."""
        with self._lock:
            self._latency, self._latency_actions = 0.0, None
            self._error_rate, self._error_actions = 0.0, None
            self._outage, self._rps = None, None
            self._recent.clear()

    # -- counters ------------------------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """Requests received per Action so far (a snapshot)."""
        with self._lock:
            return Counter(self._calls)

    def reset_calls(self) -> None:
        """Zero the per-Action counters."""
        with self._lock:
            self._calls.clear()

    # -- used by the server ----------------------------------------------------------------

    def _admit(self, action: str, emu: FaultTarget) -> tuple[str | None, Exception | None, float]:
        """Count the request and decide: (outage mode, injected error, delay)."""
        with self._lock:
            self._calls[action] += 1
            delay = self._latency if self._latency_actions is None or action in self._latency_actions else 0.0
            if self._outage == "drop":
                return "drop", None, delay
            if self._outage == "error":
                return None, emu.error(emu.unavailable_code), delay
            if self._rps is not None:
                now = self._clock()
                while self._recent and now - self._recent[0] >= 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self._rps:
                    return None, emu.error(emu.throttling_code), delay
                self._recent.append(now)
            in_scope = self._error_actions is None or action in self._error_actions
            if self._error_rate and in_scope and self._rng.random() < self._error_rate:
                code, status, message = self._error
                code = code or emu.internal_code
                if status is None:  # the documented status; unknown codes are server errors
                    table: Mapping[str, tuple[int, str]] = getattr(emu.error_class, "table", {})
                    known = table.get(code) or COMMON_ERRORS.get(code)
                    status = known[0] if known else 500
                return None, emu.error(code, message, status), delay
            return None, None, delay
