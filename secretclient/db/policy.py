"""How hard a connection attempt tries: an immutable policy, in the spirit of urllib3's ``Retry``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..backoff import Backoff
from ..errors import InvalidParameter
from ..model import ACS_STAGES, AWS_STAGES, NCP_STAGES, Stage

__all__ = ["RetryPolicy"]


def _role_of(stage: str) -> Stage | None:
    """The role of ``stage``: a role, or a label of a known store (Alibaba/embedded, AWS, NCP)."""
    for labels in (ACS_STAGES, AWS_STAGES, NCP_STAGES):
        role = labels.role(stage)
        if role is not None:
            return role
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Limits and choices for one ``connect()``.

    - ``total``: seconds for the whole call, waits included; no new attempt starts after it.
    - ``max_attempts``: logins sent, of every kind (bad credentials, network, busy).
    - ``backoff``: the wait before a retry (full jitter); the first credential switch after a
      rejected password does not back off (only ``refresh_jitter`` applies), the refreshed
      secret is the fix.
    - ``stages``: which stages to search after a rejection, in order: roles
      (:class:`~secretclient.model.Stage`) or a store's labels (``"ACSPending"``, ``"AWSPENDING"``:
      turned into roles; any other label is the store's own). CURRENT is always first; drop
      PREVIOUS in single-user rotation if you like (it is never valid there).
    - ``rounds``: passes over the store when every credential found was rejected. A rotation
      may be between its steps; a later pass can find its result. Each pass reads the store.
    - ``retry_network`` / ``retry_busy``: retry the same credentials after network errors and
      "too many connections" errors.
    - ``remember_rejected``: seconds a password the server rejected is not sent again by any
      search of this process (the limit is per process and per credential; see
      docs/connections.md). After that, one login may try it again: a password fixed on the
      server side then works without a restart.
    - ``concurrent_logins``: logins with one credential in flight at once in this process
      (others wait for a place). A password can stop working at any moment (a rotation's
      ALTER USER); the logins in flight then fail, and MySQL/MariaDB lock accounts after a few
      failures in a row. 1 (the default) costs at most one failed login per process; a higher
      value opens a pool's connections faster at that risk.
    - ``refresh_jitter``: after the server rejected the cached password, wait a random
      ``0..refresh_jitter`` seconds before reading the store (once per connect; only logins
      wait, pooled connections keep serving). A rotation rejects every instance of a fleet at
      once: the jitter spreads their store reads, and a rotation that is finishing meanwhile
      is then found in one read (its new CURRENT) rather than two. 0: read at once. The
      default, 0.1 s, keeps a single application's recovery well under 100 ms (p50) and
      spreads a small fleet; a large fleet uses :meth:`for_fleet` (docs/connections.md).
    - ``store_backoff``: the wait before reading the store again after it answered with
      throttling or unavailability (full jitter), within ``total``: the credentials cached (and
      pooled connections) keep working meanwhile, and retrying at once only deepens the
      throttling of the whole fleet.
    - ``handshake_timeout``: the longest wait for one server reply while logging in (a server
      that accepts TCP and never answers would hang PyMySQL forever), further bounded by
      ``total``; taken off once logged in. Used when the caller sets no ``read_timeout``.
      ``None`` leaves the login unbounded, as plain PyMySQL does (it saves ~10 socket calls
      per login: see docs/performance.md).
    """

    total: float = 10.0
    max_attempts: int = 6
    backoff: Backoff = Backoff(base=0.05, cap=2.0)  # noqa: RUF009 - a frozen value, safe to share
    stages: tuple[str, ...] = (Stage.CURRENT, Stage.PENDING, Stage.PREVIOUS)
    rounds: int = 3
    retry_network: bool = True
    retry_busy: bool = True
    handshake_timeout: float | None = 30.0
    refresh_jitter: float = 0.1
    store_backoff: Backoff = Backoff(base=1.0, cap=8.0)  # noqa: RUF009 - a frozen value, safe to share
    remember_rejected: float = 300.0
    concurrent_logins: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.total, (int, float)) or isinstance(self.total, bool) or self.total <= 0:
            raise InvalidParameter("RetryPolicy.total must be a number of seconds > 0")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidParameter("RetryPolicy.max_attempts must be an integer >= 1")
        if not isinstance(self.concurrent_logins, int) or self.concurrent_logins < 1:
            raise InvalidParameter("RetryPolicy.concurrent_logins must be an integer >= 1")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise InvalidParameter("RetryPolicy.rounds must be an integer >= 1")
        if self.handshake_timeout is not None and (
            not isinstance(self.handshake_timeout, (int, float)) or isinstance(self.handshake_timeout, bool)
            or self.handshake_timeout <= 0
        ):
            raise InvalidParameter("RetryPolicy.handshake_timeout must be a number of seconds > 0, or None")
        if (not isinstance(self.remember_rejected, (int, float)) or isinstance(self.remember_rejected, bool)
                or not self.remember_rejected >= 0):
            raise InvalidParameter("RetryPolicy.remember_rejected must be a number of seconds >= 0")
        if not isinstance(self.backoff, Backoff):
            raise InvalidParameter("RetryPolicy.backoff must be a secretclient.Backoff")
        if not isinstance(self.store_backoff, Backoff):
            raise InvalidParameter("RetryPolicy.store_backoff must be a secretclient.Backoff")
        if (not isinstance(self.refresh_jitter, (int, float)) or isinstance(self.refresh_jitter, bool)
                or not self.refresh_jitter >= 0):
            raise InvalidParameter("RetryPolicy.refresh_jitter must be a number of seconds >= 0")
        given: object = self.stages  # checked as what a caller may really pass
        if isinstance(given, str) or not all(isinstance(s, str) and s for s in self.stages):
            raise InvalidParameter("RetryPolicy.stages must be non-empty stage names")
        stages = tuple(_role_of(s) or s for s in self.stages)
        if not stages:
            raise InvalidParameter("RetryPolicy.stages must be non-empty stage names")
        if len(set(stages)) != len(stages):
            raise InvalidParameter("RetryPolicy.stages must not repeat a stage")
        if stages[0] != Stage.CURRENT:
            raise InvalidParameter("RetryPolicy.stages must start with the CURRENT stage")
        object.__setattr__(self, "stages", stages)

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_fleet(cls, instances: int, store_quota: float, **changes: Any) -> RetryPolicy:
        """The policy for one of ``instances`` processes sharing a store quota of ``store_quota``
        requests per second (docs/connections.md, "A fleet and a store quota").

        A rotation rejects every instance at once and costs each one or two reads (its new
        CURRENT, or CURRENT then PENDING while the rotation is between its "set" and "end"
        steps): ``refresh_jitter`` spreads them over ``2 * instances / store_quota`` seconds, so
        the fleet takes at most about half the quota and the rotator's own requests still get
        through; ``total`` allows a connect to wait out the jitter and a throttled read.
        Other fields may be given as in the constructor.
        """
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
            raise InvalidParameter("RetryPolicy.for_fleet: instances must be an int >= 1")
        if (not isinstance(store_quota, (int, float)) or isinstance(store_quota, bool)
                or not store_quota > 0):
            raise InvalidParameter("RetryPolicy.for_fleet: store_quota must be requests per second > 0")
        spread = 2.0 * instances / store_quota
        return cls(**{"refresh_jitter": spread, "total": max(30.0, 4.0 * spread), **changes})

    @classmethod
    def no_retry(cls) -> RetryPolicy:
        """One login with the cached CURRENT credentials, nothing else."""
        return cls(max_attempts=1, stages=(Stage.CURRENT,), rounds=1, retry_network=False, retry_busy=False,
                   refresh_jitter=0.0)
