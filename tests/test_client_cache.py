"""SecretClient cache behaviour against the real EmbeddedStore, with a manual clock and executor."""

from __future__ import annotations

import threading

import pytest
from store_helpers import CountingStore

from secretclient.client import ClientClosed, SecretClient
from secretclient.errors import (
    InvalidParameter,
    InvalidSecretContent,
    SecretNotFound,
    StoreError,
)
from secretclient.model import PENDING, PREVIOUS
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import ManualClock, ManualExecutor

DB_JSON = '{"AccountName": "app", "AccountPassword": "s3cret-1", "Endpoint": "127.0.0.1", "Port": 3306}'


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> CountingStore:
    inner = EmbeddedStore(clock=clock.utc)
    inner.create_secret("db", DB_JSON, version_id="v1")
    inner.create_secret("token", "t0k3n", version_id="t1")
    return CountingStore(inner)


@pytest.fixture
def executor() -> ManualExecutor:
    return ManualExecutor()


def make_client(store, clock, executor, **kw) -> SecretClient:
    kw.setdefault("rotation_aware", False)
    return SecretClient(store, clock=clock, wall_clock=clock.utc, executor=executor, **kw)


def test_warm_get_is_served_from_cache_without_copy(store, clock, executor):
    client = make_client(store, clock, executor)
    first = client.get("token")
    assert [client.get("token") is first for _ in range(5)] == [True] * 5
    assert first.text == "t0k3n" and first.version_id == "t1"
    assert store.calls["get_secret"] == 1
    stats = client.stats()
    assert (stats.hits, stats.misses, stats.store_calls) == (5, 1, 1)


def test_value_is_reread_after_the_ttl(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100, refresh_ahead=0)
    client.get("token")
    store.inner.put_secret("token", "t2", "new")
    clock.advance(99)
    assert client.get_text("token") == "t0k3n"
    clock.advance(1)
    assert client.get_text("token") == "new"
    assert store.calls["get_secret"] == 2


def test_per_secret_ttl_overrides_the_global_one(store, clock, executor):
    client = make_client(store, clock, executor, ttl=1000, ttls={"token": 10}, refresh_ahead=0)
    client.get("token"), client.get("db")
    clock.advance(10)
    client.get("token"), client.get("db")
    assert store.calls["get_secret"] == 3  # token twice, db once


def test_refresh_ahead_serves_cached_value_while_refreshing_in_background(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100, refresh_ahead=0.2)
    old = client.get("token")
    store.inner.put_secret("token", "t2", "new")
    clock.advance(79)
    client.get("token")
    assert executor.pending == 0  # not yet in the refresh window
    clock.advance(1)
    assert client.get("token") is old and client.get("token") is old
    assert executor.pending == 1  # one background refresh, however many readers
    assert store.calls["get_secret"] == 1  # callers did not wait for the store
    executor.run_pending()
    assert client.get("token").version_id == "t2"
    assert store.calls["get_secret"] == 2
    assert client.stats().refreshes == 1


def test_refresh_ahead_runs_on_a_real_thread_stopped_by_close(store, clock):
    client = SecretClient(store, clock=clock, wall_clock=clock.utc, ttl=100, rotation_aware=False)
    client.get("token")
    store.inner.put_secret("token", "t2", "new")
    clock.advance(90)
    client.get("token")  # starts the refresh thread
    names = lambda: [t.name for t in threading.enumerate() if t.name.startswith("secretclient-refresh")]
    assert names()
    client.close()  # waits for the refresh and joins the thread
    assert names() == []
    assert store.calls["get_secret"] == 2


def read_on_one_flight(store, clock, executor, read, callers: int) -> None:
    """Run ``read(client)`` on ``callers`` threads; the store answers only once every caller
    is waiting on the same flight."""
    gate = threading.Event()
    store.gate = gate
    waiting = threading.Semaphore(0)

    class Observer:
        def on_event(self, event):
            if event.kind == "miss":
                waiting.release()

    client = make_client(store, clock, executor, observer=Observer())
    threads = [threading.Thread(target=read, args=(client,)) for _ in range(callers)]
    for t in threads:
        t.start()
    for _ in range(callers):
        assert waiting.acquire(timeout=10)
    gate.set()
    for t in threads:
        t.join(10)


