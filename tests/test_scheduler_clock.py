"""Issue 14: a Scheduler compares due times with the store's time (``Rotator.store_now()``), the
clock the versions' creation times come from, not with the instance's own clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotation_support import make_app, make_strategy, start_store

from rotation import LocalLock, Rotator, Scheduler


def _rotator(store, skew: timedelta) -> Rotator:
    return Rotator(store, strategy=make_strategy("self"), lock=LocalLock(),
                   clock=lambda: datetime.now(UTC) + skew)


def test_a_rotator_clock_ahead_of_the_store_does_not_rotate_early(mariadb, tmp_path, cleanup_accounts):
    handle = start_store("kms", tmp_path)  # over HTTP: the store's time comes from its answers
    try:
        app = make_app(mariadb, handle.store, "self")
        cleanup_accounts.append(app.account)
        scheduler = Scheduler(_rotator(handle.store, timedelta(hours=3)), app.name, interval=timedelta(hours=1))
        versions = handle.store.list_versions(app.name)
        assert scheduler.run_pending() == []  # 3 h by the instance's clock, seconds by the store's
        assert handle.store.list_versions(app.name) == versions
        assert scheduler.due_at(app.name) - handle.store.server_time() > timedelta(minutes=59)
    finally:
        handle.close()


def test_a_rotator_clock_behind_the_store_still_rotates_when_due(mariadb, tmp_path, cleanup_accounts):
    handle = start_store("embedded", tmp_path)
    try:
        handle.clock.offset = -timedelta(hours=2)  # the secret was created 2 h ago, store time
        app = make_app(mariadb, handle.store, "self")
        cleanup_accounts.append(app.account)
        handle.clock.offset = timedelta(0)
        before = app.current().version_id
        scheduler = Scheduler(_rotator(handle.store, -timedelta(hours=3)), app.name, interval=timedelta(hours=1))
        results = scheduler.run_pending()  # due by the store's time, not yet by the instance's
        assert [r.rotated for r in results] == [True]
        assert app.current().version_id != before and app.can_login(app.current())
    finally:
        handle.close()
