"""Issue 10: what the rotator refuses, fences and protects (real MariaDB; embedded store)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from rotation_support import make_app, make_strategy

from rotation import ProtectedAccount, RotationTooSoon, Rotator
from secretclient.stores.embedded import EmbeddedStore


def _point_at(store, app, account, password="x" * 12, version_id="hostile"):
    """Make the rotated secret's CURRENT name ``account`` (what a writer of that secret can do)."""
    data = json.loads(store.get_secret(app.name).text)
    data |= {"AccountName": account, "AccountPassword": password}
    store.put_secret(app.name, version_id, json.dumps(data))


def _snapshot(store, db, app, *accounts):
    versions = [(v.version_id, v.stages) for v in store.list_versions(app.name, include_deprecated=True)]
    # mysql.global_priv holds each entry's password hash, plugin, TLS and global privileges.
    return versions, {a: db.execute("SELECT Host, Priv FROM mysql.global_priv WHERE User = %s ORDER BY Host", (a,))
                      for a in accounts}


@pytest.mark.parametrize("kind", ["single-master", "alternating"])
@pytest.mark.parametrize("target", ["root", "master", "mysql.sys", "privileged"])
def test_refuses_to_rotate_protected_accounts_through_the_master(mariadb, store, cleanup_accounts, kind, target):
    app = make_app(mariadb, store, kind, rich=False)
    cleanup_accounts.append(app.account)
    account = {"root": "root", "master": app.admin_account, "mysql.sys": "mysql.sys"}.get(target)
    if account is None:  # an ordinary name, but an account that can create users
        account = "ops" + secrets.token_hex(3)
        cleanup_accounts.append(account)
        mariadb.create_user(account, "Ops-pass-123")
        mariadb.execute("GRANT CREATE USER ON *.* TO %s@%s", (account, "%"))
    _point_at(store, app, account)
    before = _snapshot(store, mariadb, app, account, account + "_rt", app.admin_account)
    rotator = Rotator(store, strategy=make_strategy(kind))
    with pytest.raises(ProtectedAccount):
        rotator.rotate(app.name)
    with pytest.raises(ProtectedAccount):
        rotator.step(app.name, "new")
    assert _snapshot(store, mariadb, app, account, account + "_rt", app.admin_account) == before
    assert rotator.plan(app.name).ok is False


def test_allow_list_lets_the_operator_rotate_a_privileged_account(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "single-master", rich=False)
    account = "ops" + secrets.token_hex(3)
    cleanup_accounts += [app.account, account]
    mariadb.create_user(account, "Ops-pass-123")
    mariadb.execute("GRANT CREATE USER, SELECT ON *.* TO %s@%s", (account, "%"))
    _point_at(store, app, account, "Ops-pass-123")
    with pytest.raises(ProtectedAccount):
        Rotator(store, strategy=make_strategy("single-master")).rotate(app.name)
    Rotator(store, strategy=make_strategy("single-master", allow_accounts=[account])).rotate(app.name)
    assert app.can_login(app.current())
    with pytest.raises(ProtectedAccount, match="MasterSecret's own"):  # the master itself: never
        _point_at(store, app, app.admin_account, version_id="hostile-2")
        Rotator(store, strategy=make_strategy("single-master", allow_accounts=[app.admin_account])).rotate(app.name)


def test_an_account_rotating_its_own_password_is_unaffected(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "self", rich=False)
    cleanup_accounts.append(app.account)
    mariadb.execute("GRANT CREATE USER ON *.* TO %s@%s", (app.account, "%"))
    Rotator(store, strategy=make_strategy("self")).rotate(app.name)
    assert app.can_login(app.current())


# -- 10.12: typed errors from the FC handler ---------------------------------------------


def test_fc_handler_refuses_a_non_utf8_event_with_a_typed_error():
    from types import SimpleNamespace

    import rotation.fc
    from rotation import InvalidRotationSetup

    with pytest.raises(InvalidRotationSetup, match="UTF-8"):
        rotation.fc.handler(b'{"SecretName": "\xff\xfe", "Step": "new"}', SimpleNamespace(requestId="r"))


