"""The credential search driven by hand: scripted login errors, a fake clock, no database.

Each test runs twice against an in-memory embedded store: once stepping the search's generator
by hand (``Connector.search().steps()``), once through ``Connector.connect`` (whose usual first
login skips the generator, which takes over when it fails). Store requests are performed for
real, sleeps move the fake clock, and logins answer from a script — an error number (raised as
PyMySQL raises it) or ``OK``.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from fake_clock import FakeClock

from secretclient import Backoff
from secretclient.client import SecretClient
from secretclient.db import (
    AccountUnavailable,
    Connector,
    CredentialsRejected,
    DatabaseUnreachable,
    ErrorKind,
    RetryPolicy,
    ServerBusy,
)
from secretclient.db._search import LoginRequest, SleepRequest, StoreRequest
from secretclient.model import CURRENT, PENDING, PREVIOUS, Stage
from secretclient.stores.embedded import EmbeddedStore

OK = "ok"
SECRET = "db/app"


@pytest.fixture(params=["steps", "connect"], autouse=True)
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How every Setup of a test runs its searches (see Setup.run)."""
    monkeypatch.setattr(Setup, "driver", request.param)
    return str(request.param)


class Setup:
    """An embedded store with one secret, a client and a connector on a fake clock."""

    driver = "steps"

    def __init__(self, policy: RetryPolicy | None = None, login_seconds: float = 0.001) -> None:
        self.store = EmbeddedStore()
        # Rejections are remembered per process (server, user, password): users of their own.
        self.suffix = "_" + secrets.token_hex(4)
        self.clock = FakeClock(now=1000.0)
        self.login_seconds = login_seconds
        self.versions = 0
        self.put("app", "pw-1", None)
        self.client = SecretClient(self.store, rotation_aware=False, clock=self.clock)
        self.connector = Connector(SECRET, self.client, policy=policy, clock=self.clock,
                                   sleep=self.clock.sleep, rng=random.Random(7))
        self.sent: list[tuple[str, str]] = []  # (user, password) of each login

    def put(self, user: str, password: str, stages: list[str] | None) -> str:
        self.versions += 1
        version = f"v{self.versions}"
        doc = json.dumps({"AccountName": user + self.suffix, "AccountPassword": password, "Endpoint": "db.invalid"})
        if self.versions == 1:
            self.store.create_secret(SECRET, doc, version_id=version)
        else:
            self.store.put_secret(SECRET, version, doc, stages=stages)
        return version

    def run(self, script: list[int | str], after_login: Any = None, before_read: Any = None) -> Any:
        """Drive one search; each login takes the next outcome of ``script``;
        ``after_login(logins sent so far)`` runs after each, ``before_read(store requests so
        far)`` before each store request."""
        outcomes: Iterator[int | str] = iter(script)
        reads = 0

        def login(**kwargs: Any) -> object:
            user = kwargs["user"].removesuffix(self.suffix)
            self.sent.append((user, kwargs["password"].decode()))
            self.clock.now += self.login_seconds
            outcome = next(outcomes)
            try:
                if outcome != OK:
                    raise pymysql.err.OperationalError(outcome, "scripted")
                return object()
            finally:
                if after_login is not None:
                    after_login(len(self.sent))

        def store_request(fn: Any, *args: Any) -> Any:
            nonlocal reads
            if before_read is not None:
                before_read(reads)
            reads += 1
            return fn(*args)

        if self.driver == "connect":
            view = self.connector._view
            fresh = view.fresh
            view.fresh = lambda *args: store_request(fresh, *args)
            try:
                return self.connector.connect({}, login)
            finally:
                view.fresh = fresh
        steps = self.connector.search({}).steps()
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                return done.value
            value = error = None
            try:
                if isinstance(request, LoginRequest):
                    value = login(**request.kwargs)
                elif isinstance(request, SleepRequest):
                    self.clock.sleep(request.seconds)
                else:
                    assert isinstance(request, StoreRequest)
                    value = store_request(request.fn, *request.args)
            except BaseException as exc:  # thrown in, as a driver does
                error = exc


def test_warm_path_is_one_login_and_no_request_before_it():
    s = Setup()
    s.run([OK])  # cold: one store read first
    steps = s.connector.search({}).steps()
    assert isinstance(next(steps), LoginRequest)  # warm: straight to the login
    steps.close()


