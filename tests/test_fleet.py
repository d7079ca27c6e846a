"""Issue 14.4 (survive the herd): a fleet of instances against a throttled KMS while a Rotator rotates.

The unit tests drive the credential search by hand (scripted logins, fake clock, a real
embedded store that answers ``Throttled`` a given number of times); the fleet test runs the
scenario of bench/bench_fleet.py: 40 instances (each its own AliyunKmsStore, SecretClient and
pooled engine) against one KmsEmulator throttled to 10 requests/s and one MariaDB, while a
Rotator in the same process rotates the secret three times.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from test_db_search import OK, SECRET, FakeClock, Setup

from secretclient import Backoff
from secretclient.client import SecretClient
from secretclient.db import Connector, CredentialsRejected, RetryPolicy
from secretclient.errors import Throttled
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_fleet import run_fleet  # the bench's scenario, shared


class ThrottlingStore(EmbeddedStore):
    """A real embedded store whose next ``throttled`` reads answer Throttled, as a busy KMS does."""

    throttled = 0
    reads = 0

    def get_secret(self, name, *, stage=None, version_id=None):
        self.reads += 1
        if self.throttled:
            self.throttled -= 1
            raise Throttled("throttled", code="Rejected.Throttling")
        return super().get_secret(name, stage=stage, version_id=version_id)


class ThrottledSetup(Setup):
    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(policy)
        self.store = ThrottlingStore()
        self.versions = 0
        self.put("app", "pw-1", None)
        self.clock = FakeClock()
        self.client = SecretClient(self.store, rotation_aware=False, clock=self.clock)
        self.connector = Connector(SECRET, self.client, policy=policy, clock=self.clock,
                                   sleep=self.clock.sleep, rng=random.Random(7))


POLICY = RetryPolicy(total=10.0, refresh_jitter=0.5, store_backoff=Backoff(base=1.0, cap=4.0))


def test_a_throttled_store_is_read_again_after_backoff_and_the_connect_succeeds():
    s = ThrottledSetup(POLICY)
    s.run([OK])
    v2 = s.put("app", "pw-2", None)  # rotated elsewhere: the cached pw-1 no longer works
    s.store.throttled = 3
    reads = s.store.reads
    _, creds = s.run([1045, OK])
    assert creds.version_id == v2 and s.sent[-1] == ("app", "pw-2")
    assert s.store.reads - reads == 4  # three throttled reads, then the one that worked
    jitter, *backoffs = s.clock.slept
    assert 0 < jitter <= 0.5
    assert len(backoffs) == 3 and all(0 <= d <= 4.0 for d in backoffs)
    assert s.connector.stats().failures == 0


def test_a_store_throttling_past_the_budget_fails_the_connect_within_it_and_says_why():
    s = ThrottledSetup(POLICY)
    s.run([OK])
    s.put("app", "pw-2", None)
    s.store.throttled = 10_000
    started, reads = s.clock.now, s.store.reads
    with pytest.raises(CredentialsRejected) as info:
        s.run([1045])
    # It kept trying (with backoff) until its budget was nearly spent, and not past it.
    assert POLICY.total - POLICY.store_backoff.cap <= s.clock.now - started <= POLICY.total
    assert "Throttled Rejected.Throttling" in str(info.value)
    _jitter, *backoffs = s.clock.slept
    assert backoffs and all(0 <= d <= POLICY.store_backoff.cap for d in backoffs)
    assert s.store.reads - reads == len(backoffs) + 1  # each read again only after a backoff
    # The connector remembers the throttling: the next connect starts from a longer backoff.
    assert s.connector._view.store_failures() >= 2


def test_concurrent_searches_share_a_failed_read_instead_of_repeating_it():
    s = ThrottledSetup(POLICY)
    s.run([OK])
    s.store.throttled = 1
    since = s.clock.now  # two searches failed now; the first one's read begins a little later
    s.clock.now += 0.1
    reads = s.store.reads
    with pytest.raises(Throttled):
        s.connector._fresh("ACSCurrent", since)
    with pytest.raises(Throttled):  # began before the failed read: shares its outcome
        s.connector._fresh("ACSCurrent", since)
    assert s.store.reads - reads == 1
    s.clock.now += 1
    assert s.connector._fresh("ACSCurrent", s.clock.now).version_id == "v1"  # a later one reads again
    assert s.connector._view.store_failures() == 0


@pytest.fixture
def kms(tmp_path):
    backing = EmbeddedStore(tmp_path / "kms.db")
    emulator = KmsEmulator(store=backing).start()
    try:
        yield emulator
    finally:
        emulator.stop()
        backing.close()


INSTANCES, QUOTA = 40, 10.0


def test_forty_instances_survive_three_rotations_through_a_kms_throttled_to_10_per_second(mariadb, kms):
    result = run_fleet(mariadb, kms, instances=INSTANCES, quota=QUOTA, kind="single", rotations=3)
    print(f"\nfleet: {result}")
    assert result.failures == []
    assert result.rotation_errors == [] and result.rotations == 3
    assert result.queries > 1000  # the fleet did query throughout
    # Issue 14: GetSecretValue requests per rotation (the rotator's and throttled ones included)
    # at most 2 per instance. Runs measure 50-55 for 40 instances with RetryPolicy.for_fleet.
    assert result.get_secret_value / result.rotations <= 2 * INSTANCES


@pytest.mark.parametrize("bad", [{"refresh_jitter": -1}, {"refresh_jitter": True}, {"store_backoff": 1.0}])
def test_retry_policy_checks_the_fleet_fields(bad):
    from secretclient.errors import InvalidParameter

    with pytest.raises(InvalidParameter):
        RetryPolicy(**bad)


def test_for_fleet_spreads_the_reads_over_twice_the_time_the_quota_needs():
    policy = RetryPolicy.for_fleet(40, 10.0)
    assert policy.refresh_jitter == 8.0  # two reads per instance at most, within half the quota
    assert policy.total == 32.0  # a connect may wait out the jitter and a throttled read
    assert RetryPolicy.for_fleet(10, 100.0).total == 30.0  # never shorter than 30 s
    assert RetryPolicy.for_fleet(40, 10.0, total=60.0, rounds=2).total == 60.0


@pytest.mark.parametrize("bad", [(0, 10.0), (True, 10.0), (40, 0), (40, -1.0), (40, "10")])
def test_for_fleet_checks_its_arguments(bad):
    from secretclient.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="for_fleet"):
        RetryPolicy.for_fleet(*bad)


class CountingReads(EmbeddedStore):
    """A real embedded store that counts the reads of each secret."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: dict[str, int] = {}

    def get_secret(self, name, *, stage=None, version_id=None):
        self.reads[name] = self.reads.get(name, 0) + 1
        return super().get_secret(name, stage=stage, version_id=version_id)


