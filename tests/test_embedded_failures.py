"""EmbeddedStore under file-system and SQLite faults, hostile names, and its deletion lifecycle.

Every SQLite failure is a typed StoreError (never a raw ``sqlite3`` error), the cache serves
stale through it, and neither CLI prints a traceback.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from secretclient import EmbeddedStore, InvalidParameter, SecretNotFound, StoreError, StoreUnavailable
from secretclient.client import SecretClient
from secretclient.errors import VersionConflict
from secretclient.testing import ManualClock, ManualExecutor

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _cli(*args: str, input: bytes = b"", **kw) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", *args], input=input, capture_output=True, timeout=60, env=ENV, **kw)


def _not_sqlite(tmp_path):
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not an SQLite database, just text. " * 200)
    return path


def test_a_file_that_is_not_sqlite_is_a_typed_error(tmp_path):
    with pytest.raises(StoreError) as e:
        EmbeddedStore(_not_sqlite(tmp_path))
    assert e.value.code == "StoreCorrupt" and not isinstance(e.value, sqlite3.Error)
    assert "not.db" in str(e.value)


def test_a_damaged_file_is_a_typed_error(tmp_path):
    path = tmp_path / "s.db"
    with EmbeddedStore(path) as store:
        for i in range(40):
            store.create_secret(f"db{i}", "y" * 500, version_id="v1")
    data = bytearray(path.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)  # keep the header page, damage every other page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as e:
        EmbeddedStore(path).get_secret("db3")
    assert e.value.code == "StoreCorrupt"


def test_locked_past_the_busy_timeout_even_when_opening(tmp_path):
    path = tmp_path / "s.db"
    EmbeddedStore(path).create_secret("db", "one", version_id="v1")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailable) as e:
            EmbeddedStore(path, busy_timeout=0.05)
        assert e.value.code == "StoreBusy" and e.value.retryable
        other.execute("COMMIT")
        store = EmbeddedStore(path, busy_timeout=0.05)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):
            store.put_secret("db", "v2", "two")
        other.execute("COMMIT")
        assert store.get_secret("db").version_id == "v1"  # nothing changed
        store.put_secret("db", "v2", "two")  # and the store works again
    finally:
        other.close()


def test_the_cache_serves_stale_through_an_sqlite_failure(tmp_path):
    path = tmp_path / "s.db"
    clock = ManualClock()
    store = EmbeddedStore(path, clock=clock.utc)
    store.create_secret("db", "one", version_id="v1")
    client = SecretClient(store, ttl=60, clock=clock, executor=ManualExecutor(), rotation_aware=False)
    assert client.get_text("db") == "one"
    with sqlite3.connect(path) as other:  # another process damages the schema
        other.execute("DROP TABLE stages")
    clock.advance(120)
    assert client.get_text("db") == "one"
    assert client.stats().stale_serves == 1 and client.stats().store_errors == 1


def test_disk_full_is_typed_and_the_cli_prints_no_traceback(tmp_path):
    path = tmp_path / "s.db"
    EmbeddedStore(path).create_secret("db", "one", version_id="v1")

    def small_files() -> None:  # the child may write no file beyond 64 KiB: a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    res = _cli("secretclient.cli", "--store", f"embedded:{path}", "put", "db", "--version-id", "v2",
               input=b"x" * 300_000, preexec_fn=small_files)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert "Traceback" not in err and "StoreUnavailable" in err and ("StoreFull" in err or "StoreIOError" in err), err
    assert EmbeddedStore(path).get_secret("db").version_id == "v1"


@pytest.mark.parametrize("cli", ["secretclient.cli", "rotation.cli"])
def test_neither_cli_prints_a_traceback_for_a_broken_store_file(tmp_path, cli):
    path = _not_sqlite(tmp_path)
    args = ["get", "db"] if cli == "secretclient.cli" else ["status", "db"]
    res = _cli(cli, "--store", f"embedded:{path}", *args)
    err = res.stderr.decode() + res.stdout.decode()
    assert res.returncode == 1 and "Traceback" not in err and "StoreCorrupt" in err, err


_READ_ONLY_SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    from secretclient import EmbeddedStore, StoreError
    rw, ro = sys.argv[1], sys.argv[2]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", rw], check=True)
    EmbeddedStore(rw + "/s.db").create_secret("db", "one", version_id="v1")
    subprocess.run(["mount", "--bind", rw, ro], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", ro], check=True)
    try:
        EmbeddedStore(ro + "/s.db").put_secret("db", "v2", "two")  # open or put fails
        code = None
    except StoreError as e:
        code = e.code
    cli = subprocess.run([sys.executable, "-m", "secretclient.cli", "--store", f"embedded:{ro}/s.db",
                          "put", "db"], input=b"two", capture_output=True)
    print(json.dumps({"open": code, "cli": cli.returncode, "stderr": cli.stderr.decode()}))
""")


def test_read_only_file_system_is_typed(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to mount a private read-only file system")
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    res = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", _READ_ONLY_SCRIPT,
                          str(rw), str(ro)], capture_output=True, timeout=60, env=ENV)
    if res.returncode != 0 and b"Traceback" not in res.stderr:
        pytest.skip(f"this machine does not allow a private mount: {res.stderr.decode()[-200:]}")
    assert res.returncode == 0, res.stderr.decode()
    out = json.loads(res.stdout)
    assert out["open"] in ("StoreReadOnly", "StoreCannotOpen"), out
    assert out["cli"] == 1 and "Traceback" not in out["stderr"] and out["open"] in out["stderr"], out


