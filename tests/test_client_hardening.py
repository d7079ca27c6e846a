"""SecretClient hardening (issue 10): forks during a background refresh, bounded waits, a
clock that steps back; and the frozen CachePolicy behind the keyword arguments."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from secretclient import EmbeddedStore, StoreTimeout
from secretclient.cache_policy import CachePolicy
from secretclient.client import SecretClient
from secretclient.errors import InvalidParameter
from secretclient.testing import ManualClock, ManualExecutor


class ParentGatedStore:
    """A real EmbeddedStore whose reads block, in the parent process only, while ``gate`` is
    closed (a store call hanging in the background refresh thread at fork time)."""

    def __init__(self, inner: EmbeddedStore) -> None:
        self.inner = inner
        self.parent = os.getpid()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.stage_labels = inner.stage_labels

    def get_secret(self, name, *, stage=None, version_id=None):
        if os.getpid() == self.parent and not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(30), "test gate never opened"
        return self.inner.get_secret(name, stage=stage, version_id=version_id)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _reap(pids: list[int], seconds: float) -> dict[int, int | None]:
    """Exit status of each child within ``seconds`` (``None``: hung, then killed)."""
    status: dict[int, int | None] = {}
    deadline = time.monotonic() + seconds
    while len(status) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in status:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status[pid] = os.waitstatus_to_exitcode(code)
        time.sleep(0.02)
    for pid in pids:
        if pid not in status:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status[pid] = None
    return status


def test_children_forked_during_a_background_refresh_read_on(tmp_path):
    """The gunicorn --preload pattern: the master made the client and warmed it, then forks
    workers while its refresh-ahead waits on the store."""
    path = tmp_path / "s.db"
    inner = EmbeddedStore(path)
    inner.create_secret("db", "one", version_id="v1")
    store = ParentGatedStore(inner)
    clock = ManualClock()
    client = SecretClient(store, ttl=100, refresh_ahead=0.5, clock=clock, rotation_aware=False)
    store.gate.set()
    assert client.get_text("db") == "one"
    store.gate.clear()
    clock.advance(60)  # in the refresh-ahead window
    assert client.get_text("db") == "one"  # a background refresh starts and blocks in the store
    assert store.entered.wait(10)
    inner.put_secret("db", "v2", "two")
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # the child: past the TTL, the read must reach the store itself
            code = 3
            try:
                clock.advance(100)
                ok = client.get_text("db") == "two"
                clock.advance(60)
                ok = ok and client.get_text("db") == "two"  # refresh-ahead runs on a new pool
                client.close()
                code = 0 if ok else 2
            finally:
                os._exit(code)
        pids.append(pid)
    try:
        status = _reap(pids, 30)
    finally:
        store.gate.set()
        client.close()
    assert list(status.values()) == [0, 0, 0, 0]


def test_a_reader_waits_a_bounded_time_for_a_hung_store_call():
    inner = EmbeddedStore()
    inner.create_secret("db", "one", version_id="v1")
    store = ParentGatedStore(inner)
    client = SecretClient(store, ttl=100, wait_timeout=0.2, rotation_aware=False)
    first = threading.Thread(target=lambda: client.get("db"), daemon=True)
    first.start()
    assert store.entered.wait(10)
    with pytest.raises(StoreTimeout, match="wait_timeout"):
        client.get("db")  # shares the hung read: gives up after 0.2 s, nothing cached to serve
    store.gate.set()
    first.join(10)
    assert client.get_text("db") == "one"
    client.close()


class SteppingClock:
    """An injected clock that can be set anywhere, backwards included."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_clock_stepping_back_neither_drops_a_refresh_nor_a_publish():
    store = EmbeddedStore()
    store.create_secret("db", "one", version_id="v1")
    clock = SteppingClock(10_000.0)
    client = SecretClient(store, clock=clock, executor=ManualExecutor(), rotation_aware=False)
    assert client.get("db").version_id == "v1"
    clock.now = 5_000.0  # stepped back
    store.put_secret("db", "v2", "two")
    assert client.refresh("db") is True
    assert client.get("db").version_id == "v2"
    clock.now = 1_000.0
    store.put_secret("db", "v3", "three")
    client.publish(store.get_secret("db"))
    assert client.get("db").version_id == "v3"
    assert client.refresh("db") is False


def test_policy_object_and_keyword_arguments_are_the_same():
    store = EmbeddedStore()
    policy = CachePolicy(ttl=60, ttls={"db": 5})
    a = SecretClient(store, policy=policy)
    b = SecretClient(store, ttl=60, ttls={"db": 5})
    assert a.policy == b.policy and a.policy.ttl_of("db") == 5 and a.policy.ttl_of("x") == 60
    assert SecretClient(store, policy=policy, ttl=30).policy.ttl == 30  # keywords override
    assert SecretClient(store, ttls=None).policy.ttls == {}  # as before the policy object
    with pytest.raises(InvalidParameter, match="unknown cache option"):
        SecretClient(store, tll=60)
    with pytest.raises(InvalidParameter, match="wait_timeout"):
        CachePolicy(wait_timeout=0)
    with pytest.raises(TypeError):
        policy.ttls["db"] = 1  # frozen all the way down


def test_close_waits_a_bounded_time_for_a_hung_refresh():
    inner = EmbeddedStore()
    inner.create_secret("db", "one", version_id="v1")
    store = ParentGatedStore(inner)
    clock = ManualClock()
    client = SecretClient(store, ttl=100, refresh_ahead=0.5, wait_timeout=0.2, clock=clock, rotation_aware=False)
    store.gate.set()
    client.get("db")
    store.gate.clear()
    clock.advance(60)
    client.get("db")  # the background refresh hangs in the store
    assert store.entered.wait(10)
    done = threading.Event()
    closer = threading.Thread(target=lambda: (client.close(), done.set()), daemon=True)
    closer.start()
    finished = done.wait(10)  # returns after wait_timeout, long before the gate opens
    store.gate.set()
    assert finished


def test_close_drops_the_jobs_a_callers_executor_has_not_run_instead_of_waiting_for_them():
    # A DescribeSecret queued on an executor that never runs it used to hold close() for the
    # whole wait_timeout (30 s): close() now cancels it rather than waiting for it.
    from store_helpers import CountingStore

    class Recording(ManualExecutor):
        def __init__(self) -> None:
            super().__init__()
            self.futures = []

        def submit(self, fn, /, *args, **kwargs):
            future = super().submit(fn, *args, **kwargs)
            self.futures.append(future)
            return future

    store = CountingStore(EmbeddedStore())
    store.inner.create_secret("db", "pw", version_id="v1")
    executor = Recording()
    client = SecretClient(store, executor=executor, wait_timeout=30)
    client.get("db")
    [describe] = executor.futures  # the first DescribeSecret, queued
    client.close()
    assert describe.cancelled()
    executor.run_pending()  # the dropped job does not run on a closed client
    assert store.describes == 0
