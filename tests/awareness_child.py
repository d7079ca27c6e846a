"""The scheduler process of the rotation-awareness test (no tests here).

``python awareness_child.py '<json spec>'`` runs a :class:`rotation.Scheduler` rotating one
secret every ``interval`` seconds, prints ``READY`` once the schedule is recorded and its first
pass is done, and runs until its stdin closes (or ``limit`` seconds). Kept free of pytest so
that it starts fast.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import timedelta
from typing import Any

from rotation_child import make_strategy, open_store

from rotation import Rotator, Scheduler


def _child(spec: dict[str, Any]) -> int:
    store = open_store(spec["store"])
    rotator = Rotator(store, strategy=make_strategy(spec["strategy"]))
    scheduler = Scheduler(rotator, spec["secret"], interval=timedelta(seconds=spec["interval"]), poll=0.5)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    with scheduler:
        scheduler.wait_for_pass(1, timeout=30)
        print("READY", flush=True)
        closed.wait(spec["limit"])
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(json.loads(sys.argv[1])))
