"""A fleet against a throttled KMS: N application instances query while a Rotator rotates.

    python bench/bench_fleet.py --instances 10,40,160 --quota 10 [--rotations 3] [--kind single,alternating]

Each instance is what one application process holds: its own ``AliyunKmsStore`` (its own HTTP
connection to the KMS emulator), its own ``SecretClient`` and its own pooled SQLAlchemy engine
(``secretclient.db.sqlalchemy.create_engine``). All instances run in this process, against one
``KmsEmulator`` that accepts ``--quota`` requests per second (the rest get
``Rejected.Throttling``, 429) and one throwaway MariaDB. A ``Rotator`` in the same process
rotates the secret ``--rotations`` times, through the same throttled KMS. Each instance runs one
thread that checks a connection out, runs ``SELECT 1`` and, one time in five, drops the
connection (so new logins happen all the time, as pools recycle connections in production).

Printed per (kind, N, quota): failed queries, queries run, rotations completed, mean and max
rotation time, store GetSecretValue requests per rotation (every request the KMS received
during the rotations, throttled ones included, the rotator's own included), all store requests
per rotation, and the peak store request rate (requests received in the busiest one-second
window, throttled ones included).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from rotation import AlternatingUsersStrategy, DrainPolicy, LocalLock, Rotator, SingleUserStrategy
from secretclient.client import SecretClient
from secretclient.db import Connector, RetryPolicy
from secretclient.db.sqlalchemy import create_engine
from secretclient.stores.embedded import EmbeddedStore
from rotation.ncp import for_engine
from secretclient.testing.kms_emulator import KmsEmulator
from secretclient.testing.mariadb import MariaDB
from secretclient.testing.ncp_emulator import NcpEmulator

_PASSWORD = "app-pw-0123456789"
_ADMIN_PASSWORD = "admin-pw-0123456789"
_names = iter(range(1, 1_000_000))


@dataclass
class FleetResult:
    """What one run measured."""

    kind: str
    instances: int
    quota: float | None
    queries: int = 0
    failures: list[str] = field(default_factory=list)
    rotations: int = 0
    rotation_errors: list[str] = field(default_factory=list)
    rotation_seconds: list[float] = field(default_factory=list)
    get_secret_value: int = 0  # GetSecretValue requests received during the rotations
    store_requests: int = 0  # every request received during the rotations
    peak_rate: int = 0  # most requests received in one second
    by_action: dict[str, int] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # "step=seconds" of each rotation step
    connector_reads: int = 0  # forced store reads of the credential searches


class _RateProbe:
    """Samples the emulator's request counter every 50 ms: the busiest one-second window."""

    def __init__(self, kms: KmsEmulator) -> None:
        self._kms = kms
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        samples: deque[tuple[float, int]] = deque()
        while not self._stop.wait(0.05):
            now, total = time.monotonic(), sum(self._kms.calls.values())
            samples.append((now, total))
            while samples and now - samples[0][0] > 1.0:
                samples.popleft()
            self.peak = max(self.peak, total - samples[0][1])

    def __enter__(self) -> _RateProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _setup(db: MariaDB, kms: KmsEmulator | NcpEmulator, kind: str) -> str:
    """An application account, its admin (MasterSecret) and the secret, in the emulator's store."""
    n = next(_names)
    if isinstance(kms, NcpEmulator):
        # NCP's format (the seed's keys); the account changes its own password (no MasterSecret).
        if kind != "single":
            raise ValueError("--store ncp rotates single-user secrets only")
        database = db.create_database("fleet")
        app = f"flncp{n}"
        db.create_user(app, _PASSWORD, grants=(f"SELECT ON {database}.*",))
        value = {"cdbHost": db.host, "cdbPort": str(db.port), "cdbUser": app, "cdbDatabase": database,
                 "cdbPassword": _PASSWORD}
        return kms.create_secret(f"fleet-ncp-{n}", json.dumps(value), rotation_targets=["cdbPassword"])
    database = db.create_database("fleet")
    admin, app = f"fladm{n}", f"flapp{n}"
    db.create_user(admin, _ADMIN_PASSWORD)
    db.execute("GRANT ALL ON *.* TO %s@%s WITH GRANT OPTION", (admin, "%"))
    db.create_user(app, _PASSWORD, grants=(f"SELECT ON {database}.*",))
    common = {"Endpoint": db.host, "Port": db.port, "SSL": False}
    store = kms.backing_store
    store.create_secret(f"fleet-master-{n}", json.dumps({**common, "AccountName": admin,
                                                         "AccountPassword": _ADMIN_PASSWORD}), version_id="m")
    name = f"fleet-{kind}-{n}/db"
    store.create_secret(name, json.dumps({**common, "AccountName": app, "AccountPassword": _PASSWORD,
                                          "DBName": database, "MasterSecret": f"fleet-master-{n}"}),
                        version_id="v0")
    return name


