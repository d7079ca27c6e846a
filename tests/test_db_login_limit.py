"""The failed-login limit is per process and per credential (issue 10, finding 2).

A MariaDB with ``max_password_errors=3`` blocks an account after three failed logins in a row.
Concurrent logins through one engine or many ``connect()`` calls must not send a stale or wrong
password side by side: the first rejection is the last. Failed logins are counted by the
server's audit log.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from db_support import Account
from sqlalchemy.pool import NullPool

from secretclient.client import SecretClient
from secretclient.db import Connector, CredentialsRejected, RetryPolicy, connect
from secretclient.db._gate import Admission, LoginGate, Outcome
from secretclient.db.asyncio import create_async_engine
from secretclient.db.sqlalchemy import create_engine
from secretclient.model import Stage
from secretclient.testing import MariaDB

BURST = 20


@pytest.fixture(scope="module")
def strict_mariadb() -> Iterator[MariaDB]:
    with MariaDB(options={"max_password_errors": 3}) as db:
        yield db


@pytest.fixture
def account(strict_mariadb):
    acc = Account(strict_mariadb)
    yield acc
    acc.client.close()


def _burst(fn: Callable[[], Any], n: int = BURST) -> tuple[list[Any], list[BaseException]]:
    """Run ``fn`` in ``n`` threads released together."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            value = fn()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def _stale_after(account: Account, step: str) -> None:
    """Another instance rotates the single-user secret; our cache keeps the old CURRENT.
    ``end``: the rotation completed; ``set``: the database has the new password, the store
    has it as PENDING only."""
    account.rotate(promote=(step == "end"))


@pytest.mark.parametrize("step", ["end", "set"])
def test_a_burst_through_one_engine_after_a_rotation_costs_one_failed_login(account, step):
    engine = create_engine("mysql+pymysql:///", secret=account.secret, client=account.client, poolclass=NullPool)
    try:
        with engine.connect() as conn:  # the cache now holds the CURRENT version of before
            conn.execute(sa.text("SELECT 1"))
        _stale_after(account, step)

        def query() -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT 1")).scalar_one())

        results, errors = _burst(query)
        assert errors == [] and results == [1] * BURST
        assert account.failed_logins() <= 1
    finally:
        engine.dispose()


def test_a_burst_of_asyncio_tasks_after_a_rotation_costs_one_failed_login(account):
    engine = create_async_engine("mysql+aiomysql:///", secret=account.secret, client=account.client,
                                 poolclass=NullPool)

    async def query() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())

    async def main() -> list[Any]:
        try:
            await query()
            await asyncio.to_thread(_stale_after, account, "end")
            return await asyncio.gather(*(query() for _ in range(BURST)), return_exceptions=True)
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == [1] * BURST
    assert account.failed_logins() <= 1


def test_concurrent_connects_with_a_wrong_secret_cost_one_failed_login_per_password(account):
    right = account.passwords[-1]
    account.put(account.user, "wrong-" + secrets.token_hex(8), None)  # CURRENT wrong
    account.put(account.user, "wrong-" + secrets.token_hex(8), None)  # PREVIOUS wrong too
    policy = RetryPolicy(total=3.0)

    def attempt() -> None:
        connect(account.secret, client=account.client, policy=policy).close()

    results, errors = _burst(attempt)
    assert results == [] and len(errors) == BURST
    assert all(isinstance(e, CredentialsRejected) for e in errors)
    assert account.failed_logins() == 2  # below max_password_errors: the account is not blocked
    with account.db.connect(account.user, right) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    # A later search of the process does not send them again either.
    with pytest.raises(CredentialsRejected) as info:
        connect(account.secret, client=account.client, policy=policy)
    assert info.value.attempts == () and "not sent, rejected before" in str(info.value)
    assert account.failed_logins() == 2


def test_a_rejection_is_shared_by_every_connector_of_the_process(account):
    other_client = SecretClient(account.store, rotation_aware=False)  # another cache, same process
    first = Connector(account.secret, account.client)
    second = Connector(account.secret, other_client)
    try:
        first.connect()[0].close()
        second.connect()[0].close()  # both caches hold the CURRENT version of before
        account.rotate()
        first.connect()[0].close()  # rejected once, recovered
        assert account.failed_logins() == 1
        conn, creds = second.connect()  # its stale version is not sent again
        conn.close()
        assert creds.version_id == first.current_version
        assert account.failed_logins() == 1
        assert (second.stats().rejected, second.stats().skipped, second.stats().recovered) == (0, 1, 1)
    finally:
        other_client.close()


# -- the gate itself (pure logic) --------------------------------------------------------------


def test_gate_memory_holds_no_password_and_is_bounded():
    gate = LoginGate(capacity=8)
    password = "p\u00e4ss-" + secrets.token_hex(8)
    key = gate.key("mysql", "h:1", "u", password)
    assert len(key) == 16 and password.encode() not in key
    assert key != LoginGate().key("mysql", "h:1", "u", password)  # keyed per process
    assert key != gate.key("mysql", "h:2", "u", password)
    for i in range(100):
        k = gate.key("mysql", "h:1", f"u{i}", password)
        assert gate.admit(k, Stage.CURRENT, 0.0) == (Admission.GO, None)
        gate.settle(k, Outcome.REJECTED, Stage.CURRENT, 0.0, 60.0)
    assert len(gate._entries) <= 8


