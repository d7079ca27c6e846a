"""The rotation engine against a real MariaDB, with the EmbeddedStore and with the KMS emulator
through the aliyun SDK (every test that takes ``store_handle`` runs with both)."""

from __future__ import annotations

import json
import logging
import string
from datetime import timedelta

import pytest
from rotation_support import (
    CURRENT,
    PENDING,
    PREVIOUS,
    STRATEGIES,
    account_state,
    all_grants,
    make_app,
    make_strategy,
    own_grants,
)

from rotation import (
    LocalLock,
    LoginFailed,
    RotationConflict,
    RotationInProgress,
    RotationTooSoon,
    Rotator,
    UnsafeAccountName,
)
from rotation.passwords import PasswordPolicy
from secretclient.errors import InvalidSecretContent, SecretClientError


@pytest.mark.parametrize("kind", STRATEGIES)
def test_twenty_rotations_keep_login_and_grants(mariadb, store_handle, cleanup_accounts, kind):
    store = store_handle.store
    app = make_app(mariadb, store, kind, account="appuser")
    cleanup_accounts.append("appuser")
    events = []
    rotator = Rotator(store, strategy=make_strategy(kind), listeners=[events.append])
    first = app.current()
    with app.login(first) as conn:
        grants_before = own_grants(conn, first.account_name)
    all_before = all_grants(mariadb, "appuser", app.hosts)
    seen_accounts = []
    for i in range(20):
        result = rotator.rotate(app.name)
        assert result.rotated and not result.resumed
        creds = app.current()
        assert creds.version_id == result.version_id
        seen_accounts.append(creds.account_name)
        with app.login(creds) as conn:  # ACSCurrent logs in with the same grants as before
            assert own_grants(conn, creds.account_name) == grants_before
        assert all_grants(mariadb, creds.account_name, app.hosts) == all_before
        stages = {s for v in store.list_versions(app.name) for s in v.stages}
        assert PENDING not in stages and {CURRENT, PREVIOUS} <= stages
    if kind == "alternating":
        assert seen_accounts == ["appuser_rt", "appuser"] * 10
    else:
        assert set(seen_accounts) == {"appuser"}
    assert [e.kind for e in events].count("promoted") == 20
    assert {e.step for e in events if e.kind == "step_done"} == {"new", "set", "test", "end"}


def test_tls_requirement_and_plugin_are_copied(mariadb_tls, tmp_path, cleanup_accounts):
    from rotation_support import start_store

    handle = start_store("embedded", tmp_path)
    try:
        app = make_app(mariadb_tls, handle.store, "alternating", rich=False, extra={"SSL": True})
        cleanup_accounts.append(app.account)
        mariadb_tls.execute("ALTER USER %s@%s REQUIRE SSL", (app.account, "%"))
        strategy = make_strategy("alternating")
        # The MasterSecret has SSL false: it connects in plain text; the app accounts must use TLS.
        from rotation.dbconn import ConnectOptions

        strategy.connect_options = ConnectOptions(ca_file=str(mariadb_tls.ca_file))
        rotator = Rotator(handle.store, strategy=strategy)
        for _ in range(2):
            rotator.rotate(app.name)
        rows = mariadb_tls.execute(
            "SELECT User, ssl_type, plugin FROM mysql.user WHERE User IN (%s, %s) ORDER BY User",
            (app.account, app.account + "_rt"),
        )
        assert [(r[1], r[2]) for r in rows] == [("ANY", "mysql_native_password")] * 2
        # The REQUIRE SSL account really refuses plain text.
        creds = handle.store.get_secret(app.name).db_credentials()
        import pymysql

        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=creds.endpoint, port=creds.port, user=creds.account_name,
                            password=creds.account_password, ssl_disabled=True, connect_timeout=5).close()
    finally:
        handle.close()