@pytest.mark.parametrize("kind", ["single", "alternating"])
def test_a_rotation_reads_the_rotated_secret_three_times(mariadb, cleanup_accounts, kind):
    # A fleet's refresh herd follows the "set" step: the rotator's own reads then compete for the
    # quota. new reads CURRENT; set reads CURRENT and PENDING once, and test and end reuse them.
    from rotation_support import make_app, make_strategy

    from rotation import LocalLock, Rotator

    store = CountingReads()
    app = make_app(mariadb, store, kind)
    cleanup_accounts.append(app.account)
    # A LocalLock: the database lock reads the secret too (to log in), whatever the steps do.
    rotator = Rotator(store, strategy=make_strategy(kind), lock=LocalLock())
    store.reads.clear()
    assert rotator.rotate(app.name).rotated
    assert store.reads[app.name] == 3
    # The FC-style steps, one call each, read again in every step (each may run in a new process).
    store.reads.clear()
    vid = rotator.step(app.name, "new")
    for step in ("set", "test", "end"):
        rotator.step(app.name, step, vid)
    assert store.reads[app.name] > 3


# -- NCP: the same herd behaviour, and its chain read in one request ---------------------------


def test_a_refresh_on_ncp_caches_every_stage_of_the_chain_from_one_request(ncp_emulator):
    from secretclient.errors import SecretNotFound
    from secretclient.model import Stage

    sid = ncp_emulator.create_secret("chain-one-read", '{"cdbPassword": "pw-1"}', rotation_targets=["cdbPassword"])
    with ncp_emulator.store() as store:
        store.put_secret(sid, None, '{"cdbPassword": "pw-2"}', stages=[Stage.PENDING])
        client = SecretClient(store, rotation_aware=False)
        assert client.reads_every_stage
        before = ncp_emulator.calls["GetSecretValue"]
        assert client.refresh(sid, Stage.PENDING)
        assert ncp_emulator.calls["GetSecretValue"] == before + 1
        # Both stages the chain holds are cached; the absent one is remembered as absent.
        assert client.get_json(sid)["cdbPassword"] == "pw-1"
        assert client.get_json(sid, Stage.PENDING)["cdbPassword"] == "pw-2"
        with pytest.raises(SecretNotFound):
            client.get(sid, Stage.PREVIOUS)
        assert ncp_emulator.calls["GetSecretValue"] == before + 1
        client.close()


def test_forty_instances_on_ncp_survive_rotations_through_a_throttled_secret_manager(mariadb, ncp_emulator):
    # NCP's errors map throttling to Throttled, so the same search (jitter, backoff, one read per
    # instance) applies; and one chain read answers CURRENT and PENDING together.
    result = run_fleet(mariadb, ncp_emulator, instances=40, quota=10.0, kind="single", rotations=2)
    print(f"\nncp fleet: {result}")
    assert result.failures == []
    assert result.rotation_errors == [] and result.rotations == 2
    assert result.get_secret_value / result.rotations <= 2 * 40