def test_rotation_found_with_one_rejection_and_one_store_read():
    s = Setup()
    s.run([OK])
    v2 = s.put("app", "pw-2", None)  # another instance rotated: our cache still holds v1
    _conn, creds = s.run([1045, OK])
    assert creds.version_id == v2
    assert [p for _, p in s.sent] == ["pw-1", "pw-1", "pw-2"]
    stats = s.connector.stats()
    assert (stats.connects, stats.rejected, stats.recovered, stats.store_reads) == (2, 1, 1, 1)
    # The only wait: the jitter before the store read (no backoff before the switch).
    assert len(s.clock.slept) == 1 and 0 < s.clock.slept[0] <= RetryPolicy().refresh_jitter


def test_stages_are_tried_current_pending_previous():
    s = Setup()
    s.run([OK])
    v2 = s.put("app_rt", "pw-2", None)  # alternating users: v1 (app) is now PREVIOUS
    v3 = s.put("app", "pw-3", [PENDING])
    # The cached v1 is rejected; the fresh CURRENT v2 is rejected too; PENDING v3 works.
    _, creds = s.run([1045, 1045, OK])
    assert creds.version_id == v3
    assert s.sent[1:] == [("app", "pw-1"), ("app_rt", "pw-2"), ("app", "pw-3")]
    err_free = s.connector.stats()
    assert err_free.rejected == 2 and err_free.recovered == 1
    assert v2 == "v2"


def test_a_rejected_password_is_not_sent_again_in_any_stage():
    s = Setup(policy=RetryPolicy(backoff=Backoff(base=0.01, cap=0.02)))
    s.run([OK])
    s.put("app", "bad", None)  # CURRENT v2 wrong, PREVIOUS v1 wrong too (rejected below)
    s.put("app", "bad", [PENDING])  # the same bad password as PENDING
    with pytest.raises(CredentialsRejected) as info:
        s.run([1045, 1045, 1045])
    # v1 (cached), then fresh v2, PENDING v3 (same password: skipped), PREVIOUS v1 (skipped).
    assert [p for _, p in s.sent[1:]] == ["pw-1", "bad"]
    assert [a.version_id for a in info.value.attempts] == ["v1", "v2"]
    assert [a.stage for a in info.value.attempts] == [CURRENT, CURRENT]


def test_pending_rejected_is_sent_once_more_after_its_promotion():
    s = Setup(policy=RetryPolicy(backoff=Backoff(base=0.01, cap=0.02)))
    s.run([OK])
    s.put("app", "bad", None)  # a bad CURRENT v2 (v1 is PREVIOUS, and still good)
    v3 = s.put("app", "pw-3", [PENDING])

    def rotation_sets_and_ends(sent: int) -> None:
        if sent == 4:  # PENDING was just rejected: the rotation's set and end steps run now
            s.store.update_stage(SECRET, CURRENT, move_to=v3)
            s.store.update_stage(SECRET, PENDING, remove_from=v3)

    _, creds = s.run([1045, 1045, 1045, OK], after_login=rotation_sets_and_ends)
    assert creds.version_id == v3
    # cached v1 (an old cache), fresh CURRENT v2, PENDING v3, PREVIOUS v1 (skipped: rejected
    # already); the next round finds v3 promoted and sends it once more, as CURRENT.
    assert [p for _, p in s.sent[1:]] == ["pw-1", "bad", "pw-3", "pw-3"]


def test_pending_rejected_before_its_set_step_is_sent_again_once_the_database_changed():
    """Single user: a search that read CURRENT before rotation 1 ended and PENDING after
    rotation 2 began sends rotation 2's password before its "set" step (rejected, rightly).
    When "set" then changes the database (the CURRENT that worked is rejected), that password
    is the only one that works: it must be sent again, not skipped until "end" promotes it."""
    s = Setup(policy=RetryPolicy(backoff=Backoff(base=0.01, cap=0.02)))
    s.run([OK])
    v2 = s.put("app", "pw-2", [PENDING])  # rotation 1: new; then set (pw-1 no longer logs in)
    v3 = ""

    def rotation_1_ends_and_2_begins(reads: int) -> None:
        nonlocal v3
        if reads == 1:  # between this search's reads of CURRENT (v1) and PENDING
            s.store.update_stage(SECRET, CURRENT, move_to=v2)
            s.store.update_stage(SECRET, PENDING, remove_from=v2)
            v3 = s.put("app", "pw-3", [PENDING])  # rotation 2: new (its set has not run)

    # Cached v1 rejected, fresh CURRENT v1 (skipped), PENDING v3 rejected, PREVIOUS v1
    # (skipped); the next round finds CURRENT v2, which works.
    _, creds = s.run([1045, 1045, OK], before_read=rotation_1_ends_and_2_begins)
    assert creds.version_id == v2
    assert [p for _, p in s.sent[1:]] == ["pw-1", "pw-3", "pw-2"]
    # Rotation 2's set: pw-2 stops working, pw-3 works. Its end has not run: PENDING v3.
    s.sent.clear()
    _, creds = s.run([1045, OK])
    assert creds.version_id == v3
    assert s.sent == [("app", "pw-2"), ("app", "pw-3")]


