"""Stale-if-error, backoff and negative caching: outages and throttling through the real
aliyun SDK against the KMS emulator; not-found against the EmbeddedStore."""

from __future__ import annotations

import random

import pytest

from secretclient.backoff import Backoff
from secretclient.client import SecretClient
from secretclient.errors import (
    InvalidParameter,
    SecretNotFound,
    StoreUnavailable,
    Throttled,
)
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import ManualClock, ManualExecutor


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def kms(kms_emulator):
    kms_emulator.backing_store.create_secret("db", "pw-1", version_id="v1")
    return kms_emulator


def kms_client(kms, clock, **kw) -> SecretClient:
    kw.setdefault("rotation_aware", False)
    return SecretClient(kms.store(), clock=clock, wall_clock=clock.utc, executor=ManualExecutor(), **kw)


def reads(kms) -> int:
    return kms.calls["GetSecretValue"]


def test_outage_serves_last_value_until_max_stale_then_raises_the_typed_error(kms, clock):
    client = kms_client(kms, clock, ttl=100, max_stale=1000, backoff=Backoff(base=5, cap=5))
    good = client.get("db")
    with kms.faults.outage():
        clock.advance(150)
        assert client.get("db") is good
        stats = client.stats()
        assert stats.stale_serves == 1 and stats.current_staleness == pytest.approx(50)
        clock.advance(950)  # 1000 s past the TTL: still within max_stale
        assert client.get("db") is good
        clock.advance(1)
        with pytest.raises(StoreUnavailable) as info:
            client.get("db")
        assert info.value.code == "ServiceUnavailableTemporary"
    clock.advance(5)  # past the backoff: the store is asked again, and answers
    assert client.get("db").version_id == "v1"
    assert client.stats().current_staleness == 0.0


def test_failed_refresh_ahead_keeps_serving_the_fresh_value(kms, clock):
    executor = ManualExecutor()
    client = SecretClient(
        kms.store(), clock=clock, executor=executor, ttl=100, refresh_ahead=0.5, rotation_aware=False
    )
    good = client.get("db")
    with kms.faults.outage():
        clock.advance(60)
        assert client.get("db") is good
        executor.run_pending()  # the refresh fails
        assert client.get("db") is good
    assert client.stats().stale_serves == 0 and client.stats().store_errors == 1


def test_store_calls_during_an_outage_are_spaced_by_full_jitter_backoff(kms, clock):
    seed, backoff = 7, Backoff(base=2, cap=30)
    client = kms_client(kms, clock, ttl=10, max_stale=10_000, backoff=backoff, rng=random.Random(seed))
    good = client.get("db")
    call_times = []
    with kms.faults.outage():
        clock.advance(10)
        for _ in range(600):  # ten minutes of one read per second
            before = reads(kms)
            assert client.get("db") is good
            if reads(kms) != before:
                call_times.append(clock())
            clock.advance(1)
    expected = random.Random(seed)
    for attempt, (earlier, later) in enumerate(zip(call_times, call_times[1:])):
        delay = backoff.delay(attempt, expected)
        assert delay <= later - earlier < delay + 1  # the first read after the backoff
    assert len(call_times) < 60
    assert client.stats().caller_errors == 0


def test_throttling_is_handled_like_an_outage(kms, clock):
    client = kms_client(kms, clock, ttl=100, backoff=Backoff(base=10, cap=10))
    good = client.get("db")
    kms.faults.set_error_rate(1.0, code="Rejected.Throttling")
    clock.advance(100)
    assert client.get("db") is good
    calls = reads(kms)
    for _ in range(50):
        client.get("db")
    assert reads(kms) == calls  # backing off, not hammering a throttling store
    with pytest.raises(Throttled):  # a cold key has nothing to fall back on
        client.get("other")
    kms.faults.clear()


def test_not_found_is_remembered_briefly(clock):
    store = EmbeddedStore(clock=clock.utc)
    client = SecretClient(store, clock=clock, executor=ManualExecutor(), negative_ttl=5)
    with pytest.raises(SecretNotFound):
        client.get("later")
    store.create_secret("later", "here", version_id="a")
    clock.advance(4)
    with pytest.raises(SecretNotFound):
        client.get("later")  # remembered: no store call
    assert client.stats().store_calls == 1
    clock.advance(1)
    assert client.get_text("later") == "here"
    assert client.stats().store_calls == 2


def test_invalidate_forgets_not_found(clock):
    store = EmbeddedStore(clock=clock.utc)
    client = SecretClient(store, clock=clock, executor=ManualExecutor(), negative_ttl=60)
    with pytest.raises(SecretNotFound):
        client.get("later")
    store.create_secret("later", "here", version_id="a")
    client.invalidate("later")
    assert client.get_text("later") == "here"


def test_deleted_secret_stops_being_served_after_its_refresh(clock):
    store = EmbeddedStore(clock=clock.utc)
    store.create_secret("gone", "x", version_id="a")
    executor = ManualExecutor()
    client = SecretClient(store, clock=clock, executor=executor, ttl=100, rotation_aware=False)
    client.get("gone")
    store.delete_secret("gone")
    clock.advance(90)
    client.get("gone")  # still cached; refresh queued
    executor.run_pending()
    with pytest.raises(SecretNotFound):
        client.get("gone")


def test_invalid_parameter_from_the_store_is_not_cached(clock):
    store = EmbeddedStore(clock=clock.utc)
    client = SecretClient(store, clock=clock, executor=ManualExecutor())
    for _ in range(2):
        with pytest.raises(InvalidParameter):
            client.get("bad name!")
    assert client.stats().store_calls == 2
