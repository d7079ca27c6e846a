"""Issue 14.4: a Rotator retries store calls that fail transiently, within a bounded time."""

from __future__ import annotations

import logging

import pytest
from rotation_support import make_app, make_strategy

from rotation import InvalidRotationSetup, LocalLock, Rotator, StoreRetryPolicy
from rotation.store_retry import NO_STORE_RETRY, RetryingStore
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
            Rotator(store, strategy=make_strategy("alternating"), lock=LocalLock(), store_retry=NO_STORE_RETRY).rotate(app.name)


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
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    policy = StoreRetryPolicy(total=10, max_attempts=4, backoff=Backoff(base=1, cap=8))
    view = RetryingStore(store, policy, sleep=sleep, monotonic=lambda: now[0])
    store.failures = 3
    assert view.get_secret("s").data == "x" and len(slept) == 3  # three waits, the fourth call works
    store.failures = 4
    slept.clear()
    with pytest.raises(Throttled):
        view.get_secret("s")
    assert len(slept) == 3 and sum(slept) <= 10  # max_attempts=4: four calls, three waits
    store.failures = 100
    now[0] = 0.0
    with pytest.raises(Throttled):
        RetryingStore(store, StoreRetryPolicy(total=0.5, max_attempts=100, backoff=Backoff(base=1, cap=1)),
                      sleep=sleep, monotonic=lambda: now[0]).get_secret("s")
    assert now[0] <= 0.5  # no wait would end past the total
    store.failures = 0
    with pytest.raises(SecretNotFound):  # not transient: raised at once
        view.get_secret("missing")
    store.close()


@pytest.mark.parametrize("bad", [{"total": -1}, {"max_attempts": 0}, {"backoff": 1.0}, {"total": True}])
def test_store_retry_policy_checks_its_values(bad):
    with pytest.raises(InvalidRotationSetup):
        StoreRetryPolicy(**bad)
