"""Issue 14.4: a Rotator retries store calls that fail transiently, within a bounded time."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from fake_clock import FakeClock
from rotation_support import make_app, make_strategy

from rotation import InvalidRotationSetup, LocalLock, Rotator, StoreRetryPolicy
from rotation.store_retry import INVOCATION_MARGIN, NO_STORE_RETRY, RetryingStore, remaining_time
from secretclient.backoff import Backoff
from secretclient.errors import SecretNotFound, Throttled
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator

FAST = StoreRetryPolicy(total=30, max_attempts=10, backoff=Backoff(base=0.01, cap=0.05))


@pytest.fixture
def kms(tmp_path):
    backing = EmbeddedStore(tmp_path / "kms.db")
    emulator = KmsEmulator(store=backing).start()
    store = emulator.store()
    try:
        yield emulator, store
    finally:
        store.close()
        emulator.stop()
        backing.close()


def test_rotations_complete_through_a_throttling_kms(mariadb, kms, cleanup_accounts, caplog):
    emulator, store = kms
    caplog.set_level(logging.INFO, logger="rotation")
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"), lock=LocalLock(), store_retry=FAST)
    emulator.faults.set_error_rate(0.3, code="Rejected.Throttling", seed=11)
    for _ in range(3):
        assert rotator.rotate(app.name).rotated
    emulator.faults.set_error_rate(0.0)
    retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retried and all("(Throttled)" in line for line in retried)
    assert app.can_login(app.current())
    # The same faults without retries: the first throttled call ends the rotation.
    emulator.faults.set_error_rate(0.3, code="Rejected.Throttling", seed=11)
    with pytest.raises(Throttled):
        for _ in range(3):
            Rotator(store, strategy=make_strategy("alternating"), lock=LocalLock(),
                    store_retry=NO_STORE_RETRY).rotate(app.name)


class FlakyStore(EmbeddedStore):
    """A real EmbeddedStore whose reads are throttled ``failures`` times first."""

    failures = 0

    def get_secret(self, name, *, stage=None, version_id=None):
        if self.failures:
            self.failures -= 1
            raise Throttled("throttled", code="Rejected.Throttling")
        return super().get_secret(name, stage=stage, version_id=version_id)


def test_retries_stop_at_their_bounds_and_other_errors_are_not_retried(tmp_path):
    store = FlakyStore(tmp_path / "s.db")
    store.create_secret("s", "x", version_id="v1")
    clock = FakeClock()
    slept = clock.slept
    policy = StoreRetryPolicy(total=10, max_attempts=4, backoff=Backoff(base=1, cap=8))
    view = RetryingStore(store, policy, sleep=clock.sleep, monotonic=clock)
    store.failures = 3
    assert view.get_secret("s").data == "x" and len(slept) == 3  # three waits, the fourth call works
    store.failures = 4
    slept.clear()
    with pytest.raises(Throttled):
        view.get_secret("s")
    assert len(slept) == 3 and sum(slept) <= 10  # max_attempts=4: four calls, three waits
    store.failures = 100
    clock.now = 0.0
    with pytest.raises(Throttled):
        RetryingStore(store, StoreRetryPolicy(total=0.5, max_attempts=100, backoff=Backoff(base=1, cap=1)),
                      sleep=clock.sleep, monotonic=clock).get_secret("s")
    assert clock.now <= 0.5  # no wait would end past the total
    store.failures = 0
    with pytest.raises(SecretNotFound):  # not transient: raised at once
        view.get_secret("missing")
    store.close()


@pytest.mark.parametrize("bad", [{"total": -1}, {"max_attempts": 0}, {"backoff": 1.0}, {"total": True}])
def test_store_retry_policy_checks_its_values(bad):
    with pytest.raises(InvalidRotationSetup):
        StoreRetryPolicy(**bad)


def test_the_default_retry_is_bounded_jittered_and_outlasts_a_herd(tmp_path):
    """Pure logic: a store throttled for good is given up within the default's 60 s and 40
    calls; the waits are jittered (a fleet's rotators do not retry in step)."""
    store = FlakyStore(tmp_path / "s.db")
    store.create_secret("s", "x", version_id="v1")
    default = StoreRetryPolicy()
    assert (default.total, default.max_attempts) == (60.0, 40)
    clock = FakeClock()
    slept = clock.slept
    store.failures = 1000
    with pytest.raises(Throttled):
        RetryingStore(store, default, sleep=clock.sleep, monotonic=clock).get_secret("s")
    assert clock.now <= default.total and len(slept) + 1 <= default.max_attempts
    assert len(slept) >= 10  # a throttled herd of tens of seconds gets many chances, not 8
    assert len(set(slept)) == len(slept)  # full jitter: no two waits alike
    # A store that frees up after 30 s of throttling is outlasted.
    store.failures, clock.now = 0, 0.0

    class ThrottledFor30s(FlakyStore):
        def get_secret(self, name, *, stage=None, version_id=None):
            if clock.now < 30.0:
                raise Throttled("throttled", code="Rejected.Throttling")
            return super().get_secret(name, stage=stage, version_id=version_id)

    busy = ThrottledFor30s(tmp_path / "b.db")
    busy.create_secret("s", "x", version_id="v1")
    assert RetryingStore(busy, default, sleep=clock.sleep, monotonic=clock).get_secret("s").data == "x"
    busy.close()
    store.close()


def test_the_default_retry_rotates_while_a_herd_saturates_a_throttled_kms(mariadb, kms, cleanup_accounts, caplog):
    """The KMS emulator throttled to 6 requests/s while 6 readers (backing off as clients do)
    take most of the quota: a Rotator with the default store retry still rotates."""
    import random
    import threading

    emulator, store = kms
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    caplog.set_level(logging.INFO, logger="rotation")
    rotator = Rotator(store, strategy=make_strategy("alternating"), lock=LocalLock())  # the default retry
    stop = threading.Event()
    throttled = [0]

    def reader(seed):
        rng, reader_store = random.Random(seed), emulator.store()
        try:
            attempt = 0
            while not stop.is_set():
                try:
                    reader_store.get_secret(app.name)
                    attempt = 0
                    stop.wait(rng.uniform(0.5, 1.5))
                except Throttled:
                    throttled[0] += 1
                    stop.wait(Backoff(base=0.2, cap=2.0).delay(attempt, rng))
                    attempt += 1
        finally:
            reader_store.close()

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(6)]
    emulator.faults.throttle(6)
    try:
        for t in threads:
            t.start()
        assert rotator.rotate(app.name).rotated
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        emulator.faults.throttle(None)
    assert throttled[0] > 0  # the herd did hit the quota
    retried = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retried and all("(Throttled)" in line for line in retried)  # and so did the rotator
    assert app.can_login(app.current())