@pytest.mark.parametrize("grace", ["inf", "1e20", "nan", "-1"])
def test_fc_grace_out_of_range_is_a_typed_error(tmp_path, grace):
    from rotation import InvalidRotationSetup
    from rotation.fc import rotator_from_environment

    EmbeddedStore(tmp_path / "s.db").close()
    env = {"ROTATION_STORE": f"embedded:{tmp_path / 's.db'}", "ROTATION_GRACE_SECONDS": grace}
    with pytest.raises(InvalidRotationSetup, match="grace"):
        rotator_from_environment({"SecretName": "a", "Step": "new"}, None, env)


# -- 10.13: a mistyped store path is an error, not a new store ------------------------------


def test_cli_and_fc_refuse_a_missing_embedded_store(tmp_path):
    from types import SimpleNamespace

    from click.testing import CliRunner

    from rotation.cli import main
    from rotation.fc import rotator_from_environment
    from secretclient.errors import InvalidParameter

    missing = tmp_path / "typo" / "secrets.db"
    res = CliRunner().invoke(main, ["--store", f"embedded:{missing}", "status", "app/db"])
    assert res.exit_code == 1 and "no store file" in res.output and "Traceback" not in res.output
    with pytest.raises(InvalidParameter, match="no store file"):
        rotator_from_environment({"SecretName": "a", "Step": "new"}, SimpleNamespace(),
                                 {"ROTATION_STORE": f"embedded:{missing}"})
    assert not (tmp_path / "typo").exists()


# -- 10.8: a lock wait longer than the read timeout ----------------------------------------


def test_lock_wait_longer_than_the_read_timeout_waits(mariadb, store, cleanup_accounts):
    import threading

    from rotation.dbconn import ConnectOptions

    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    strategy = make_strategy("alternating", connect_options=ConnectOptions(read_timeout=1.0))
    holder = Rotator(store, strategy=make_strategy("alternating")).lock.acquire(app.name)
    assert holder is not None
    releaser = threading.Timer(2.5, holder.release)  # released after more than one read timeout
    releaser.start()
    try:
        handle = Rotator(store, strategy=strategy).lock.acquire(app.name, timeout=30)
    finally:
        releaser.join()
    assert handle is not None
    handle.check()
    handle.release()


# -- 10.5: the session carrying a password is as protected as the account ------------------


def test_master_session_uses_verified_tls_for_an_ssl_account(mariadb_tls, store, cleanup_accounts):
    from rotation import DatabaseError, LocalLock
    from rotation.dbconn import ConnectOptions

    app = make_app(mariadb_tls, store, "single-master", rich=False, extra={"SSL": True})
    cleanup_accounts.append(app.account)
    master = json.loads(store.get_secret(app.master_name).text)
    del master["SSL"]  # the MasterSecret says nothing about TLS
    store.put_secret(app.master_name, "m2", json.dumps(master))
    # The master account refuses plain text: a plain session would fail to log in at all.
    mariadb_tls.execute("ALTER USER %s@%s REQUIRE SSL", (app.admin_account, "%"))
    before = _snapshot(store, mariadb_tls, app, app.account)
    unverified = make_strategy("single-master", connect_options=ConnectOptions(ca_file=None))
    with pytest.raises(DatabaseError, match="CERTIFICATE_VERIFY_FAILED"):  # verified: an untrusted certificate is refused
        Rotator(store, strategy=unverified, lock=LocalLock()).rotate(app.name)
    assert _snapshot(store, mariadb_tls, app, app.account) == before
    strategy = make_strategy("single-master", connect_options=ConnectOptions(ca_file=str(mariadb_tls.ca_file)))
    Rotator(store, strategy=strategy).rotate(app.name)
    assert store.get_secret(app.name).version_id != "v0"


# -- 10.9: what reaches the server's general log --------------------------------------------


