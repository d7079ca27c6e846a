"""Crash safety and concurrency on PostgreSQL: a real rotator process is SIGKILLed at every step
boundary and in the middle of ``set``, the next run always completes and a watcher sees a
working stage at every moment; four processes racing for a due secret rotate it once."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")

from postgresql_rotation_support import child_env, drop_app, make_app, make_strategy, open_store  # noqa: E402
from rotation_support import PENDING, ShiftedClock, stages_snapshot, start_store  # noqa: E402

from rotation import DrainPolicy, Rotator  # noqa: E402

CHILD = Path(__file__).with_name("postgresql_rotation_support.py")
KILL_POINTS = ("new:start", "new:done", "set:mid", "set:done", "test:done", "end:mid", "end:done")

pytestmark = pytest.mark.slow


class Watcher(threading.Thread):
    """Samples the stages continuously; a violation is a stable store state in which no stage logs in."""

    def __init__(self, spec: dict[str, Any], app: Any) -> None:
        super().__init__(daemon=True)
        self.spec, self.app = spec, app
        self.stop = threading.Event()
        self.samples = 0
        self.violations: list[str] = []

    def _logs_in(self, snap: dict[str, Any]) -> bool:
        return any(self.app.can_login(creds) for _, creds in snap.values())

    def run(self) -> None:
        store = open_store(self.spec)
        try:
            while not self.stop.is_set():
                snap = stages_snapshot(store, self.app.name)
                if not self._logs_in(snap):
                    again = stages_snapshot(store, self.app.name)
                    same = {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in snap.items()}
                    if same and not self._logs_in(again):
                        self.violations.append(f"no stage logs in: {sorted((k, v[0]) for k, v in again.items())}")
                self.samples += 1
                self.stop.wait(0.003)  # leave the CPU to the rotator
        finally:
            store.close()


def _run_child_until(spec: dict[str, Any], point: str) -> None:
    proc = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), start_new_session=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().decode() if ready else ""
        assert line.strip() == f"PAUSED {point}", (line, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def _role_state(pg: Any, name: str) -> list[Any]:
    """Attributes, direct memberships and settings of role ``name`` (no password)."""
    return pg.execute(
        "SELECT r.rolcanlogin, r.rolinherit, r.rolconnlimit, r.rolvaliduntil, "
        "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "      WHERE m.member = r.oid ORDER BY 1), "
        "(SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0) "
        "FROM pg_roles r WHERE r.rolname = %s", (name,))


@pytest.mark.parametrize("kind,store_kind", [
    ("alternating", "embedded"), ("self", "embedded"), ("single-master", "kms"),
])
def test_sigkill_at_every_point_then_the_next_run_completes(postgresql, tmp_path, kind, store_kind) -> None:
    handle = start_store(store_kind, tmp_path)
    app = make_app(postgresql, handle.store, kind)
    try:
        base_state = _role_state(postgresql, app.account)
        watcher = Watcher(handle.spec, app)
        watcher.start()
        # The watcher keeps logging in with every stage, PREVIOUS included: the drain check would
        # (rightly) refuse; this test is about crashes, so both rotators proceed explicitly.
        drain = {"drain": DrainPolicy(proceed=True)} if kind == "alternating" else {}
        recover = Rotator(handle.store, strategy=make_strategy(kind, **drain), lock_timeout=10)
        try:
            for point in KILL_POINTS:
                before = handle.store.get_secret(app.name).version_id
                _run_child_until({"store": handle.spec, "secret": app.name, "strategy": kind,
                                  "mode": "rotate", "pause_at": point, "drain": "proceed"}, point)
                pending_left = PENDING in stages_snapshot(handle.store, app.name)
                result = recover.rotate(app.name)
                assert result.resumed == pending_left, point
                if point == "end:done":  # the killed run had finished; this is a fresh rotation
                    assert result.previous_version_id != before
                current = handle.store.get_secret(app.name)
                assert current.version_id == result.version_id
                assert PENDING not in stages_snapshot(handle.store, app.name)
                creds = current.db_credentials()
                assert app.can_login(creds), point
                assert _role_state(postgresql, app.account) == base_state, point
                if creds.account_name != app.account:  # the twin: same attributes, acting as the base role
                    twin = _role_state(postgresql, creds.account_name)[0]
                    assert twin[:4] == base_state[0][:4] and twin[4] == [app.account], point
                    assert twin[5] == [f"role={app.account}"], point
        finally:
            watcher.stop.set()
            watcher.join(30)
        assert watcher.samples > 10
        assert watcher.violations == []
    finally:
        handle.close()
        drop_app(postgresql, app)


@pytest.mark.parametrize("store_kind", ["embedded", "kms"])
def test_four_schedulers_rotate_a_due_secret_exactly_once(postgresql, tmp_path, store_kind) -> None:
    clock = ShiftedClock()
    clock.offset = -timedelta(hours=2)  # the secret was created two hours ago: due (interval 1 h)
    handle = start_store(store_kind, tmp_path, clock)
    app = make_app(postgresql, handle.store, "alternating")
    try:
        clock.offset = timedelta(0)
        spec = {"store": handle.spec, "secret": app.name, "strategy": "alternating", "mode": "scheduler",
                "start_at": time.time() + 1.0}
        procs = [subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=child_env()) for _ in range(4)]
        outputs = [p.communicate(timeout=60) for p in procs]
        results = []
        for (out, err), p in zip(outputs, procs, strict=True):
            assert p.returncode == 0, err.decode()[-2000:]
            results.append(json.loads(out.decode().split("RESULT ", 1)[1]))
        assert sum(r.count("promoted") for r in results) == 1, results
        versions = handle.store.list_versions(app.name, include_deprecated=True)
        assert len(versions) == 2  # v0 and exactly one new version
        assert app.can_login(app.current())
    finally:
        handle.close()
        drop_app(postgresql, app)
