"""Issue 14.1 on PostgreSQL: alternating users never reset a login that still has live sessions
(counted in pg_stat_activity, the rotator's own excluded), unless told to wait or proceed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from postgresql_rotation_support import drop_app, make_app, make_strategy  # noqa: E402

from rotation import AccountInUse, DrainPolicy, Rotator  # noqa: E402
from rotation._factories import make_strategy as cli_strategy  # noqa: E402
from secretclient.model import Stage  # noqa: E402

# A session just closed may stay in pg_stat_activity for a moment: "proceeds once it has
# closed" is checked with a short bounded wait rather than a race.
SETTLE = DrainPolicy(wait=10, poll=0.05)


def _verifier(pg, role):
    return pg.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))


def test_a_session_on_the_previous_login_stops_the_rotation_until_it_ends(postgresql, store) -> None:
    app = make_app(postgresql, store, "alternating")
    try:
        rotator = Rotator(store, strategy=make_strategy("alternating"))
        rotator.rotate(app.name)  # app -> app_rt, then app_rt -> app: both logins exist
        rotator.rotate(app.name)
        previous = store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials()
        assert previous.account_name == app.account + "_rt"
        session = app.login(previous)  # an instance still running on the PREVIOUS credentials
        versions = store.list_versions(app.name, include_deprecated=True)
        before = _verifier(postgresql, previous.account_name)
        try:
            with pytest.raises(AccountInUse, match="1 live session") as info:
                rotator.rotate(app.name)
            assert sum(info.value.sessions.values()) == 1
            assert previous.account_password not in str(info.value)
            assert store.list_versions(app.name, include_deprecated=True) == versions  # nothing changed
            assert _verifier(postgresql, previous.account_name) == before and app.can_login(previous)
            plan = rotator.plan(app.name)
            assert not plan.ok and any("live session" in c.detail for c in plan.checks)
            # `rotation status` (the CLI's strategy picks PostgreSQL from the secret's engine field).
            for strategy in (make_strategy("alternating"), cli_strategy("alternating")):
                status = Rotator(store, strategy=strategy).status(app.name)
                assert not status.sessions_error
                counted = [n for _stage, account, _host, n in status.sessions if account == previous.account_name]
                assert sum(counted) == 1
                assert any(previous.account_name in line and "1 from" in line for line in status.lines())
        finally:
            session.close()
        result = Rotator(store, strategy=make_strategy("alternating", drain=SETTLE)).rotate(app.name)
        assert result.rotated and app.current().account_name == previous.account_name
        assert app.can_login(app.current()) and not app.can_login(previous)
    finally:
        drop_app(postgresql, app)


def test_drain_waits_up_to_its_bound_or_proceeds_when_told(postgresql, store) -> None:
    app = make_app(postgresql, store, "alternating")
    try:
        Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
        Rotator(store, strategy=make_strategy("alternating")).rotate(app.name)
        session = app.login(store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials())
        closer = threading.Timer(1.0, session.close)
        closer.start()
        waiting = Rotator(store, strategy=make_strategy("alternating", drain=DrainPolicy(wait=60, poll=0.2)))
        assert waiting.rotate(app.name).rotated  # returns once the session has gone
        closer.join()
        previous = store.get_secret(app.name, stage=Stage.PREVIOUS).db_credentials()
        again = app.login(previous)
        try:
            told = Rotator(store, strategy=make_strategy("alternating", drain=DrainPolicy(proceed=True)))
            assert told.rotate(app.name).rotated
            # The session keeps running (it logged in before), but its password is gone.
            assert again.execute("SELECT 1").fetchone() == (1,)
            assert not app.can_login(previous)
        finally:
            again.close()
        assert app.can_login(app.current())
    finally:
        drop_app(postgresql, app)


def test_a_login_that_does_not_exist_yet_needs_no_drain(postgresql, store) -> None:
    app = make_app(postgresql, store, "alternating")
    try:
        with app.login(app.current()):  # CURRENT's own sessions never block: only the alternate is reset
            assert Rotator(store, strategy=make_strategy("alternating")).rotate(app.name).rotated
    finally:
        drop_app(postgresql, app)
