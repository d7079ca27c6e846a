"""Async connections: what rotation-awareness costs per new connection with asyncio + aiomysql.

    python bench/bench_db_async.py [--rounds 30] [--per-round 48]

``engine.connect()`` + ``SELECT 1`` + close through ``NullPool`` async engines (every iteration
is a full login): ours (``secretclient.db.create_async_engine``, warm SecretClient) vs plain
SQLAlchemy + aiomysql with a static password, plus a second plain engine as the noise floor and
ours without the login bound (``RetryPolicy(handshake_timeout=None)``). The engines take turns
call by call in every order; figures are medians of per-round medians, differences medians of
per-round differences. Starts its own throwaway MariaDB; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as plain_async_engine
from sqlalchemy.pool import NullPool

from bench_db import bench_account  # the same account and secret as the sync bench (bench/ is on sys.path)

from secretclient.db import Connector, RetryPolicy
from secretclient.db.asyncio import create_async_engine
from secretclient.testing import MariaDB

NAMES = {
    "plain": "plain SQLAlchemy+aiomysql, static password",
    "control": "plain again (control: noise floor)",
    "ours": "secretclient.db async engine, warm cache",
    "unbounded": "same, RetryPolicy(handshake_timeout=None)",
}


async def _one(engine: AsyncEngine) -> float:
    start = time.perf_counter()
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
    return time.perf_counter() - start


async def _measure(engines: dict[str, AsyncEngine], rounds: int, per_round: int) -> dict[str, list[float]]:
    for engine in engines.values():  # warm up: imports, dialect initialisation, the cache
        for _ in range(20):
            await _one(engine)
    orders = list(itertools.permutations(engines))
    medians: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(rounds):
        times: dict[str, list[float]] = {k: [] for k in engines}
        for i in range(per_round):
            for label in orders[i % len(orders)]:
                times[label].append(await _one(engines[label]))
        for label, values in times.items():
            medians[label].append(statistics.median(values))
    for engine in engines.values():
        await engine.dispose()
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=48)
    args = parser.parse_args()

    with MariaDB(audit=False) as db:
        database, user, password, _, client = bench_account(db, "bench_async", "ALL ON {db}.*")
        url = sa.URL.create("mysql+aiomysql", username=user, password=password, host=db.host,
                            port=db.port, database=database)
        engines = {
            "plain": plain_async_engine(url, poolclass=NullPool),
            "control": plain_async_engine(url, poolclass=NullPool),
            "ours": create_async_engine("mysql+aiomysql:///", connector=Connector("bench/db", client),
                                        poolclass=NullPool),
            "unbounded": create_async_engine(
                "mysql+aiomysql:///", poolclass=NullPool,
                connector=Connector("bench/db", client, policy=RetryPolicy(handshake_timeout=None))),
        }
        medians = asyncio.run(_measure(engines, args.rounds, args.per_round))
        client.close()

    med = {k: statistics.median(v) for k, v in medians.items()}
    print(f"MariaDB {db.version} on 127.0.0.1, SQLAlchemy {sa.__version__} asyncio + aiomysql, NullPool, no TLS")
    print(f"new connection + SELECT 1 + close: {args.rounds} rounds x {args.per_round} per engine, "
          "engines taking turns")
    print(f"{'engine':<46}{'median of round medians, ms':>28}")
    for label, name in NAMES.items():
        print(f"{name:<46}{med[label] * 1e3:>28.3f}")
    for label in ("control", "ours", "unbounded"):
        d = statistics.median(a - b for a, b in zip(medians[label], medians["plain"], strict=True))
        print(f"{label:<9} - plain: {d * 1e6:+6.1f} us per connection = {d / med['plain'] * 100:+5.2f} %")
    print(f"host load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
