"""Issue 10.15: stores tell their own time (``server_time()``), so a rotator's clock that is off
does not shorten a grace period. Real servers over HTTP: KMS and NCP emulators, moto's server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from secretclient.errors import SecretNotFound
from secretclient.stores._server_clock import ServerClock
from secretclient.stores.embedded import EmbeddedStore

# The servers here run on this machine: their Date is our clock, to the second.
CLOSE = timedelta(seconds=5)


class _Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_server_clock_carries_the_last_date_forward_monotonically():
    ticks = _Ticks()
    clock = ServerClock(ticks)
    assert clock.now() is None
    clock.observe("Tue, 01 Dec 2026 02:00:00 GMT")
    ticks.now += 30
    assert clock.now() == datetime(2026, 12, 1, 2, 0, 30, tzinfo=UTC)
    for junk in (None, "", "yesterday", b"Tue, 01 Dec 2026 02:00:00 GMT", 1764554400):
        clock.observe(junk)  # ignored: the last good date stays
    assert clock.now() == datetime(2026, 12, 1, 2, 0, 30, tzinfo=UTC)
    clock.observe("Tue, 01 Dec 2026 05:00:00 +0300")  # any zone comes out as UTC
    assert clock.now() == datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    ticks.now -= 50  # a monotonic clock never goes back; a bad one does not make time run backwards
    assert clock.now() == datetime(2026, 12, 1, 2, 0, 0, tzinfo=UTC)


def _answers_with_date(store, missing: str) -> None:
    assert store.server_time() is None  # no answer yet
    with pytest.raises(SecretNotFound):  # an error's answer carries the server's Date too
        store.get_secret(missing)
    seen = store.server_time()
    assert seen is not None and seen.tzinfo is not None
    assert abs(seen - datetime.now(UTC)) < CLOSE


def test_aliyun_store_knows_kms_time_from_its_answers(kms_emulator):
    store = kms_emulator.store()
    _answers_with_date(store, "no-such-secret")
    store.create_secret("app/db", "v1")
    assert abs(store.server_time() - store.get_secret("app/db").created) < CLOSE


def test_kms_emulator_dates_its_answers_with_the_clock_that_stamps_its_versions(tmp_path):
    from secretclient.testing.kms_emulator import KmsEmulator

    ahead = timedelta(hours=3)
    with EmbeddedStore(tmp_path / "s.db", clock=lambda: datetime.now(UTC) + ahead) as backing, \
            KmsEmulator(store=backing) as emulator:
        store = emulator.store()
        store.create_secret("app/db", "v1")
        assert abs(store.server_time() - (datetime.now(UTC) + ahead)) < CLOSE
        assert abs(store.server_time() - store.get_secret("app/db").created) < CLOSE


def test_aws_store_knows_the_servers_time_from_its_answers(moto_server):
    store = moto_server.store()
    _answers_with_date(store, "no-such-secret")
    store.close()


def test_ncp_store_knows_the_servers_time_from_its_answers(ncp_emulator):
    from rotation.ncp import for_engine

    store = ncp_emulator.store()
    view = for_engine(store)  # what an in-process Rotator sees
    assert view.server_time() is None
    _answers_with_date(store, "no-such-secret")
    assert abs(view.server_time() - store.server_time()) < CLOSE


def test_embedded_store_time_is_its_own_clock(tmp_path):
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with EmbeddedStore(tmp_path / "s.db", clock=lambda: at) as store:
        assert store.server_time() == at
        store.create_secret("app/db", "v1")
        assert store.get_secret("app/db").created == store.server_time()