def test_cold_key_hit_by_64_threads_makes_exactly_one_store_call(store, clock, executor):
    results: list = []
    read_on_one_flight(store, clock, executor, lambda client: results.append(client.get("db")), 64)
    assert len(results) == 64 and len({id(r) for r in results}) == 1
    assert store.calls["get_secret"] == 1


def test_concurrent_callers_share_the_error_of_one_failed_call(store, clock, executor):
    errors: list = []

    def read(client):
        try:
            client.get("missing")
        except SecretNotFound as exc:
            errors.append(exc)

    read_on_one_flight(store, clock, executor, read, 8)
    assert len(errors) == 8 and store.calls["get_secret"] == 1


def test_bounded_cache_evicts_least_recently_fetched(store, clock, executor):
    for i in range(5):
        store.inner.create_secret(f"s{i}", f"v{i}", version_id="a")
    client = make_client(store, clock, executor, max_size=3)
    for i in range(5):
        client.get(f"s{i}")
    assert client.stats().size == 3 and client.stats().evictions == 2
    client.get("s4")
    assert store.calls["get_secret"] == 5
    client.get("s0")  # evicted: read again
    assert store.calls["get_secret"] == 6


def test_read_by_version_id_is_cached_for_good(store, clock, executor):
    store.inner.put_secret("token", "t2", "new")
    client = make_client(store, clock, executor, ttl=10)
    old = client.get("token", version_id="t1")
    assert old.text == "t0k3n" and old.version_id == "t1"
    clock.advance(10_000)
    assert client.get("token", version_id="t1") is old
    assert store.calls["get_secret"] == 1
    assert client.get("token").version_id == "t2"


def test_stages_are_cached_separately(store, clock, executor):
    store.inner.put_secret("token", "t2", "pending-value", stages=[PENDING])
    client = make_client(store, clock, executor)
    assert client.get_text("token", PENDING) == "pending-value"
    assert client.get_text("token") == "t0k3n"
    with pytest.raises(SecretNotFound):
        client.get("token", PREVIOUS)


def test_typed_readers(store, clock, executor):
    store.inner.create_secret("cfg", '{"a": [1, 2]}', version_id="c1")
    client = make_client(store, clock, executor)
    creds = client.get_db_credentials("db")
    assert (creds.account_name, creds.account_password, creds.version_id) == ("app", "s3cret-1", "v1")
    first = client.get_json("cfg")
    first["a"].append(3)  # callers own what get_json returns
    assert client.get_json("cfg") == {"a": [1, 2]}
    with pytest.raises(InvalidSecretContent):
        client.get_db_credentials("token")


def test_invalidate_forgets_every_stage_and_version(store, clock, executor):
    client = make_client(store, clock, executor)
    client.get("token"), client.get("token", version_id="t1"), client.get("db")
    client.invalidate("token")
    client.get("token"), client.get("token", version_id="t1"), client.get("db")
    assert store.calls["get_secret"] == 5


def test_forced_refresh_reports_whether_the_version_changed(store, clock, executor):
    client = make_client(store, clock, executor)
    client.get("token")
    assert client.refresh("token") is False
    store.inner.put_secret("token", "t2", "new")
    assert client.refresh("token") is True
    assert client.get_text("token") == "new"
    assert store.calls["get_secret"] == 3


