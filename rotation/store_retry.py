"""Retrying a rotation's store calls that fail transiently (throttling, 5xx, timeouts).

A rotation is what makes every instance of an application refresh at once, so the store is
at its busiest exactly when the rotator needs it. Each store call of a step is retried with
full-jitter backoff within a bounded time; every call the engine makes is idempotent (reads;
``put_secret`` of the same VersionId and data; stage moves that are no-ops once done), so a
retry after a call that took effect but whose answer was lost is safe. When the bound is
reached the error is raised and the interrupted rotation resumes on the next run.

A function runtime (AWS Lambda, Function Compute) kills an invocation at its timeout, which may
come long before the policy's ``total``: :meth:`StoreRetryPolicy.within_invocation` derives a
policy whose retries end :data:`INVOCATION_MARGIN` seconds before the invocation does, so the
handler ends with the store's typed error and its logs instead of being killed mid-wait.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

from secretclient.backoff import Backoff
from secretclient.errors import StoreUnavailable, Throttled

from .errors import InvalidRotationSetup

__all__ = ["INVOCATION_MARGIN", "NO_STORE_RETRY", "RetryingStore", "StoreRetryPolicy", "remaining_time"]

#: Seconds of a function invocation left free of retries: the last attempt's own timeouts (the
#: stores' connect + read timeouts are 3 + 5 s), the rest of the step and the error's logs.
INVOCATION_MARGIN = 10.0

# The store operations the engine and strategies call; anything else passes through untouched.
_RETRIED = frozenset({"get_secret", "put_secret", "update_stage", "list_versions", "describe", "random_password"})


@dataclass(frozen=True, slots=True)
class StoreRetryPolicy:
    """How a :class:`~rotation.Rotator` retries one store call.

    ``total``: seconds for the call, waits included (no retry starts after it); ``max_attempts``:
    calls sent at most; ``backoff``: the wait before each retry (full jitter). Retried: the
    store's :class:`~secretclient.errors.Throttled` and :class:`~secretclient.errors.StoreUnavailable`
    (timeouts included); every other error is raised at once.

    The default outlasts the refresh herd a rotation causes in a fleet sharing the store's quota
    (docs/rotation.md, "Transient store errors"): the herd lasts about instances / quota seconds,
    and a call waits up to 60 s for a free slot (about 25 attempts with these waits; 40 at most).
    """

    total: float = 60.0
    max_attempts: int = 40
    backoff: Backoff = Backoff(base=0.2, cap=5.0)  # noqa: RUF009 - a frozen value, safe to share
    #: A time of the Rotator's monotonic clock (``time.monotonic`` unless injected) after which no
    #: retry waits, whatever ``total`` leaves: the end of a function invocation (:meth:`until`).
    deadline: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.total, bool) or not isinstance(self.total, (int, float)) or not 0 <= self.total <= 3600:
            raise InvalidRotationSetup("StoreRetryPolicy.total must be 0 to 3600 seconds")
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not 1 <= self.max_attempts <= 100
        ):
            raise InvalidRotationSetup("StoreRetryPolicy.max_attempts must be 1 to 100")
        if not isinstance(self.backoff, Backoff):
            raise InvalidRotationSetup("StoreRetryPolicy.backoff must be a secretclient.backoff.Backoff")
        if self.deadline is not None and not _is_finite(self.deadline):
            raise InvalidRotationSetup("StoreRetryPolicy.deadline must be a time of the monotonic clock (or None)")

    def until(self, deadline: float) -> StoreRetryPolicy:
        """This policy with no retry waiting past ``deadline`` (a time of the Rotator's monotonic
        clock); an earlier deadline this policy already has is kept. The policy is not changed."""
        if not _is_finite(deadline):
            raise InvalidRotationSetup("deadline must be a time of the monotonic clock")
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        return dataclasses.replace(self, deadline=float(deadline))

    def within_invocation(
        self, context: Any, *, margin: float = INVOCATION_MARGIN, monotonic: Callable[[], float] = time.monotonic
    ) -> StoreRetryPolicy:
        """This policy, its retries ending ``margin`` seconds before the function invocation
        ``context`` describes times out (:func:`remaining_time`); unchanged when the context does
        not tell. Call it when the invocation starts (the handler's factory does)."""
        if not _is_finite(margin) or margin < 0:
            raise InvalidRotationSetup("margin must be a number of seconds >= 0")
        remaining = remaining_time(context)
        return self if remaining is None else self.until(monotonic() + remaining - margin)


def _is_finite(value: Any) -> TypeGuard[float]:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def remaining_time(context: Any) -> float | None:
    """Seconds left before the invocation ``context`` describes times out, or None when it does
    not say. Duck-typed on what the runtimes hand a Python handler:

    - AWS Lambda: ``context.get_remaining_time_in_millis()``;
    - Function Compute: no remaining-time call; ``context.function.timeout`` is the function's
      whole timeout in seconds, so read at the handler's start it slightly overstates what is
      left (by the time before the handler ran: the margin covers it).
    """
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        millis = remaining()
        return max(millis / 1000.0, 0.0) if _is_finite(millis) else None
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    return max(float(timeout), 0.0) if _is_finite(timeout) else None


#: One attempt per call: the behaviour before retries existed.
NO_STORE_RETRY = StoreRetryPolicy(max_attempts=1)


class RetryingStore:
    """A view of ``store`` whose engine-facing calls are retried under ``policy``.

    ``on_retry(operation, error, delay)`` is called before each wait (for events and metrics).
    """

    def __init__(
        self,
        store: Any,
        policy: StoreRetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        on_retry: Callable[[str, Exception, float], None] | None = None,
    ) -> None:
        self.inner = store
        self.policy = policy
        self._sleep = sleep
        self._monotonic = monotonic
        self._on_retry = on_retry

    def __repr__(self) -> str:
        return f"RetryingStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in _RETRIED:
            return attr

        def retried(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, attr, args, kwargs)

        return retried

    def _call(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        policy = self.policy
        deadline = self._monotonic() + policy.total
        if policy.deadline is not None:
            deadline = min(deadline, policy.deadline)
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except (Throttled, StoreUnavailable) as exc:
                attempt += 1
                delay = policy.backoff.delay(attempt - 1)
                if attempt >= policy.max_attempts or self._monotonic() + delay > deadline:
                    raise
                if self._on_retry is not None:
                    self._on_retry(name, exc, delay)
                self._sleep(delay)
