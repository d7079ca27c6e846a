"""NcpSecretManagerStore against the local NCP emulator: what a read and a job cost.

    python bench/bench_ncp.py

Prints the median time of: a store read (one signed HTTP request on a new connection to
127.0.0.1), a cached SecretClient read, and a whole job without a database (start,
generate-random-secret, PUT pending, complete). Loopback figures: they show our overhead, not
NCP's latency.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from secretclient import SecretClient
from secretclient.testing import NcpEmulator

VALUE = json.dumps({"cdbHost": "127.0.0.1", "cdbPort": "3306", "cdbUser": "app", "cdbDatabase": "db",
                    "cdbPassword": "bench-password-0123"})


def median_us(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main() -> None:
    with NcpEmulator() as ncp:
        sid = ncp.create_secret("bench-db", VALUE, rotation_targets=["cdbPassword"])
        store = ncp.store()
        client = SecretClient(store)
        client.get("bench-db")

        def job() -> None:
            j = store.job(sid, ncp.start_rotation(sid))
            chain = j.start().chain
            pending = json.loads(chain["active"])
            pending["cdbPassword"] = j.generate_random_secret()
            j.update_pending(json.dumps(pending))
            j.complete()

        rows = [
            ("store.get_secret(secret id)", median_us(lambda: store.get_secret(sid), 300)),
            ("store.get_secret(name), id cached", median_us(lambda: store.get_secret("bench-db"), 300)),
            ("SecretClient.get (cache hit)", median_us(lambda: client.get("bench-db"), 3000)),
            ("job: start + random + pending + complete", median_us(job, 50)),
        ]
        client.close()
    width = max(len(r[0]) for r in rows)
    for label, us in rows:
        print(f"{label:<{width}}  {us:10.1f} µs (median)")


if __name__ == "__main__":
    main()