@pytest.mark.parametrize("kind", ["single-master", "alternating", "self"])
def test_general_log_holds_hashes_not_passwords(mariadb, store, cleanup_accounts, kind):
    from rotation.sql import native_hash

    app = make_app(mariadb, store, kind, rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy(kind))
    mariadb.execute("SET GLOBAL log_output = 'TABLE'")
    mariadb.execute("TRUNCATE mysql.general_log")
    mariadb.execute("SET GLOBAL general_log = 1")
    try:
        rotator.rotate(app.name)
        rotator.rotate(app.name)
    finally:
        mariadb.execute("SET GLOBAL general_log = 0")
    logged = "\n".join(bytes(r[0]).decode("utf-8", "replace") if isinstance(r[0], (bytes, bytearray)) else str(r[0])
                       for r in mariadb.execute("SELECT argument FROM mysql.general_log"))
    mariadb.execute("TRUNCATE mysql.general_log")
    passwords = {store.get_secret(app.name, version_id=v.version_id).db_credentials().account_password
                 for v in store.list_versions(app.name)}
    assert "ALTER USER" in logged or "SET PASSWORD" in logged or "CREATE USER" in logged
    for password in passwords:
        assert password not in logged
    assert any(native_hash(p) in logged for p in passwords)


# -- 10.15: a rotator clock ahead of the store ----------------------------------------------


def test_a_rotator_clock_ahead_of_the_store_does_not_skip_the_grace_check(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    ahead = Rotator(store, strategy=make_strategy("alternating", grace=timedelta(hours=1)),
                    clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    ahead.rotate(app.name)  # the store timestamped its PENDING write: its time is known from here on
    previous = store.get_secret(app.name, stage="ACSPrevious").db_credentials()
    versions = store.list_versions(app.name)
    with pytest.raises(RotationTooSoon):
        ahead.rotate(app.name)
    assert store.list_versions(app.name) == versions and app.can_login(previous)
    assert abs(ahead.store_now() - datetime.now(UTC)) < timedelta(minutes=5)


# The first rotation of a process (every CLI run, FC or Lambda invocation) has written nothing yet:
# the store's own time (server_time(): the HTTP Date of its last answer, or its clock) must count.
@pytest.mark.parametrize("skew", [timedelta(hours=2), -timedelta(hours=2)], ids=["ahead", "behind"])
def test_a_fresh_rotator_with_a_skewed_clock_keeps_the_grace_period(mariadb, store_handle, cleanup_accounts, skew):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    Rotator(store, strategy=make_strategy("alternating", grace=timedelta(hours=1))).rotate(app.name)
    previous = store.get_secret(app.name, stage="ACSPrevious").db_credentials()
    versions = store.list_versions(app.name)
    fresh = Rotator(store_handle.open_again(), strategy=make_strategy("alternating", grace=timedelta(hours=1)),
                    clock=lambda: datetime.now(UTC) + skew)
    try:
        with pytest.raises(RotationTooSoon):
            fresh.rotate(app.name)
        assert fresh.rotate(app.name, due_after=timedelta(hours=1)).rotated is False
    finally:
        fresh.store.close()
    assert store.list_versions(app.name) == versions and app.can_login(previous)


@pytest.mark.parametrize("skew", [timedelta(hours=2), -timedelta(hours=2)], ids=["ahead", "behind"])
def test_a_fresh_rotator_with_a_skewed_clock_rotates_once_the_grace_period_is_over(
    mariadb, store_handle, cleanup_accounts, skew
):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    store_handle.clock.offset = -timedelta(minutes=90)  # the store stamps this rotation 90 minutes ago
    Rotator(store, strategy=make_strategy("alternating", grace=timedelta(hours=1))).rotate(app.name)
    store_handle.clock.offset = timedelta(0)
    fresh = Rotator(store_handle.open_again(), strategy=make_strategy("alternating", grace=timedelta(hours=1)),
                    clock=lambda: datetime.now(UTC) + skew)
    try:
        assert fresh.rotate(app.name, due_after=timedelta(hours=1)).rotated is True
    finally:
        fresh.store.close()
    assert app.can_login(app.current())
