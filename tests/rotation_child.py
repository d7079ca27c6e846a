"""The rotator process the crash and concurrency tests start and SIGKILL (no tests here).

``python rotation_child.py '<json spec>'`` runs a Rotator (or a Scheduler) in its own
process; with ``pause_at`` it prints ``PAUSED <point>`` at that checkpoint and waits to be
killed. Kept free of pytest so that it starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rotation import AlternatingUsersStrategy, DrainPolicy, Rotator, SingleUserStrategy
from rotation.sql import NAME_LIMIT_MARIADB
from secretclient.stores.embedded import EmbeddedStore

STRATEGIES = ("alternating", "single-master", "self")


def make_strategy(kind: str, **kw: Any) -> Any:
    kw.setdefault("name_limit", NAME_LIMIT_MARIADB)
    if kind == "alternating":
        kw.setdefault("grace", timedelta(0))  # tests rotate back to back: explicit, not the 1 h default
        return AlternatingUsersStrategy(**kw)
    return SingleUserStrategy(use_master=(kind == "single-master"), **kw)


def open_store(spec: dict[str, Any]) -> Any:
    if spec["kind"] == "embedded":
        return EmbeddedStore(spec["path"])
    from secretclient.stores.aliyun import AliyunKmsStore

    return AliyunKmsStore(region=spec["region"], endpoint=spec["endpoint"], access_key_id=spec["ak"],
                          access_key_secret=spec["sk"], proxy=False)


# -- the child process -------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _child(spec: dict[str, Any]) -> int:
    store = open_store(spec["store"])
    pause_at = spec.get("pause_at")

    def checkpoint(point: str) -> None:
        if point == pause_at:
            print(f"PAUSED {point}", flush=True)
            time.sleep(600)  # the parent SIGKILLs us here

    proceed = spec.get("drain") == "proceed" and spec["strategy"] == "alternating"
    options = {"drain": DrainPolicy(proceed=True)} if proceed else {}
    rotator = Rotator(store, strategy=make_strategy(spec["strategy"], **options), checkpoint=checkpoint)
    if spec["mode"] == "rotate":
        result = rotator.rotate(spec["secret"])
        print(f"DONE {result.version_id}", flush=True)
        return 0
    from rotation import Scheduler

    # All four processes start their schedulers at the same instant.
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    scheduler = Scheduler(rotator, spec["secret"], interval=timedelta(hours=1), poll=0.2)
    results: list[Any] = []
    rotator.add_listener(lambda e: results.append(e.kind) if e.kind in ("promoted", "skipped") else None)
    with scheduler:
        scheduler.wait_for_pass(2, timeout=20)
    print("RESULT " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