# -- control characters (issue 10 finding 11) ----------------------------------------------

@pytest.mark.parametrize("call", [
    lambda s: s.create_secret("app/db\n", "x", version_id="v1"),
    lambda s: s.create_secret("app\x00db", "x", version_id="v1"),
    lambda s: s.create_secret("new", "x", version_id="v1\n"),
    lambda s: s.put_secret("db", "v2\n", "x"),
    lambda s: s.put_secret("db", "v2", "x", stages=["ACSPending\n"]),
    lambda s: s.put_secret("db", "v2", "x", stages=["\tlabel"]),
    lambda s: s.update_stage("db", "custom\r", move_to="v1"),
    lambda s: s.get_secret("db\n"),
    lambda s: s.get_secret("db", version_id="v1\n"),
    lambda s: s.get_secret("db", stage="ACSCurrent\n"),
    lambda s: s.delete_secret("db\n", force=True),
])
def test_control_characters_are_refused_and_change_nothing(call):
    store = EmbeddedStore()
    store.create_secret("db", "x", version_id="v1")
    with pytest.raises(InvalidParameter):
        call(store)
    assert [i.name for i in store.list_secrets()] == ["db"]
    assert [v.version_id for v in store.list_versions("db", include_deprecated=True)] == ["v1"]


# -- deletion lifecycle and listing (issue 11 findings 5 and 6) ------------------------------

@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock) -> EmbeddedStore:
    s = EmbeddedStore(clock=clock.utc)
    s.create_secret("app/db", "one", version_id="v1")
    s.create_secret("app/token", "t")
    return s


def test_delete_with_a_window_hides_the_secret_until_restored(store, clock):
    store.delete_secret("app/db", recovery_window_days=7)
    for call in (lambda: store.get_secret("app/db"), lambda: store.list_versions("app/db"),
                 lambda: store.put_secret("app/db", "v2", "two")):
        with pytest.raises(SecretNotFound) as e:
            call()
        assert e.value.code == "Rejected.ResourceInDeleteWindow"
    with pytest.raises(VersionConflict) as e:
        store.create_secret("app/db", "again", version_id="v9")
    assert e.value.code == "Rejected.ResourceInDeleteWindow"
    info = {i.name: i for i in store.list_secrets()}
    assert info["app/db"].planned_deletion == clock.utc() + timedelta(days=7)
    assert info["app/token"].planned_deletion is None
    store.restore_secret("app/db")
    store.restore_secret("app/db")  # a retry changes nothing
    assert store.get_secret("app/db").data == "one" and store.describe("app/db").planned_deletion is None


def test_the_window_ends_and_the_name_is_free(store, clock):
    store.delete_secret("app/db")  # default 30 days
    clock.advance(30 * 86400 + 1)
    assert [i.name for i in store.list_secrets()] == ["app/token"]
    with pytest.raises(SecretNotFound) as e:
        store.restore_secret("app/db")
    assert e.value.code == "Forbidden.ResourceNotFound"
    store.create_secret("app/db", "reborn", version_id="v1")
    assert store.get_secret("app/db").data == "reborn"


def test_force_deletes_at_once_even_during_a_window(store):
    store.delete_secret("app/db", recovery_window_days=10)
    store.delete_secret("app/db", force=True)
    store.create_secret("app/db", "new", version_id="v1")
    store.delete_secret("app/db", force=True)
    with pytest.raises(SecretNotFound):
        store.describe("app/db")


@pytest.mark.parametrize("kwargs", [{"recovery_window_days": 6}, {"recovery_window_days": 31},
                                    {"recovery_window_days": 7.5}, {"recovery_window_days": True},
                                    {"force": "yes"}])
def test_bad_windows_are_refused_and_change_nothing(store, kwargs):
    with pytest.raises(InvalidParameter, match=r"recovery_window_days|force"):
        store.delete_secret("app/db", **kwargs)
    assert store.get_secret("app/db").data == "one"


def test_create_without_version_id_generates_one(store):
    info = store.create_secret("gen", "value")
    assert info.name == "gen"
    v = store.get_secret("gen").version_id
    assert len(v) == 32 and store.create_secret("gen2", "value") and store.get_secret("gen2").version_id != v


def test_list_secrets_is_sorted_metadata_without_values(store):
    infos = store.list_secrets()
    assert [i.name for i in infos] == ["app/db", "app/token"]
    assert "one" not in [getattr(i, f) for i in infos for f in ("description", "extended_config")]
    assert infos[0].created == datetime(2026, 1, 1, tzinfo=UTC)


def test_shared_name_check_takes_arns_only_when_asked():
    from secretclient.stores._checks import check_name

    check_name("acs:kms:cn-hangzhou:123456:secret/app/db", arn=True)
    for bad in ("acs:kms:cn-hangzhou:123456:secret/app/db\n", "acs:kms:cn-hangzhou:123456:key/x", "acs:x"):
        with pytest.raises(InvalidParameter):
            check_name(bad, arn=True)
    with pytest.raises(InvalidParameter):
        check_name("acs:kms:cn-hangzhou:123456:secret/app/db")