#: Alternating users: the instances learn a promotion from their TTL (the old account keeps
#: working, nothing is rejected), and the rotator waits for the old account's sessions to end
#: (the engines close their idle connections of a replaced version) before resetting it. The TTL
#: is sized as the reads' spread is: the fleet's refreshes take at most half the quota.
def alternating_ttl(instances: int, quota: float | None) -> float:
    return max(5.0, 2.0 * instances / quota) if quota else 5.0


def _strategy(kind: str, ttl: float, ncp: bool) -> Any:
    if ncp:
        return SingleUserStrategy()
    if kind == "alternating":
        # Rotations back to back: grace 0, explicit. The old account's sessions end once every
        # instance has refreshed (a TTL, stretched by throttled reads) and closed its idle ones.
        return AlternatingUsersStrategy(grace=timedelta(0), drain=DrainPolicy(wait=max(60.0, 3 * ttl)))
    return SingleUserStrategy(use_master=True)


def fleet_policy(instances: int, quota: float | None) -> RetryPolicy:
    """The RetryPolicy docs/connections.md recommends for a fleet (``RetryPolicy.for_fleet``)."""
    return RetryPolicy.for_fleet(instances, quota) if quota else RetryPolicy(refresh_jitter=1.0)


def run_fleet(db: MariaDB, kms: KmsEmulator | NcpEmulator, *, instances: int = 40, quota: float | None = 10.0,
              kind: str = "single", rotations: int = 3, rotation_timeout: float = 60.0,
              drop: float = 0.05, rotation_aware: bool = False, settle: float | None = None,
              policy: RetryPolicy | None = None) -> FleetResult:
    """Start ``instances`` instances on a new secret, rotate it ``rotations`` times through a
    KMS (or NCP Secret Manager: an ``NcpEmulator``, single user) throttled to ``quota``
    requests/s, and measure. ``kms.faults`` is left unthrottled."""
    if policy is None:
        policy = fleet_policy(instances, quota)
    if settle is None:  # the fleet's reads after one rotation are over before the next one
        settle = max(3.0, policy.refresh_jitter + 2.0)
    name = _setup(db, kms, kind)
    result = FleetResult(kind, instances, quota)
    stop = threading.Event()
    fleet: list[tuple[Any, SecretClient, sa.Engine]] = []
    lock = threading.Lock()
    connectors: list[Connector] = []
    for _ in range(instances):
        store = kms.store()
        ttl = alternating_ttl(instances, quota) if kind == "alternating" else 3600.0
        client = SecretClient(store, rotation_aware=rotation_aware, ttl=ttl)
        connector = Connector(name, client, policy=policy)
        connectors.append(connector)
        engine = create_engine("mysql+pymysql:///", connector=connector, pool_size=2, max_overflow=2,
                               pool_timeout=30)
        fleet.append((store, client, engine))

    def worker(i: int, engine: sa.Engine) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1")).scalar_one()
                    if rng.random() < drop:
                        conn.invalidate()
                with lock:
                    result.queries += 1
            except Exception as exc:  # every failure is what the bench counts
                with lock:
                    result.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            stop.wait(rng.uniform(0.02, 0.08))

    rotator_store = kms.store()
    steps: list[str] = []

    def on_event(e: Any) -> None:
        if e.kind == "step_done":
            steps.append(f"{e.step}={e.duration:.2f}")

    ncp = isinstance(kms, NcpEmulator)
    strategy = _strategy(kind, alternating_ttl(instances, quota), ncp)
    # The rotator shares the quota with the whole fleet: its default StoreRetryPolicy (60 s,
    # 40 attempts, jittered) waits the throttling out.
    rotator = Rotator(for_engine(rotator_store) if ncp else rotator_store, strategy=strategy, lock=LocalLock(),
                      listeners=[on_event])
    threads = [threading.Thread(target=worker, args=(i, e), daemon=True) for i, (_, _, e) in enumerate(fleet)]
    try:
        for t in threads:
            t.start()
        time.sleep(3.0)  # every instance has read the secret and logged in (unthrottled)
        kms.faults.throttle(quota)
        before = kms.calls
        with _RateProbe(kms) as probe:
            for _ in range(rotations):
                t0 = time.monotonic()
                try:
                    rotator.rotate(name)
                except Exception as exc:  # a failed rotation is what the bench counts
                    result.rotation_errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                    continue
                result.rotation_seconds.append(time.monotonic() - t0)
                result.rotations += 1
                if time.monotonic() - t0 > rotation_timeout:
                    break
                time.sleep(settle)  # the fleet moves to the new version before the next rotation
        after = kms.calls
        result.get_secret_value = after["GetSecretValue"] - before["GetSecretValue"]
        result.store_requests = sum(after.values()) - sum(before.values())
        result.peak_rate = probe.peak
        result.by_action = dict(after - before)
        result.steps = steps
        result.connector_reads = sum(c.stats().store_reads for c in connectors)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        kms.faults.throttle(None)
        for store, client, engine in fleet:
            engine.dispose()
            client.close()
            store.close()
        rotator_store.close()
    return result


