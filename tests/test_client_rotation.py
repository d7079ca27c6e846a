"""Rotation awareness: DescribeSecret's next rotation, subscriptions and publish()."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from store_helpers import CountingStore

from secretclient.client import SecretClient
from secretclient.errors import InvalidParameter, SecretNotFound
from secretclient.model import CURRENT, PENDING, PREVIOUS, Secret
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import ManualClock, ManualExecutor


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock) -> CountingStore:
    inner = EmbeddedStore(clock=clock.utc)
    inner.create_secret("db", "pw-1", version_id="v1", rotation_interval=timedelta(hours=2))
    inner.create_secret("plain", "x", version_id="p1")
    return CountingStore(inner)


@pytest.fixture
def executor() -> ManualExecutor:
    return ManualExecutor()


def make_client(store, clock, executor, **kw) -> SecretClient:
    return SecretClient(store, clock=clock, wall_clock=clock.utc, executor=executor, **kw)


def test_refreshes_after_the_next_rotation_within_twice_rotation_delay(store, clock, executor):
    client = make_client(store, clock, executor, ttl=86400, rotation_delay=60)
    client.get("db")
    executor.run_pending()  # DescribeSecret: next rotation in 2 h
    assert store.describes == 1
    clock.advance(7200 + 59)
    client.get("db")
    assert executor.pending == 0
    store.inner.put_secret("db", "v2", "pw-2")  # the rotation happened
    clock.advance(61)  # the refresh comes between rotation_delay and twice it after the rotation
    assert client.get_text("db") == "pw-1"  # callers keep the cached value...
    executor.run_pending()  # ...while the refresh runs
    assert client.get_text("db") == "pw-2"
    # A new version: when does it rotate next? Asked on a read within rotation_delay, not at once.
    assert store.describes == 1 and executor.pending == 0
    clock.advance(60)
    client.get("db")
    executor.run_pending()
    assert store.describes == 2 and store.reads == 2


def test_a_fleet_spreads_its_refreshes_and_describes_over_rotation_delay(store, clock):
    # Clients that learnt the same rotation time refresh at different moments in
    # [rotation_delay, 2 x rotation_delay] after it, then describe the new version at different
    # moments within rotation_delay: a fleet does not hit the store all at once.
    import random

    fleet = []
    for i in range(20):
        executor = ManualExecutor()
        client = make_client(store, clock, executor, ttl=86400, rotation_delay=60, rng=random.Random(i))
        client.get("db")
        executor.run_pending()
        fleet.append((client, executor))
    store.inner.put_secret("db", "v2", "pw-2")
    clock.advance(7200 + 59)
    refreshed_at, described_at = {}, {}
    for second in range(60, 200):
        clock.advance(1)
        for i, (client, executor) in enumerate(fleet):
            client.get("db")
            ran = executor.run_pending()
            if ran and i not in refreshed_at:
                refreshed_at[i] = second
            elif ran:
                described_at.setdefault(i, second)
    assert len(refreshed_at) == 20 and all(60 <= s <= 120 for s in refreshed_at.values())
    assert len(set(refreshed_at.values())) > 10  # spread, not one burst
    assert len(described_at) == 20
    assert all(0 <= described_at[i] - refreshed_at[i] <= 61 for i in range(20))
    assert len(set(described_at.values())) > 10
    assert all(client.get_text("db") == "pw-2" for client, _ in fleet)


def test_without_a_next_rotation_date_last_rotation_plus_interval_is_used(store, clock, executor):
    class IntervalOnly(CountingStore):
        """A store that reports the interval and the last rotation, but no next date."""

        def describe(self, name):
            info = super().describe(name)
            return replace(info, next_rotation=None, last_rotation=clock.utc() - timedelta(minutes=30))

    interval_store = IntervalOnly(store.inner)
    client = make_client(interval_store, clock, executor, ttl=86400, rotation_delay=60)
    client.get("db")
    executor.run_pending()  # last rotation 30 min ago + 2 h interval: next in 90 min
    clock.advance(90 * 60 + 59)
    client.get("db")
    assert executor.pending == 0
    clock.advance(61)
    client.get("db")
    assert executor.pending == 1  # the refresh after the rotation is queued
    executor.run_pending()
    assert interval_store.reads == 2


def test_describe_once_per_version_not_per_refresh(store, clock, executor):
    client = make_client(store, clock, executor, ttl=60)
    for _ in range(10):
        client.get("plain")
        executor.run_pending()
        clock.advance(60)
    assert store.reads == 10 and store.describes == 1
    store.inner.put_secret("plain", "p2", "y")
    for _ in range(3):  # the new version's DescribeSecret comes within rotation_delay (60 s)
        client.get("plain")
        executor.run_pending()
        clock.advance(30)
    assert store.describes == 2


def test_rotation_awareness_can_be_turned_off(store, clock, executor):
    client = make_client(store, clock, executor, ttl=86400, rotation_aware=False)
    client.get("db")
    executor.run_pending()
    clock.advance(7200 + 3600)
    client.get("db")
    assert store.describes == 0 and executor.pending == 0


def test_overdue_rotation_does_not_cause_constant_refreshes(store, clock, executor):
    clock.advance(5 * 3600)  # rotation was due 3 h ago and did not happen
    client = make_client(store, clock, executor, ttl=1000, rotation_delay=60)
    client.get("db")
    executor.run_pending()
    clock.advance(500)
    client.get("db")
    assert executor.pending == 0 and store.reads == 1


def test_subscribers_are_called_once_per_new_version(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100, rotation_aware=False)
    seen: list[str] = []
    client.get("plain")
    unsubscribe = client.subscribe("plain", lambda s: seen.append(s.version_id))
    client.refresh("plain")
    assert seen == []  # the version current when subscribing is not new
    store.inner.put_secret("plain", "p2", "y")
    client.refresh("plain")
    client.refresh("plain")
    clock.advance(100)
    client.get("plain")  # same version again through an expiry
    assert seen == ["p2"]
    store.inner.put_secret("plain", "p3", "z")
    clock.advance(90)
    client.get("plain")
    executor.run_pending()  # seen by the background refresh
    assert seen == ["p2", "p3"]
    unsubscribe()
    store.inner.put_secret("plain", "p4", "w")
    client.refresh("plain")
    assert seen == ["p2", "p3"]


def test_subscriber_exceptions_are_logged_not_raised(store, clock, executor, caplog):
    client = make_client(store, clock, executor, rotation_aware=False)
    client.get("plain")
    calls: list[str] = []

    def broken(secret: Secret) -> None:
        raise RuntimeError(f"cannot use {secret.text}")  # quotes the value on purpose

    client.subscribe("plain", broken)
    client.subscribe("plain", lambda s: calls.append(s.version_id))
    store.inner.put_secret("plain", "p2", "value-in-message")
    with caplog.at_level(logging.DEBUG, logger="secretclient"):
        assert client.refresh("plain") is True
    assert calls == ["p2"]  # the next subscriber still ran
    assert "RuntimeError" in caplog.text and "broken" in caplog.text
    assert "value-in-message" not in caplog.text


def test_publish_hands_over_a_new_version_without_a_store_call(store, clock, executor):
    client = make_client(store, clock, executor, rotation_aware=False)
    client.get("plain")
    with pytest.raises(SecretNotFound):
        client.get("plain", PREVIOUS)  # no previous version yet (remembered as not found)
    seen: list[str] = []
    client.subscribe("plain", lambda s: seen.append(s.version_id))
    store.inner.put_secret("plain", "p2", "rotated")
    reads = store.reads
    new = store.inner.get_secret("plain")
    client.publish(new)
    assert client.get("plain") is new and store.reads == reads
    assert seen == ["p2"]
    assert client.get_text("plain", PREVIOUS) == "x"  # other stages are re-read, not stale


def test_publish_drops_other_cached_stages(store, clock, executor):
    client = make_client(store, clock, executor, rotation_aware=False)
    store.inner.put_secret("plain", "p2", "pending", stages=[PENDING])
    assert client.get_text("plain", PENDING) == "pending"
    store.inner.update_stage("plain", CURRENT, move_to="p2")
    store.inner.update_stage("plain", PENDING, remove_from="p2")
    client.publish(store.inner.get_secret("plain"))
    with pytest.raises(SecretNotFound):
        client.get("plain", PENDING)


def test_publish_refuses_a_version_that_is_not_current(store, clock, executor):
    client = make_client(store, clock, executor)
    store.inner.put_secret("plain", "p2", "pending", stages=[PENDING])
    pending = store.inner.get_secret("plain", stage=PENDING)
    with pytest.raises(InvalidParameter, match="ACSCurrent"):
        client.publish(pending)
    with pytest.raises(InvalidParameter):
        client.publish("not a secret")  # type: ignore[arg-type]
    assert client.get_text("plain") == "x"


def test_a_read_older_than_a_publish_never_overwrites_it(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100, rotation_aware=False)
    client.get("plain")
    clock.advance(90)
    client.get("plain")  # background refresh queued
    real_read = store.get_secret

    def read_then_lose_the_race(name, **kw):
        old = real_read(name, **kw)  # reads p1...
        clock.advance(1)  # ...and while it travels back, a rotation publishes p2
        store.inner.put_secret("plain", "p2", "new")
        client.publish(store.inner.get_secret("plain"))
        return old

    store.get_secret = read_then_lose_the_race
    executor.run_pending()
    assert client.get("plain").version_id == "p2"
