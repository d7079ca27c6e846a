"""Rotation awareness across processes for a Generic secret on KMS (issue 11, item 2).

KMS gives a Generic secret no automatic rotation and no next rotation date, so the engine
records its own (``record_next_rotation``, a tag ``DescribeSecret`` returns). One process runs
a :class:`rotation.Scheduler`; a ``SecretClient`` in another process, with a 1 h TTL, holds the
new version soon after the rotation, without any store request on its warm path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from rotation_support import child_env, make_app, start_store

import rotation.fc
from rotation import InvalidRotationSetup, LocalLock, Rotator, SingleUserStrategy
from rotation.fc import rotator_from_environment
from secretclient import CachePolicy, SecretClient
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator

CHILD = Path(__file__).with_name("awareness_child.py")
INTERVAL = 8.0  # the schedule, and the client's rotation_delay (longer than a rotation takes)


def test_a_client_in_another_process_follows_a_scheduled_rotation_well_before_its_ttl(
        mariadb, tmp_path, cleanup_accounts):
    backing = EmbeddedStore(tmp_path / "secrets.db")
    emulator = KmsEmulator(store=backing).start()
    store = emulator.store()
    client = None
    child = None
    try:
        app = make_app(mariadb, store, "single-master", rich=False)
        cleanup_accounts.append(app.account)
        assert store.describe(app.name).rotation_interval is None  # KMS does not rotate Generic secrets
        spec = {"store": {"kind": "kms", "region": emulator.region, "endpoint": emulator.endpoint,
                          "ak": emulator.access_key_id, "sk": emulator.access_key_secret},
                "secret": app.name, "strategy": "single-master", "interval": INTERVAL, "limit": 120}
        child = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=child_env(), text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        # The schedule is recorded where DescribeSecret returns it.
        info = store.describe(app.name)
        assert info.next_rotation is not None

        emulator.faults.reset_calls()
        client = SecretClient(store, policy=CachePolicy(ttl=3600.0, rotation_delay=INTERVAL))
        first = client.get(app.name).version_id
        reads = 1
        deadline = time.monotonic() + 2 * INTERVAL + 30.0  # far below the 1 h TTL
        while client.get(app.name).version_id == first and time.monotonic() < deadline:
            reads += 1
            time.sleep(0.01)
        assert client.get(app.name).version_id != first, "the client kept the old version"
        assert client.get(app.name).version_id in {v.version_id for v in store.list_versions(app.name)}
        # The new version is described on a read within rotation_delay (spread across a fleet).
        describe_deadline = time.monotonic() + INTERVAL + 5.0
        while client.stats().describe_calls < 2 and time.monotonic() < describe_deadline:
            client.get(app.name)
            reads += 1
            time.sleep(0.05)
        stats = client.stats()
        # Warm path: hundreds of reads, two store reads (the first, and the one at rotation time).
        assert reads > 100
        assert stats.store_calls == 2
        # The scheduler never calls DescribeSecret: every one counted by the emulator is the client's.
        assert stats.describe_calls == 2 == emulator.faults.calls["DescribeSecret"]
    finally:
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if client is not None:
            client.close()
        store.close()
        emulator.stop()
        backing.close()



def test_fc_end_step_records_the_next_rotation_from_its_interval(mariadb, tmp_path, cleanup_accounts, monkeypatch):
    handle = start_store("kms", tmp_path)
    try:
        app = make_app(mariadb, handle.store, "alternating")
        cleanup_accounts.append(app.account)
        monkeypatch.setenv("ROTATION_STORE", "kms")
        monkeypatch.setenv("ROTATION_KMS_ENDPOINT", handle.spec["endpoint"])
        monkeypatch.setenv("ROTATION_STRATEGY", "alternating")
        monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")
        creds = SimpleNamespace(accessKeyId=handle.spec["ak"], accessKeySecret=handle.spec["sk"], securityToken=None)
        payload = {"SecretName": app.name, "RegionId": "cn-hangzhou"}

        def flow(run: int) -> None:
            context = SimpleNamespace(requestId=f"req-{run}", credentials=creds)
            local = rotation.fc.handler({**payload, "Step": "new"}, context)
            for step in ("set", "test", "end"):
                rotation.fc.handler({**payload, "Step": step, **local}, context)

        flow(1)  # no interval configured: nothing is recorded
        assert handle.store.describe(app.name).next_rotation is None
        monkeypatch.setenv("ROTATION_INTERVAL_SECONDS", "86400")
        before = datetime.now(UTC).replace(microsecond=0)
        flow(2)
        after = datetime.now(UTC)
        assert handle.store.get_secret(app.name).version_id == "req-2"
        planned = handle.store.describe(app.name).next_rotation
        assert planned is not None
        assert before + timedelta(days=1) <= planned <= after + timedelta(days=1)
        # `rotation status` shows it too, since KMS gives the Generic secret no interval.
        rotator = rotator_from_environment(payload, SimpleNamespace(credentials=creds))
        try:
            assert rotator.status(app.name, sessions=False).next_rotation == planned
        finally:
            rotator.store.close()
    finally:
        handle.close()


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_fc_interval_must_be_a_positive_number(tmp_path, value):
    env = {"ROTATION_STORE": f"embedded:{tmp_path / 'missing.db'}", "ROTATION_INTERVAL_SECONDS": value}
    with pytest.raises(InvalidRotationSetup, match="ROTATION_INTERVAL_SECONDS"):
        rotator_from_environment({"SecretName": "a", "Step": "new"}, None, env)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1), 3600])
def test_rotator_interval_must_be_a_positive_timedelta(tmp_path, interval):
    store = EmbeddedStore(tmp_path / "s.db")
    try:
        with pytest.raises(InvalidRotationSetup, match="rotation_interval"):
            Rotator(store, strategy=SingleUserStrategy(), lock=LocalLock(), rotation_interval=interval)
    finally:
        store.close()