# -- bounded by the function invocation (AWS Lambda, Function Compute) -------------------------


class LambdaContext:
    """What AWS Lambda hands a handler, as far as time goes (plain data, not an SDK)."""

    def __init__(self, millis):
        self.millis = millis

    def get_remaining_time_in_millis(self):
        return self.millis


def fc_context(timeout):
    """What Function Compute hands a Python handler: ``function.timeout`` in seconds, no remaining-time call."""
    return SimpleNamespace(request_id="req-1", function=SimpleNamespace(name="rotate", timeout=timeout))


def test_retries_are_bounded_by_the_invocation_context():
    policy = StoreRetryPolicy()
    assert remaining_time(LambdaContext(30_000)) == 30.0
    assert remaining_time(fc_context(15)) == 15.0
    assert remaining_time(LambdaContext(-5)) == 0.0
    for unknown in (None, SimpleNamespace(), SimpleNamespace(function=SimpleNamespace(timeout=None)),
                    LambdaContext("soon"), LambdaContext(True), fc_context(float("inf"))):
        assert remaining_time(unknown) is None
        assert policy.within_invocation(unknown) is policy  # the policy as it was
    clock = lambda: 100.0  # noqa: E731 - a monotonic clock that stands still
    lam = policy.within_invocation(LambdaContext(30_000), monotonic=clock)
    assert lam.deadline == 100.0 + 30.0 - INVOCATION_MARGIN
    assert (lam.total, lam.max_attempts, lam.backoff) == (policy.total, policy.max_attempts, policy.backoff)
    assert policy.deadline is None  # derived, not changed: policies are frozen values
    assert policy.within_invocation(fc_context(15), margin=5, monotonic=clock).deadline == 110.0
    assert lam.until(500.0).deadline == lam.deadline and lam.until(101.0).deadline == 101.0  # the earlier wins
    with pytest.raises(InvalidRotationSetup):
        policy.until(float("nan"))
    with pytest.raises(InvalidRotationSetup):
        policy.within_invocation(LambdaContext(1000), margin=-1)
    with pytest.raises(InvalidRotationSetup):
        StoreRetryPolicy(deadline="soon")


