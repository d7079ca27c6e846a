"""Connections: what rotation-awareness costs per new connection, and how fast a rotation heals.

    python bench/bench_db.py [--n 2000] [--recoveries 100]

1. New-connection overhead: ``engine.connect()`` + ``SELECT 1`` + close with ``NullPool`` (every
   iteration is a full login) through our engine (credentials from a warm SecretClient) vs plain
   SQLAlchemy + PyMySQL with a static password in the URL. Same server, same TLS settings
   (plaintext on loopback: PyMySQL's default "preferred" TLS builds a new SSLContext per login,
   ~25 ms, which would hide any overhead), alternating call by call, medians reported.
2. Recovery: the password changes (ALTER USER + a new ACSCurrent version in the store) while the
   client still caches the old one; we time the first connect after it (one rejected login, one
   store read, one good login).

Starts its own throwaway MariaDB (needs mariadbd); loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import time

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from secretclient.client import SecretClient
from secretclient.db import Connector
from secretclient.db.sqlalchemy import create_engine
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import MariaDB


def _doc(db: MariaDB, user: str, password: str, database: str) -> str:
    return json.dumps({"AccountName": user, "AccountPassword": password, "Endpoint": db.host,
                       "Port": db.port, "DBName": database, "SSL": False})


def _one(engine: sa.Engine) -> float:
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar_one()
    return time.perf_counter() - t0


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="connections per engine (default 2000)")
    parser.add_argument("--recoveries", type=int, default=100, help="rotations to recover from (default 100)")
    args = parser.parse_args()

    with MariaDB(audit=False) as db:
        database = db.create_database("bench")
        user, password = "bench_app", secrets.token_urlsafe(16)
        db.create_user(user, password, grants=(f"ALL ON {database}.*",))
        store = EmbeddedStore()
        store.create_secret("bench/db", _doc(db, user, password, database), version_id="v0")
        client = SecretClient(store)
        connector = Connector("bench/db", client)
        ours = create_engine("mysql+pymysql:///", connector=connector, poolclass=NullPool)
        plain = sa.create_engine(
            sa.URL.create("mysql+pymysql", username=user, password=password, host=db.host, port=db.port,
                          database=database),
            poolclass=NullPool, connect_args={"ssl_disabled": True},
        )
        for engine in (plain, ours):  # warm up: imports, dialect initialisation, the cache
            for _ in range(50):
                _one(engine)

        # Alternate call by call (ABBA), so drifting load on the host hits both equally.
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        pairs = [("plain", plain), ("ours", ours)]
        for i in range(args.n):
            for label, engine in (pairs if i % 2 == 0 else pairs[::-1]):
                times[label].append(_one(engine))
        med = {k: statistics.median(v) for k, v in times.items()}
        overhead = (med["ours"] / med["plain"] - 1) * 100

        # Recovery after a rotation the client has not seen yet.
        recover: list[float] = []
        for i in range(args.recoveries):
            new_password = secrets.token_urlsafe(16)
            db.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, new_password))
            store.put_secret("bench/db", f"v{i + 1}", _doc(db, user, new_password, database))
            recover.append(_one(ours))
        stats = connector.stats()
        ours.dispose()
        plain.dispose()
        client.close()

    ms = 1000.0
    print(f"MariaDB {db.version} on 127.0.0.1, PyMySQL, SQLAlchemy {sa.__version__}, NullPool, no TLS")
    print(f"new connection + SELECT 1 + close, {args.n} per engine, alternating call by call")
    print(f"{'engine':<40}{'p50 ms':>10}{'p90 ms':>10}{'mean ms':>10}")
    for label, name in (("plain", "plain SQLAlchemy+PyMySQL, static password"),
                        ("ours", "secretclient.db engine, warm cache")):
        v = times[label]
        print(f"{name:<40}{med[label] * ms:>10.3f}{_pct(v, 0.9) * ms:>10.3f}{statistics.fmean(v) * ms:>10.3f}")
    print(f"overhead of ours (p50): {overhead:+.2f} %  = {(med['ours'] - med['plain']) * 1e6:+.1f} us per connection"
          f"   (target <= 3 %)")
    print(f"host load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"recovery: first connect after the password changed, {len(recover)} rotations: "
          f"p50 {statistics.median(recover) * ms:.2f} ms, p90 {_pct(recover, 0.9) * ms:.2f} ms, "
          f"max {max(recover) * ms:.2f} ms   (target p50 <= 100 ms)")
    print(f"connector: connects {stats.connects}, rejected {stats.rejected}, recovered {stats.recovered}, "
          f"store reads {stats.store_reads}, failures {stats.failures}")


if __name__ == "__main__":
    main()
