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
from pathlib import Path

from rotation_support import child_env, make_app

from secretclient import CachePolicy, SecretClient
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator

CHILD = Path(__file__).with_name("awareness_child.py")
INTERVAL = 8.0  # the next rotation is this far off when the assertions run


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
        client = SecretClient(store, policy=CachePolicy(ttl=3600.0, rotation_delay=INTERVAL / 2))
        first = client.get(app.name).version_id
        reads = 1
        deadline = time.monotonic() + 2 * INTERVAL + 30.0  # far below the 1 h TTL
        while client.get(app.name).version_id == first and time.monotonic() < deadline:
            reads += 1
            time.sleep(0.01)
        assert client.get(app.name).version_id != first, "the client kept the old version"
        assert client.get(app.name).version_id in {v.version_id for v in store.list_versions(app.name)}
        describe_deadline = time.monotonic() + 10.0
        while client.stats().describe_calls < 2 and time.monotonic() < describe_deadline:
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