def test_no_retry_waits_past_the_deadline_across_calls(tmp_path):
    """One deadline for the whole invocation: each call's ``total`` would allow 60 s, the
    calls together get what is left before the deadline."""
    store = FlakyStore(tmp_path / "s.db")
    store.create_secret("s", "x", version_id="v1")
    clock = FakeClock()
    slept = clock.slept
    policy = StoreRetryPolicy(backoff=Backoff(base=1, cap=4)).within_invocation(
        LambdaContext(30_000), monotonic=clock)  # retries end at 20 s
    view = RetryingStore(store, policy, sleep=clock.sleep, monotonic=clock)
    store.failures = 1000
    with pytest.raises(Throttled):
        view.get_secret("s")
    first = clock.now
    assert 0 < first <= 20.0 and len(slept) >= 2
    with pytest.raises(Throttled):
        view.get_secret("s")
    assert clock.now <= 20.0  # the second call only had what the first left
    clock.now = 25.0
    slept.clear()
    with pytest.raises(Throttled):
        view.get_secret("s")
    assert slept == []  # past the deadline: one attempt, no wait
    store.close()


def test_fc_handler_gives_up_before_its_timeout(mariadb, kms, cleanup_accounts, monkeypatch):
    """End to end: the FC handler over the KMS emulator, every PutSecretValue throttled. With no
    more time than the margin, the step sends one PutSecretValue and ends with Throttled (a 60 s
    retry would send about 25); the rotation then runs once the store answers again."""
    import rotation.fc

    emulator, store = kms
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    monkeypatch.setenv("ROTATION_STORE", "kms")
    monkeypatch.setenv("ROTATION_KMS_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")
    monkeypatch.setenv("ROTATION_NAME_LIMIT", "80")
    creds = SimpleNamespace(access_key_id=emulator.access_key_id, access_key_secret=emulator.access_key_secret)
    event = {"SecretName": app.name, "RegionId": emulator.region}
    before = [v.version_id for v in store.list_versions(app.name)]
    emulator.faults.set_error_rate(1.0, code="Rejected.Throttling", actions={"PutSecretValue"})
    emulator.faults.reset_calls()
    context = fc_context(INVOCATION_MARGIN)
    context.credentials = creds
    with pytest.raises(Throttled):
        rotation.fc.handler({**event, "Step": "new"}, context)
    assert emulator.faults.calls["PutSecretValue"] == 1
    assert [v.version_id for v in store.list_versions(app.name)] == before  # nothing changed
    emulator.faults.set_error_rate(0.0)
    context = fc_context(300)
    context.credentials = creds
    local = rotation.fc.handler({**event, "Step": "new"}, context)
    for step in ("set", "test", "end"):
        assert rotation.fc.handler({**event, "Step": step, **local}, context) == local
    assert store.get_secret(app.name).version_id == local["VersionId"] == "req-1"
    assert app.can_login(app.current())