def test_gate_forgets_after_remember_rejected_and_allows_a_promoted_pending_once():
    gate = LoginGate()
    k = gate.key("mysql", "h:1", "u", "pw")
    assert gate.admit(k, Stage.PENDING, 0.0) == (Admission.GO, None)
    gate.settle(k, Outcome.REJECTED, Stage.PENDING, 0.0, 60.0)
    assert gate.admit(k, Stage.PENDING, 1.0) == (Admission.SKIP, None)
    assert gate.admit(k, Stage.CURRENT, 1.0) == (Admission.GO, None)  # promoted: once more
    gate.settle(k, Outcome.REJECTED, Stage.CURRENT, 1.0, 60.0)
    assert gate.admit(k, Stage.CURRENT, 2.0) == (Admission.SKIP, None)
    assert gate.admit(k, Stage.CURRENT, 61.0) == (Admission.GO, None)  # forgotten


def test_gate_sends_a_pending_rejected_before_a_database_change_once_more():
    gate = LoginGate()
    old, new, stale = (gate.key("mysql", "h:1", "u", pw) for pw in ("old", "new", "stale"))
    assert gate.admit(old, Stage.CURRENT, 0.0) == (Admission.GO, None)
    gate.settle(old, Outcome.OK, Stage.CURRENT, 0.0, 60.0)
    for key, role in ((new, Stage.PENDING), (stale, Stage.PREVIOUS)):  # rejected: "set" has not run
        assert gate.admit(key, role, 1.0) == (Admission.GO, None)
        gate.settle(key, Outcome.REJECTED, role, 1.0, 60.0)
    assert gate.admit(new, Stage.PENDING, 2.0) == (Admission.SKIP, None)
    # "set" runs: the password that logged in is rejected, the database changed.
    assert gate.admit(old, Stage.CURRENT, 3.0) == (Admission.GO, None)
    gate.settle(old, Outcome.REJECTED, Stage.CURRENT, 3.0, 60.0)
    assert gate.admit(old, Stage.CURRENT, 4.0) == (Admission.SKIP, None)  # the change itself
    assert gate.admit(stale, Stage.PREVIOUS, 4.0) == (Admission.SKIP, None)  # not PENDING
    assert gate.admit(new, Stage.PENDING, 4.0) == (Admission.GO, None)  # once more
    gate.settle(new, Outcome.REJECTED, Stage.PENDING, 4.0, 60.0)
    assert gate.admit(new, Stage.PENDING, 5.0) == (Admission.SKIP, None)  # rejected since: no more


def test_gate_dates_a_rejection_by_when_the_login_was_sent():
    gate = LoginGate()
    old, new = gate.key("mysql", "h:1", "u", "old"), gate.key("mysql", "h:1", "u", "new")
    assert gate.admit(old, Stage.CURRENT, 0.0) == (Admission.GO, None)
    gate.settle(old, Outcome.OK, Stage.CURRENT, 0.0, 60.0)
    assert gate.admit(new, Stage.PENDING, 1.0) == (Admission.GO, None)  # sent before "set"
    assert gate.admit(old, Stage.CURRENT, 2.0) == (Admission.GO, None)  # sent after it
    gate.settle(old, Outcome.REJECTED, Stage.CURRENT, 2.0, 60.0)
    gate.settle(new, Outcome.REJECTED, Stage.PENDING, 3.0, 60.0)  # its answer comes later
    assert gate.admit(new, Stage.PENDING, 4.0) == (Admission.GO, None)


def test_gate_lets_one_login_fly_and_the_others_wait_for_its_answer():
    gate = LoginGate()
    k = gate.key("mysql", "h:1", "u", "pw")
    assert gate.admit(k, Stage.CURRENT, 5.0) == (Admission.GO, None)
    waiting, flight = gate.admit(k, Stage.CURRENT, 6.0)
    assert waiting is Admission.WAIT and flight is not None and flight.started == 5.0
    assert gate.admit(k, Stage.CURRENT, 6.0) == (Admission.WAIT, flight)  # one flight for all
    woken: list[str] = []
    assert flight.add_done_callback(lambda: woken.append("x"))
    assert not flight.wait(0.0)
    gate.settle(k, Outcome.OK, Stage.CURRENT, 7.0, 60.0)
    assert woken == ["x"] and flight.wait(0.0) and flight.outcome is Outcome.OK
    assert not flight.add_done_callback(lambda: None)
    # A place is free: one of the waiting goes, the next waits again.
    assert gate.admit(k, Stage.CURRENT, 8.0) == (Admission.GO, None)
    waiting, second = gate.admit(k, Stage.CURRENT, 8.0)
    assert waiting is Admission.WAIT and second is not flight
    gate.settle(k, Outcome.REJECTED, Stage.CURRENT, 9.0, 60.0, 1045)
    assert second.outcome is Outcome.REJECTED and second.errno == 1045
    assert gate.admit(k, Stage.CURRENT, 10.0) == (Admission.SKIP, None)
    # Two places: two go at once.
    k2 = gate.key("mysql", "h:1", "u", "pw2")
    assert [gate.admit(k2, Stage.CURRENT, 0.0, limit=2)[0] for _ in range(3)] == [
        Admission.GO, Admission.GO, Admission.WAIT]
