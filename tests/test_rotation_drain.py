"""Issue 14.1: alternating users never reset an account that still has live sessions, unless told."""

from __future__ import annotations

import threading

import pytest
from rotation_support import make_app, make_strategy

from rotation import AccountInUse, DrainPolicy, InvalidRotationSetup, Rotator
from secretclient.model import Stage


def _password_hash(db, account):
    return db.execute("SELECT Host, Priv FROM mysql.global_priv WHERE User = %s ORDER BY Host", (account,))


def test_a_session_on_the_previous_account_stops_the_rotation_until_it_ends(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    rotator.rotate(app.name)  # app -> app_rt; app is PREVIOUS now
    previous = store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials()
    session = app.login(previous)  # an instance still running on the PREVIOUS credentials
    versions, before = store.list_versions(app.name, include_deprecated=True), _password_hash(mariadb, app.account)
    try:
        with pytest.raises(AccountInUse, match="1 live session") as info:
            rotator.rotate(app.name)
        assert sum(info.value.sessions.values()) == 1 and all(h for h in info.value.sessions)
        assert store.list_versions(app.name, include_deprecated=True) == versions
        assert _password_hash(mariadb, app.account) == before and app.can_login(previous)
        plan = rotator.plan(app.name)
        assert not plan.ok and any("live session" in c.detail for c in plan.checks)
        status = rotator.status(app.name)
        assert sum(n for stage, account, _host, n in status.sessions if account == app.account) >= 1
        assert any(app.account in line and "session" in line for line in status.lines())
    finally:
        session.close()
    rotator.rotate(app.name)  # the session ended: it rotates
    assert app.current().account_name == app.account and app.can_login(app.current())


def test_drain_waits_up_to_its_bound_or_proceeds_when_told(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
    previous = store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials()
    session = app.login(previous)
    closer = threading.Timer(1.0, session.close)
    closer.start()
    waiting = Rotator(store, strategy=make_strategy("alternating", drain=DrainPolicy(wait=60, poll=0.2)))
    waiting.rotate(app.name)  # returns once the session has gone
    closer.join()
    again = app.login(store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials())
    try:
        Rotator(store, strategy=make_strategy("alternating", drain=DrainPolicy(proceed=True))).rotate(app.name)
    finally:
        again.close()
    assert app.can_login(app.current())


def test_a_master_without_process_cannot_drain_check_and_says_so(mariadb, store, cleanup_accounts):
    app = make_app(mariadb, store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    mariadb.execute("REVOKE PROCESS ON *.* FROM %s@%s", (app.admin_account, "%"))
    rotator = Rotator(store, strategy=make_strategy("alternating"))
    rotator.rotate(app.name)  # the alternate does not exist yet: nothing to drain, no need to look
    versions = store.list_versions(app.name)
    with pytest.raises(InvalidRotationSetup, match="PROCESS"):  # now it exists and could be in use
        rotator.rotate(app.name)
    assert store.list_versions(app.name) == versions


@pytest.mark.parametrize("bad", [{"wait": -1}, {"wait": float("inf")}, {"poll": 0}, {"wait": 1e9}])
def test_drain_policy_checks_its_bounds(bad):
    with pytest.raises(InvalidRotationSetup):
        DrainPolicy(**bad)
