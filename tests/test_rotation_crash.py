"""Crash safety: a real rotator process is SIGKILLed at every step boundary and in the middle of
``set``; the next run always completes, and a watcher confirms that at every moment at least one
stored stage can log in."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rotation_support import (
    PENDING,
    all_grants,
    child_env,
    make_app,
    make_strategy,
    open_store,
    stages_snapshot,
    start_store,
)

from rotation import DrainPolicy, Rotator

CHILD = Path(__file__).with_name("rotation_child.py")
KILL_POINTS = ("new:start", "new:done", "set:mid", "set:done", "test:done", "end:mid", "end:done")


class Watcher(threading.Thread):
    """Samples the stages continuously; a violation is a stable store state in which no stage logs in."""

    def __init__(self, spec, app):
        super().__init__(daemon=True)
        self.spec, self.app = spec, app
        self.stop = threading.Event()
        self.samples = 0
        self.violations: list[str] = []

    def _logs_in(self, snap) -> bool:
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


def _run_child_until(spec: dict, point: str) -> None:
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


@pytest.mark.parametrize("kind,store_kind", [
    ("alternating", "embedded"), ("alternating", "kms"), ("self", "embedded"), ("single-master", "kms"),
])
def test_sigkill_at_every_point_then_the_next_run_completes(mariadb, tmp_path, cleanup_accounts, kind, store_kind):
    handle = start_store(store_kind, tmp_path)
    try:
        app = make_app(mariadb, handle.store, kind)
        cleanup_accounts.append(app.account)
        grants = all_grants(mariadb, app.account, app.hosts)
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
                assert all_grants(mariadb, creds.account_name, app.hosts) == grants, point
        finally:
            watcher.stop.set()
            watcher.join(30)
        assert watcher.samples > 10
        assert watcher.violations == []
    finally:
        handle.close()