def test_bad_arguments_raise_typed_errors_and_call_nothing(store, clock, executor):
    client = make_client(store, clock, executor)
    for call in (
        lambda: client.get(""),
        lambda: client.get(None),  # type: ignore[arg-type]
        lambda: client.get("db", ""),
        lambda: client.get("db", PENDING, version_id="v1"),
        lambda: client.refresh(""),
    ):
        with pytest.raises(InvalidParameter):
            call()
    assert store.calls["get_secret"] == 0
    for bad in (
        {"ttl": 0},
        {"ttl": -1},
        {"ttls": {"db": 0}},
        {"refresh_ahead": 1.0},
        {"max_size": 0},
        {"max_stale": float("nan")},
        {"negative_ttl": float("inf")},
        {"backoff": 3},
    ):
        with pytest.raises(InvalidParameter):
            SecretClient(store, **bad)
    with pytest.raises(InvalidParameter):
        SecretClient(object())  # type: ignore[arg-type]


def test_closed_client_refuses_reads_and_drops_values(store, clock, executor):
    with make_client(store, clock, executor) as client:
        client.get("token")
    assert client.stats().size == 0
    with pytest.raises(ClientClosed):
        client.get("token")
    client.close()  # idempotent


def test_close_store_option(clock, executor):
    inner = EmbeddedStore(clock=clock.utc)
    inner.create_secret("x", "y", version_id="a")
    make_client(inner, clock, executor).close()
    assert inner.get_secret("x").text == "y"  # still open
    make_client(inner, clock, executor, close_store=True).close()
    with pytest.raises(StoreError) as err:
        inner.get_secret("x")
    assert err.value.code == "StoreClosed"


def test_stage_given_as_an_equal_string_uses_the_same_entry(store, clock, executor):
    client = make_client(store, clock, executor)
    first = client.get("token")
    built = "".join(["ACS", "Current"])  # equal, not the same object
    assert client.get("token", built) is first and client.get_text("token", built) == "t0k3n"
    assert store.calls["get_secret"] == 1


def test_binary_values(store, clock, executor):
    store.inner.create_secret("utf8", "héllo".encode(), version_id="b1")
    store.inner.create_secret("raw", b"\xff\xfe", version_id="b1")
    client = make_client(store, clock, executor)
    assert client.get("utf8").data == "héllo".encode() and client.get_text("utf8") == "héllo"
    assert client.get("raw").data == b"\xff\xfe"
    with pytest.raises(InvalidSecretContent):
        client.get_text("raw")


def test_readers_never_fail_while_versions_change_under_them(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100)
    client.get("token")
    stop = threading.Event()
    problems: list = []
    seen: set = set()

    def reader():
        while not stop.is_set():
            try:
                secret = client.get("token")
                seen.add(secret.version_id)
                if secret.text != ("t0k3n" if secret.version_id == "t1" else f"value-{secret.version_id}"):
                    problems.append(secret.version_id)
            except Exception as exc:
                problems.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for i in range(40):
        version = f"n{i}"
        store.inner.put_secret("token", version, f"value-{version}")
        if i % 3 == 0:
            client.invalidate("token")
        elif i % 3 == 1:
            client.refresh("token")
        else:
            client.publish(store.inner.get_secret("token"))
    stop.set()
    for t in threads:
        t.join(10)
    assert problems == []
    assert client.get("token").version_id == "n39" and len(seen) > 1


def test_a_reader_takes_over_a_refresh_still_queued_when_the_value_expires(store, clock, executor):
    client = make_client(store, clock, executor, ttl=100, refresh_ahead=0.2)
    client.get("token")
    store.inner.put_secret("token", "t2", "new")
    clock.advance(90)
    client.get("token")  # refresh queued behind a busy executor
    clock.advance(10)  # expired: this reader must not wait for the queue
    assert client.get_text("token") == "new"
    assert executor.run_pending() == 1 and store.calls["get_secret"] == 2  # the queued job did nothing


def test_manual_helpers_are_exported_for_users_and_refuse_going_back():
    from secretclient import testing

    assert testing.ManualClock is ManualClock and testing.ManualExecutor is ManualExecutor
    clock = ManualClock(start=5.0)
    start = clock.utc()
    with pytest.raises(InvalidParameter, match="seconds >= 0"):
        clock.advance(-1)
    clock.advance(2.5)
    assert clock() == 7.5 and (clock.utc() - start).total_seconds() == 2.5