def test_every_printable_character_the_policy_allows(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    policy = PasswordPolicy(length=94, exclude_characters="")
    alphabet = policy.alphabet()
    assert set(alphabet) == set(string.printable) - set(string.whitespace)  # all 94 printable ASCII

    turns = iter(range(1000))

    def source(p):
        k = next(turns)
        return alphabet[k:] + alphabet[:k]  # every allowed character, in another order each time

    rotator = Rotator(store, strategy=make_strategy("alternating", password_policy=policy, password_source=source))
    for _ in range(3):
        rotator.rotate(app.name)
        creds = app.current()
        assert sorted(creds.account_password) == sorted(alphabet)
        assert app.can_login(creds)
    single = Rotator(store, strategy=make_strategy("single-master", password_policy=policy, password_source=source))
    single.rotate(app.name)
    assert app.can_login(app.current())


@pytest.mark.parametrize(("bad", "error", "says"), [
    ("app'user", UnsafeAccountName, "characters"), ("app`user", UnsafeAccountName, "characters"),
    ("app%user", UnsafeAccountName, "characters"), ("app user", UnsafeAccountName, "characters"),
    ("a" * 78, UnsafeAccountName, "limit is 80"),  # its alternate, a * 78 + "_rt", is 81 long
    ("", InvalidSecretContent, "AccountName"),  # the secret itself is refused before any name check
])
def test_hostile_account_names_are_rejected_up_front(mariadb, store_handle, cleanup_accounts, bad, error, says):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    data = json.loads(store.get_secret(app.name).text)
    data["AccountName"] = bad
    store.put_secret(app.name, "hostile", json.dumps(data))  # becomes ACSCurrent
    versions_before = [(v.version_id, v.stages) for v in store.list_versions(app.name, include_deprecated=True)]
    users_before = mariadb.execute("SELECT User, Host FROM mysql.user ORDER BY User, Host")
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    with pytest.raises(error, match=says):
        rotator.rotate(app.name)
    with pytest.raises(error, match=says):
        rotator.step(app.name, "new")
    assert [(v.version_id, v.stages) for v in store.list_versions(app.name, include_deprecated=True)] == versions_before
    assert mariadb.execute("SELECT User, Host FROM mysql.user ORDER BY User, Host") == users_before
    assert rotator.plan(app.name).ok is False


def test_name_limit_applies_to_the_alternate(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", account="a" * 14, rich=False)
    cleanup_accounts.append(app.account)
    with pytest.raises(UnsafeAccountName, match="limit is 16"):
        Rotator(store, strategy=make_strategy("alternating", name_limit=16)).rotate(app.name)
    assert [v.version_id for v in store.list_versions(app.name)] == ["v0"]
    Rotator(store, strategy=make_strategy("alternating", name_limit=32)).rotate(app.name)
    assert app.current().account_name == "a" * 14 + "_rt"


def test_passwords_never_reach_logs_events_or_errors(mariadb, store_handle, cleanup_accounts, caplog):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating")
    cleanup_accounts.append(app.account)
    events = []
    caplog.set_level(logging.DEBUG, logger="rotation")
    rotator = Rotator(store, strategy=make_strategy("alternating"), listeners=[events.append])
    for _ in range(2):
        rotator.rotate(app.name)
    plan = rotator.plan(app.name)
    # Break the master's password, so set fails with an error we can inspect.
    master = store.get_secret(app.master_name).db_credentials()
    mariadb.execute("ALTER USER %s@%s IDENTIFIED BY 'changed-behind-our-back'", (app.admin_account, "%"))
    with pytest.raises(LoginFailed) as info:
        rotator.rotate(app.name)
    passwords = {master.account_password}
    for v in store.list_versions(app.name, include_deprecated=True):
        passwords.add(store.get_secret(app.name, version_id=v.version_id).db_credentials().account_password)
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("rotation", "secretclient")]
    assert ours
    texts = [r.getMessage() for r in ours] + [repr(e) for e in events] + [e.log_line() for e in events]
    texts += plan.lines() + [str(info.value), repr(info.value), repr(rotator), repr(store.get_secret(app.name))]
    texts += [repr(store.get_secret(app.name).db_credentials())]
    for pw in passwords:
        assert all(pw not in t for t in texts)
    assert any(e.kind == "failed" and e.version_id for e in events)  # which rotation failed, never why in values


def test_plan_changes_nothing_and_shows_the_work(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating")
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    users = mariadb.execute("SELECT User, Host FROM mysql.user ORDER BY User, Host")
    plan = rotator.plan(app.name)
    assert plan.ok and plan.steps == ("new", "set", "test", "end")
    assert plan.accounts == (f"{app.account}_rt@%", f"{app.account}_rt@127.0.0.1")
    assert any("WITH GRANT OPTION" in s for s in plan.statements)
    assert any("CREATE USER" in s and "<redacted>" in s for s in plan.statements)
    assert any("+UPDATE (`b`)" in g for g in plan.grant_changes)
    assert mariadb.execute("SELECT User, Host FROM mysql.user ORDER BY User, Host") == users
    assert [v.version_id for v in store.list_versions(app.name)] == ["v0"]


def test_alternating_never_modifies_the_current_account(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating")  # two host entries, roles, column grants, limits
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    rotator.rotate(app.name)  # ACSCurrent is now the _rt account; the original one is ACSPrevious
    current = app.current().account_name
    assert current == app.account + "_rt"
    # Drift on the alternate, so that set has to revoke as well as grant and re-create.
    mariadb.execute(f"GRANT DELETE ON {mariadb.quote_ident(app.database)}.* TO %s@%s", (app.account, "%"))
    mariadb.execute("DROP USER %s@%s", (app.account, "127.0.0.1"))
    before = account_state(mariadb, current)
    vid = rotator.step(app.name, "new")
    for step in ("set", "test"):
        rotator.step(app.name, step, vid)
        # password hash, plugin, TLS, limits, grants and roles of ACSCurrent's account: byte for byte
        assert account_state(mariadb, current) == before, step
    assert all_grants(mariadb, app.account, app.hosts) == all_grants(mariadb, current, app.hosts)
    rotator.step(app.name, "end", vid)
    assert app.current().account_name == app.account and app.can_login(app.current())


def test_end_never_promotes_credentials_that_did_not_log_in(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    vid = rotator.step(app.name, "new")
    with pytest.raises(SecretClientError):  # set was skipped: the alternate does not even exist
        rotator.step(app.name, "end", vid)
    assert store.get_secret(app.name).version_id == "v0"
    assert store.get_secret(app.name, stage=PENDING).version_id == vid
    rotator.step(app.name, "set", vid)
    rotator.step(app.name, "end", vid)  # end alone tests first, then promotes
    assert store.get_secret(app.name).version_id == vid and app.can_login(app.current())


def test_resume_uses_the_stored_pending_password(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating")
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    vid = rotator.step(app.name, "new", "flow-1")
    pending = store.get_secret(app.name, stage=PENDING)
    assert pending.version_id == "flow-1" and pending.stages == frozenset({PENDING})
    assert rotator.step(app.name, "new", "flow-2") == "flow-1"  # a second flow resumes the first
    result = rotator.rotate(app.name)
    assert result.resumed and result.version_id == vid
    current = store.get_secret(app.name)
    assert current.version_id == "flow-1" and current.data == pending.data
    assert app.can_login(current.db_credentials())


def test_grace_period_protects_the_previous_account(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating", grace=timedelta(hours=1)))
    rotator.rotate(app.name)  # appuser -> _rt: nothing is ACSPrevious on _rt yet
    previous = store.get_secret(app.name, stage=PREVIOUS).db_credentials()
    versions = store.list_versions(app.name)
    with pytest.raises(RotationTooSoon):
        rotator.rotate(app.name)  # would reset appuser, ACSPrevious, minutes after it was current
    assert store.list_versions(app.name) == versions
    assert app.can_login(previous)
    store_handle.clock.offset = timedelta(hours=2)  # two hours pass, for the store and the rotator
    later = Rotator(store, strategy=make_strategy("alternating", grace=timedelta(hours=1)), clock=store_handle.clock)
    later.rotate(app.name)
    assert app.current().account_name == app.account


def test_abort_only_when_current_still_logs_in(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "self", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("self"))
    vid = rotator.step(app.name, "new")
    assert rotator.abort(app.name).removed_version_id == vid  # nothing was set yet
    vid = rotator.step(app.name, "new")
    rotator.step(app.name, "set", vid)  # now only the pending password works
    with pytest.raises(LoginFailed, match="finish the rotation"):
        rotator.abort(app.name)
    assert store.get_secret(app.name, stage=PENDING).version_id == vid
    rotator.rotate(app.name)
    assert app.can_login(app.current())
    assert rotator.abort(app.name).removed_version_id is None


def test_lock_excludes_a_second_rotator_and_loss_stops_the_step(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    handle = rotator.lock.acquire(app.name)
    assert handle is not None
    with pytest.raises(RotationInProgress):
        Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
    assert rotator.plan(app.name).checks[0].ok is False
    handle.release()

    from rotation import LockLost, MySqlLock

    strategy = make_strategy("alternating")
    lock_ids = []

    def connect(name):  # the strategy's own lock connection; its server id is the one to kill
        conn = strategy.lock_connection(store, name)
        lock_ids.append(conn.thread_id())
        return conn

    def kill_lock_connection(point):
        if point == "set:mid":
            mariadb.execute("KILL CONNECTION %s", (lock_ids[-1],))

    killing = Rotator(store, strategy=strategy, lock=MySqlLock(connect), checkpoint=kill_lock_connection)
    with pytest.raises(LockLost):
        killing.rotate(app.name)
    assert store.get_secret(app.name, stage=PENDING)  # stopped before promoting
    assert store.get_secret(app.name).version_id == "v0"
    fresh = Rotator(store, strategy=make_strategy("alternating"))
    assert fresh.rotate(app.name).resumed
    assert app.can_login(app.current())


def test_promotion_is_fenced_by_compare_and_set(mariadb, store_handle, cleanup_accounts):
    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    other = json.loads(store.get_secret(app.name).text)

    def sneak_in(point):
        if point == "end:promote":  # another writer promotes a version behind our back
            store.put_secret(app.name, "intruder", json.dumps(other))

    rotator = Rotator(store, strategy=make_strategy("alternating"), lock=LocalLock(), checkpoint=sneak_in)
    with pytest.raises(RotationConflict):
        rotator.rotate(app.name)
    assert store.get_secret(app.name).version_id == "intruder"


def test_client_gets_the_new_version_through_publish(mariadb, store_handle, cleanup_accounts):
    from secretclient.client import SecretClient

    store = store_handle.store
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    with SecretClient(store, ttl=3600) as client:
        assert client.get(app.name).version_id == "v0"
        seen = []
        client.subscribe(app.name, lambda s: seen.append(s.version_id))
        result = Rotator(store, strategy=make_strategy("alternating"), client=client).rotate(app.name)
        assert client.get(app.name).version_id == result.version_id  # no TTL wait
        assert result.version_id in seen