def test_network_errors_retry_with_backoff_inside_the_budget():
    s = Setup(policy=RetryPolicy(total=2.0, max_attempts=50, backoff=Backoff(base=0.1, cap=0.4)),
              login_seconds=0.05)
    s.run([OK])
    started = s.clock.now
    with pytest.raises(DatabaseUnreachable) as info:
        s.run([2003] * 100)
    assert all(a.kind is ErrorKind.NETWORK for a in info.value.attempts)
    assert s.clock.now - started <= 2.0 + 0.05  # no login starts after the budget
    assert all(0 <= d <= 0.4 for d in s.clock.slept) and s.clock.slept
    assert s.connector.stats().store_reads == 0  # the same credentials: no store read


def test_busy_then_ok_keeps_the_credentials():
    s = Setup()
    s.run([OK])
    _, creds = s.run([1040, 1226, OK])
    assert creds.version_id == "v1" and len(set(s.sent)) == 1
    assert len(s.clock.slept) <= 2 and s.connector.stats().retries == 2


def test_busy_not_retried_when_the_policy_says_so():
    s = Setup(policy=RetryPolicy(retry_busy=False))
    s.run([OK])
    with pytest.raises(ServerBusy):
        s.run([1040])
    assert len(s.sent) == 2


@pytest.mark.parametrize("errno", [4151, 3118, 1862, 1820, 4150, 1129])
def test_an_unavailable_account_stops_at_once(errno):
    s = Setup()
    s.run([OK])
    s.put("app", "pw-2", None)
    with pytest.raises(AccountUnavailable) as info:
        s.run([errno])
    assert info.value.args[0] == errno and len(s.sent) == 2
    assert s.connector.stats().store_reads == 0


def test_max_attempts_bounds_every_kind_of_retry():
    s = Setup(policy=RetryPolicy(max_attempts=3, backoff=Backoff(base=0.001, cap=0.001)))
    s.run([OK])
    with pytest.raises(DatabaseUnreachable) as info:
        s.run([2013] * 10)
    assert len(info.value.attempts) == 3


def test_policy_stages_as_roles_reach_the_store_as_its_labels():
    s = Setup(policy=RetryPolicy(stages=(Stage.CURRENT, Stage.PREVIOUS)))
    s.run([OK])
    s.put("app_rt", "pw-2", None)  # v2 CURRENT (rejected below), v1 PREVIOUS
    s.put("app", "pw-3", [PENDING])  # PENDING is not searched with this policy
    with pytest.raises(CredentialsRejected) as info:
        s.run([1045, 1045])
    assert [(a.version_id, a.stage) for a in info.value.attempts] == [("v1", CURRENT), ("v2", CURRENT)]
    assert all(a.stage in (CURRENT, PREVIOUS) for a in info.value.attempts)


def test_after_a_recovery_new_logins_go_straight_to_what_worked():
    s = Setup()
    s.run([OK])
    s.put("app", "pw-2", [PENDING])  # between set and end: CURRENT v1 no longer logs in
    _, creds = s.run([1045, OK])
    assert creds.version_id == "v2"
    reads = s.connector.stats().store_reads  # CURRENT (unchanged), then PENDING
    s.sent.clear()
    _, creds = s.run([OK])
    assert creds.version_id == "v2" and s.sent == [("app", "pw-2")]
    assert s.connector.stats().store_reads == reads == 2


def test_a_cancelled_login_counts_as_a_failure_and_frees_the_gate():
    s = Setup(policy=RetryPolicy(total=1.0))
    s.run([OK])
    def interrupted(sent: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.run([OK], after_login=interrupted)
    stats = s.connector.stats()
    assert (stats.logins, stats.connects, stats.failures) == (2, 1, 1)
    # The gate let the next login go at once (a place left taken would make it wait).
    s.sent.clear()
    _, creds = s.run([OK])
    assert creds.version_id == "v1" and len(s.sent) == 1 and not s.clock.slept
