"""EmbeddedStore specifics: encryption at rest, many threads, many processes, bad input.

The KMS stage semantics shared by every store are in test_store_contract.py.
"""

import json
import multiprocessing
import os
import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest

from secretclient import (
    CURRENT,
    PENDING,
    PREVIOUS,
    EmbeddedStore,
    InvalidParameter,
    SecretNotFound,
)
from secretclient.stores.embedded import EncryptionKeyError

PASSWORD = "Pa55word-that-must-not-leak"


def test_file_is_private_and_plaintext_without_key(tmp_path):
    path = tmp_path / "s.db"
    store = EmbeddedStore(path)
    store.create_secret("db", PASSWORD, version_id="v1")
    store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = sqlite3.connect(path).execute("SELECT data FROM versions").fetchone()[0]
    assert PASSWORD.encode() in bytes(raw)  # documented: without a key, data is readable


def test_encryption_at_rest(tmp_path):
    path = tmp_path / "s.db"
    key = EmbeddedStore.generate_key()
    with EmbeddedStore(path, key=key) as store:
        store.create_secret("db", PASSWORD, version_id="v1")
        store.put_secret("db", "v2", b"\xffbinary", stages=[PENDING])
    raw = b"".join(bytes(r[0]) for r in sqlite3.connect(path).execute("SELECT data FROM versions"))
    assert PASSWORD.encode() not in raw and b"binary" not in raw
    with EmbeddedStore(path, key=key) as store:
        assert store.get_secret("db").data == PASSWORD
        assert store.get_secret("db", stage=PENDING).data == b"\xffbinary"
    with pytest.raises(EncryptionKeyError):
        EmbeddedStore(path)
    with pytest.raises(EncryptionKeyError):
        EmbeddedStore(path, key=EmbeddedStore.generate_key())
    with pytest.raises(EncryptionKeyError):
        EmbeddedStore(path, key=b"short")


def test_ciphertext_bound_to_its_version(tmp_path):
    """Swapping sealed blobs between versions is detected, not silently served."""
    path = tmp_path / "s.db"
    key = EmbeddedStore.generate_key()
    with EmbeddedStore(path, key=key) as store:
        store.create_secret("db", "one", version_id="v1")
        store.put_secret("db", "v2", "two")
    db = sqlite3.connect(path)
    blob = db.execute("SELECT data FROM versions WHERE version_id='v1'").fetchone()[0]
    db.execute("UPDATE versions SET data=? WHERE version_id='v2'", (blob,))
    db.commit()
    with EmbeddedStore(path, key=key) as store, pytest.raises(EncryptionKeyError):
        store.get_secret("db")


def test_key_cannot_be_added_to_plain_store(tmp_path):
    path = tmp_path / "s.db"
    with EmbeddedStore(path) as store:
        store.create_secret("db", "x", version_id="v1")
    with pytest.raises(EncryptionKeyError):
        EmbeddedStore(path, key=EmbeddedStore.generate_key())


@pytest.mark.parametrize("call", [
    lambda s: s.put_secret("db", "bad id!", "x"),
    lambda s: s.put_secret("db", "v9", "x", stages="ACSPending"),
    lambda s: s.put_secret("db", "v9", "x", stages=["bad stage"]),
    lambda s: s.put_secret("db", "v9", 123),
    lambda s: s.update_stage("db", CURRENT, remove_from="v1"),
    lambda s: s.update_stage("db", PENDING),
    lambda s: s.create_secret("bad name", "x", version_id="v1"),
    lambda s: s.get_secret("db", stage="x" * 65),
])
def test_bad_input_is_typed_and_changes_nothing(call):
    store = EmbeddedStore()
    store.create_secret("db", "x", version_id="v1")
    before = store.list_versions("db", include_deprecated=True)
    with pytest.raises(InvalidParameter):
        call(store)
    assert store.list_versions("db", include_deprecated=True) == before


def test_describe_rotation_fields_follow_current_version():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = EmbeddedStore(clock=lambda: now[0])
    store.create_secret("db", "x", version_id="v1", rotation_interval=timedelta(days=7))
    info = store.describe("db")
    assert info.automatic_rotation and info.rotation_interval == timedelta(days=7)
    assert info.last_rotation == now[0] and info.next_rotation == now[0] + timedelta(days=7)
    now[0] += timedelta(days=3)
    store.put_secret("db", "v2", "y")
    assert store.describe("db").next_rotation == now[0] + timedelta(days=7)
    store.set_rotation("db", None)
    assert store.describe("db").next_rotation is None


def test_threads_promote_without_losing_the_invariant():
    store = EmbeddedStore()
    store.create_secret("db", "v0", version_id="v0")
    errors = []

    def worker(t):
        try:
            for i in range(25):
                store.put_secret("db", f"t{t}-{i}", f"{t}-{i}")
                store.get_secret("db")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = store.list_versions("db", include_deprecated=True)
    assert len(versions) == 10
    assert sum(CURRENT in v.stages for v in versions) == 1
    assert sum(PREVIOUS in v.stages for v in versions) == 1


def _process_worker(path, n, tag):
    store = EmbeddedStore(path)
    for i in range(n):
        store.put_secret("db", f"{tag}-{i}", json.dumps([tag, i]))
    store.close()


def test_processes_share_a_file(tmp_path):
    path = str(tmp_path / "shared.db")
    EmbeddedStore(path).create_secret("db", "start", version_id="v0")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(path, 20, f"p{k}")) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = EmbeddedStore(path)
    versions = store.list_versions("db", include_deprecated=True)
    assert len(versions) == 10
    assert [v for v in versions if CURRENT in v.stages][0].version_id == versions[0].version_id
    assert sum(PREVIOUS in v.stages for v in versions) == 1


def test_not_found_messages_name_what_is_missing():
    store = EmbeddedStore()
    with pytest.raises(SecretNotFound) as e:
        store.get_secret("nope")
    assert e.value.code == "Forbidden.ResourceNotFound" and "nope" in str(e.value)
