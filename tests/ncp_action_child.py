"""The NCP action process the crash tests start and SIGKILL (no tests here).

``python ncp_action_child.py '<json spec>'`` runs :func:`rotation.ncp.action` with the spec's
``args`` and ``env``; at the checkpoint ``pause_at`` it prints ``PAUSED <point>`` and waits to
be killed. Otherwise it prints ``RESULT <json>``. Kept free of pytest so that it starts fast.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rotation.ncp import action  # noqa: E402


def main(spec: dict) -> int:
    pause_at = spec.get("pause_at")

    def checkpoint(point: str) -> None:
        if point == pause_at:
            print(f"PAUSED {point}", flush=True)
            time.sleep(60)  # the test kills us here; bounded in case it does not

    result = action(spec["args"], env=spec["env"], checkpoint=checkpoint)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(json.loads(sys.argv[1])))