def _row(r: FleetResult) -> str:
    done = max(r.rotations, 1)
    mean = sum(r.rotation_seconds) / done if r.rotation_seconds else float("nan")
    worst = max(r.rotation_seconds, default=float("nan"))
    return (f"| {r.kind} | {r.instances} | {r.quota:g} | {len(r.failures)} | {r.queries} | "
            f"{r.rotations}/{r.rotations + len(r.rotation_errors)} | {mean:.1f} | {worst:.1f} | "
            f"{r.get_secret_value / done:.1f} | {r.store_requests / done:.1f} | {r.peak_rate} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--instances", default="40", help="comma-separated instance counts (default 40)")
    parser.add_argument("--quota", default="10", help="comma-separated KMS requests per second (default 10)")
    parser.add_argument("--kind", default="single,alternating", help="single, alternating or both")
    parser.add_argument("--rotations", type=int, default=3)
    parser.add_argument("--drop", type=float, default=0.05,
                        help="fraction of queries after which the instance drops its connection (default 0.05)")
    parser.add_argument("--describe", action="store_true",
                        help="clients with rotation_aware=True (a DescribeSecret per instance and new version)")
    parser.add_argument("--jitter", type=float, default=None,
                        help="RetryPolicy.refresh_jitter (default: instances / quota, see fleet_policy)")
    parser.add_argument("--store", choices=("kms", "ncp"), default="kms",
                        help="the store: Alibaba KMS (default) or NCP Secret Manager (single user only)")
    parser.add_argument("--verbose", action="store_true", help="print the first failures of each run")
    args = parser.parse_args()
    header = ("| rotation | N | quota (req/s) | failed queries | queries | rotations done | "
              "mean rotation (s) | max rotation (s) | GetSecretValue / rotation | store requests / rotation | "
              "peak store req/s |")
    # Up to 4 connections per instance (pool_size=2, max_overflow=2): above MariaDB's default 151.
    with tempfile.TemporaryDirectory() as tmp, MariaDB(options={"max_connections": 2000}, audit=False) as db:
        backing = EmbeddedStore(Path(tmp) / "kms.db")
        kms: KmsEmulator | NcpEmulator = KmsEmulator(store=backing) if args.store == "kms" else NcpEmulator()
        kms.start()
        try:
            print(f"MariaDB {db.version}, {type(kms).__name__} over HTTP, {args.rotations} rotations per row")
            print(header)
            print("|---" * (header.count("|") - 1) + "|")
            for kind in args.kind.split(","):
                for quota in (float(q) for q in args.quota.split(",")):
                    for n in (int(x) for x in args.instances.split(",")):
                        policy = None if args.jitter is None else RetryPolicy(refresh_jitter=args.jitter)
                        r = run_fleet(db, kms, instances=n, quota=quota, kind=kind, rotations=args.rotations,
                                      drop=args.drop, rotation_aware=args.describe, policy=policy)
                        print(_row(r), flush=True)
                        if args.verbose:
                            print("    requests during the rotations:", r.by_action,
                                  "forced reads:", r.connector_reads, r.steps)
                            for line in (r.rotation_errors + r.failures)[:5]:
                                print("   ", line)
        finally:
            kms.stop()
            backing.close()


if __name__ == "__main__":
    main()
