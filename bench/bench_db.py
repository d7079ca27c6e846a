"""Connections: what rotation-awareness costs per new connection, and how fast a rotation heals.

    python bench/bench_db.py [--rounds 60] [--per-round 50] [--recoveries 100] [--db postgres]

1. New-connection overhead: ``engine.connect()`` + ``SELECT 1`` + close with ``NullPool`` (every
   iteration is a full login) through our engine (credentials from a warm SecretClient) vs plain
   SQLAlchemy + PyMySQL with a static password in the URL. A "floor" engine splits the overhead:
   a ``do_connect`` listener that sends exactly our login arguments (session tag, connect
   timeout, the handshake bound taken off after the login) with no search, cache read or login
   gate: floor - bounded is what integrating and those arguments cost, ours - floor what the
   search does. Same server, same TLS settings (plaintext on loopback: PyMySQL's default
   "preferred" TLS builds a new SSLContext per login, ~25 ms, which would hide any overhead). A
   second, identical plain engine is the control: its difference to the first shows the noise
   floor of this host. The engines take turns call by call (the order cycles through the
   rotations of the list and of its reverse, so that each engine takes each place in the turn
   equally often), in rounds; each engine's figure is the median of its per-round medians, and
   the overhead is the median of the per-round differences, so load that drifts during the run
   hits every engine alike.
2. The same connect path without the network: each engine's pool ``creator`` with the DBAPI's
   ``connect`` answering at once (a stub module), so only the Python work on our side is left
   (garbage collection on, as in the real run); once with warm CPU caches, once with caches made
   cold before each call, as a real login leaves them. Then two figures that load on the host does not
   blur: the client process's CPU time per connection (``time.process_time``, taken in the same
   rounds), and the Python function calls per real connection (``sys.setprofile``), per engine.
3. Recovery: the password changes (ALTER USER + a new ACSCurrent version in the store) while the
   client still caches the old one; we time the first connect after it (one rejected login, one
   store read, one good login).

Starts its own throwaway MariaDB (needs mariadbd); loopback only. ``--db postgres``: the same
on a throwaway PostgreSQL through psycopg 3 (plain engines: SQLAlchemy+psycopg with a static
password, ``sslmode=disable``; "bounded" means libpq's ``connect_timeout``, which ours always
sets; the stub measurement of step 2 is MySQL-only).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import secrets
import statistics
import sys
import time
import timeit
import types
from collections.abc import Callable
from typing import Any

import pymysql
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from secretclient.client import SecretClient
from secretclient.db import POSTGRES, Connector, RetryPolicy
from secretclient.db._mysql import MYSQL
from secretclient.db.sqlalchemy import create_engine
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing import MariaDB

PLAIN, CONTROL, BOUNDED, OURS, UNBOUNDED = "plain", "plain (control)", "plain, bounded", "ours", "ours, unbounded"
FLOOR = "floor"
NAMES = {
    PLAIN: "plain SQLAlchemy+PyMySQL, static password",
    CONTROL: "plain again (control: noise floor)",
    BOUNDED: "plain with read_timeout=30 (a bounded login)",
    FLOOR: "floor: do_connect sending our login arguments",
    OURS: "secretclient.db engine, warm cache",
    UNBOUNDED: "same, RetryPolicy(handshake_timeout=None)",
}


def _doc(host: str, port: int, user: str, password: str, database: str, engine: str | None = None) -> str:
    doc: dict[str, object] = {"AccountName": user, "AccountPassword": password, "Endpoint": host,
                              "Port": port, "DBName": database, "SSL": False}
    if engine:
        doc["engine"] = engine
    return json.dumps(doc)


def bench_account(server: Any, user: str, grants: str, engine: str | None = None
                  ) -> tuple[str, str, str, EmbeddedStore, SecretClient]:
    """On a throwaway ``server`` (MariaDB or PostgreSQL): a database ``bench``, the account
    ``user`` with ``grants`` on it ({db} is the database), and a secret ``bench/db`` for it in a
    fresh embedded store. Returns (database, user, password, store, client)."""
    database = server.create_database("bench")
    password = secrets.token_urlsafe(16)
    server.create_user(user, password, grants=(grants.format(db=database),))
    store = EmbeddedStore()
    store.create_secret("bench/db", _doc(server.host, server.port, user, password, database, engine), version_id="v0")
    return database, user, password, store, SecretClient(store)


def _one(engine: sa.Engine) -> float:
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar_one()
    return time.perf_counter() - t0


def _calls(engine: sa.Engine, n: int = 50) -> float:
    """Python and C function calls per new connection + SELECT 1 + close (deterministic)."""
    count = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        for _ in range(n):
            _one(engine)
    finally:
        sys.setprofile(None)
    return count / n


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _rounds(engines: dict[str, sa.Engine], rounds: int, per_round: int
            ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-round medians of each engine (wall time), and per-round means of the client's CPU
    time per connection; the engines take turns in every order."""
    labels = list(engines)
    orders = [seq[k:] + seq[:k] for seq in (labels, labels[::-1]) for k in range(len(seq))]
    medians: dict[str, list[float]] = {k: [] for k in engines}
    cpu: dict[str, list[float]] = {k: [] for k in engines}
    turn = itertools.count()
    for _ in range(rounds):
        times: dict[str, list[float]] = {k: [] for k in engines}
        spent = dict.fromkeys(engines, 0.0)
        for _ in range(per_round):
            for label in orders[next(turn) % len(orders)]:
                c0 = time.process_time()
                times[label].append(_one(engines[label]))
                spent[label] += time.process_time() - c0
        for label, v in times.items():
            medians[label].append(statistics.median(v))
            cpu[label].append(spent[label] / per_round)
    return medians, cpu


def _diff(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-round differences a - b."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    q = statistics.quantiles(d, n=4)
    return statistics.median(d), q[0], q[2]


def _python_cost(make: Callable[[types.ModuleType], sa.Engine], n: int = 20000, *, cold: bool = False) -> float:
    """Seconds per call of an engine's pool creator whose DBAPI connect returns at once.

    ``cold``: 16 MiB are written between calls (evicting the CPU caches, as a real login's wait
    on the network and the server's work do), and each call is timed alone (median)."""
    stub_connection = types.SimpleNamespace(_read_timeout=None)
    stub = types.ModuleType("pymysql_stub")
    stub.__dict__.update(vars(pymysql))
    stub.connect = stub.Connect = lambda *a, **kw: stub_connection  # type: ignore[attr-defined]
    creator = make(stub).pool._creator  # type: ignore[attr-defined]
    if cold:
        scratch = bytearray(16 << 20)
        line = b"\x01" * (len(scratch) // 64)
        times = []
        for _ in range(n // 10):
            scratch[::64] = line  # one byte per 64-byte cache line
            t0 = time.perf_counter()
            creator(None)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def loop() -> None:
        for _ in range(n):
            creator(None)

    return min(timeit.repeat(loop, "gc.enable()", number=1, repeat=7)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60, help="rounds (default 60)")
    parser.add_argument("--per-round", type=int, default=50, help="connections per engine per round (default 50)")
    parser.add_argument("--recoveries", type=int, default=100, help="rotations to recover from (default 100)")
    parser.add_argument("--db", choices=("mariadb", "postgres"), default="mariadb",
                        help="the throwaway server: MariaDB (default) or PostgreSQL through psycopg 3")
    args = parser.parse_args()
    if args.db == "postgres":
        bench_postgres(args)
        return

    with MariaDB(audit=False) as db:
        database, user, password, store, client = bench_account(db, "bench_app", "ALL ON {db}.*")
        connector = Connector("bench/db", client)
        static_url = sa.URL.create("mysql+pymysql", username=user, password=password, host=db.host,
                                   port=db.port, database=database)

        def plain_engine(read_timeout: float | None = None, **kw: object) -> sa.Engine:
            connect_args: dict[str, object] = {"ssl_disabled": True}
            if read_timeout is not None:
                connect_args["read_timeout"] = read_timeout
            return sa.create_engine(static_url, poolclass=NullPool, connect_args=connect_args, **kw)

        def our_engine(connector: Connector = connector, **kw: object) -> sa.Engine:
            return create_engine("mysql+pymysql:///", connector=connector, poolclass=NullPool, **kw)

        def floor_engine(**kw: object) -> sa.Engine:
            engine = sa.create_engine("mysql+pymysql:///", poolclass=NullPool, **kw)
            dbapi_connect = engine.dialect.loaded_dbapi.connect
            cparams = engine.dialect.create_connect_args(engine.url)[1]
            ours = connector.build_kwargs(connector.credentials(), cparams)  # what our login sends
            handshake = connector.policy.handshake_timeout

            @sa.event.listens_for(engine, "do_connect")
            def _send_ours(dialect: object, conn_rec: object, cargs: object, cparams: dict[str, Any]) -> Any:
                kw = ours.copy()
                kw["connect_timeout"] = 10.0
                return MYSQL.login_with(dbapi_connect, kw, handshake)

            return engine

        unbounded = Connector("bench/db", client, policy=RetryPolicy(handshake_timeout=None))
        engines = {PLAIN: plain_engine(), CONTROL: plain_engine(), BOUNDED: plain_engine(read_timeout=30.0),
                   FLOOR: floor_engine(), OURS: our_engine(), UNBOUNDED: our_engine(unbounded)}
        for engine in engines.values():  # warm up: imports, dialect initialisation, the cache
            for _ in range(100):
                _one(engine)
        medians, cpu = _rounds(engines, args.rounds, args.per_round)
        calls = {label: _calls(engines[label]) for label in (BOUNDED, OURS)}
        makers = {PLAIN: lambda m: plain_engine(read_timeout=30.0, module=m), FLOOR: lambda m: floor_engine(module=m),
                  OURS: lambda m: our_engine(Connector("bench/db", client), module=m)}
        python_cost = {label: _python_cost(make) for label, make in makers.items()}
        cold_cost = {label: _python_cost(make, cold=True) for label, make in makers.items()}

        # Recovery after a rotation the client has not seen yet.
        def rotate(i: int, password: str) -> None:
            db.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
            store.put_secret("bench/db", f"v{i + 1}", _doc(db.host, db.port, user, password, database))

        recover, stats = _recover(args.recoveries, rotate, engines, connector, client)

    print(f"MariaDB {db.version} on 127.0.0.1, PyMySQL {importlib.metadata.version('PyMySQL')}, "
          f"SQLAlchemy {sa.__version__}, NullPool, no TLS")
    _report(args, medians, cpu, calls, NAMES)
    for what, cost in (("same path without the network (pool creator, DBAPI stub)", python_cost),
                       ("the same with cold CPU caches (16 MiB written before each call)", cold_cost)):
        us = {label: value * 1e6 for label, value in cost.items()}
        print(f"{what}: plain, bounded {us[PLAIN]:.2f} us, floor {us[FLOOR]:.2f} us, ours {us[OURS]:.2f} us; "
              f"our Python work {us[OURS] - us[PLAIN]:+.2f} us per connection, of which the search "
              f"{us[OURS] - us[FLOOR]:+.2f} us")
    _report_recovery(recover, stats)


def _report(args: argparse.Namespace, medians: dict[str, list[float]], cpu: dict[str, list[float]],
            calls: dict[str, float], names: dict[str, str]) -> None:
    us, ms = 1e6, 1e3
    med = {k: statistics.median(v) for k, v in medians.items()}
    n = args.rounds * args.per_round
    print(f"new connection + SELECT 1 + close: {args.rounds} rounds x {args.per_round} per engine "
          f"({n} each), engines taking turns")
    print(f"{'engine':<48}{'median of round medians, ms':>28}")
    for label in names:
        print(f"{names[label]:<48}{med[label] * ms:>28.3f}")
    # Each of ours against the plain engine that gives the same guarantee on a silent server.
    pairs = [(CONTROL, PLAIN, "control   - plain          "),
             (OURS, PLAIN, "ours      - plain          "),
             (UNBOUNDED, PLAIN, "unbounded - plain          "),
             (OURS, BOUNDED, "ours      - plain, bounded ")]
    if FLOOR in names:
        pairs += [(FLOOR, BOUNDED, "floor     - plain, bounded "), (OURS, FLOOR, "ours      - floor          ")]
    for label, base, what in pairs:
        d, lo, hi = _diff(medians[label], medians[base])
        print(f"{what}: {d * us:+6.1f} us per connection = {d / med[base] * 100:+5.2f} %"
              f"   (round differences, quartiles {lo * us:+.1f} .. {hi * us:+.1f} us)")
    print("target: <= 3 % (ours vs the plain engine with the same login bound; unbounded vs plain)")
    d, lo, hi = _diff(cpu[OURS], cpu[BOUNDED])
    print(f"client CPU time per connection (process_time, same rounds): plain, bounded "
          f"{statistics.median(cpu[BOUNDED]) * us:.1f} us, ours {statistics.median(cpu[OURS]) * us:.1f} us, "
          f"ours - bounded {d * us:+.1f} us (quartiles {lo * us:+.1f} .. {hi * us:+.1f} us)")
    print(f"function calls per connection (sys.setprofile): plain, bounded {calls[BOUNDED]:.0f}, "
          f"ours {calls[OURS]:.0f} ({calls[OURS] - calls[BOUNDED]:+.0f})")
    print(f"host load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def _recover(n: int, rotate: Callable[[int, str], None], engines: dict[str, sa.Engine], connector: Connector,
             client: SecretClient) -> tuple[list[float], object]:
    """Time the first connect after each of ``n`` password changes the client has not seen
    (``rotate(i, password)`` changes the database and stores the new version); then close all."""
    recover: list[float] = []
    for i in range(n):
        rotate(i, secrets.token_urlsafe(16))
        recover.append(_one(engines[OURS]))
    stats = connector.stats()
    for engine in engines.values():
        engine.dispose()
    client.close()
    return recover, stats


def _report_recovery(recover: list[float], stats: object) -> None:
    ms = 1e3
    print(f"recovery: first connect after the password changed, {len(recover)} rotations: "
          f"p50 {statistics.median(recover) * ms:.2f} ms, p90 {_pct(recover, 0.9) * ms:.2f} ms, "
          f"max {max(recover) * ms:.2f} ms   (target p50 <= 100 ms)")
    print(f"connector: connects {stats.connects}, rejected {stats.rejected}, "  # type: ignore[attr-defined]
          f"recovered {stats.recovered}, store reads {stats.store_reads}, "  # type: ignore[attr-defined]
          f"failures {stats.failures}")  # type: ignore[attr-defined]


PG_NAMES = {
    PLAIN: "plain SQLAlchemy+psycopg, static password",
    CONTROL: "plain again (control: noise floor)",
    BOUNDED: "plain with connect_timeout=30 (a bounded login)",
    OURS: "secretclient.db engine, warm cache",
    UNBOUNDED: "same, RetryPolicy(handshake_timeout=None)",
}


def bench_postgres(args: argparse.Namespace) -> None:
    """Steps 1 and 3 on a throwaway PostgreSQL (psycopg 3)."""
    import psycopg

    from secretclient.testing.postgresql import PostgreSQL

    with PostgreSQL() as pg:
        database, user, password, store, client = bench_account(pg, "bench_app", "ALL ON DATABASE {db}", "postgres")
        connector = Connector("bench/db", client, family=POSTGRES)
        static_url = sa.URL.create("postgresql+psycopg", username=user, password=password, host=pg.host,
                                   port=pg.port, database=database)

        def plain_engine(connect_timeout: int | None = None) -> sa.Engine:
            connect_args: dict[str, object] = {"sslmode": "disable"}
            if connect_timeout is not None:
                connect_args["connect_timeout"] = connect_timeout
            return sa.create_engine(static_url, poolclass=NullPool, connect_args=connect_args)

        def our_engine(connector: Connector = connector) -> sa.Engine:
            return create_engine("postgresql+psycopg:///", connector=connector, poolclass=NullPool)

        unbounded = Connector("bench/db", client, policy=RetryPolicy(handshake_timeout=None), family=POSTGRES)
        engines = {PLAIN: plain_engine(), CONTROL: plain_engine(), BOUNDED: plain_engine(connect_timeout=30),
                   OURS: our_engine(), UNBOUNDED: our_engine(unbounded)}
        for engine in engines.values():
            for _ in range(100):
                _one(engine)
        medians, cpu = _rounds(engines, args.rounds, args.per_round)
        calls = {label: _calls(engines[label]) for label in (BOUNDED, OURS)}

        def rotate(i: int, password: str) -> None:
            pg.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(user), psycopg.sql.Literal(password)))
            store.put_secret("bench/db", f"v{i + 1}", _doc(pg.host, pg.port, user, password, database, "postgres"))

        recover, stats = _recover(args.recoveries, rotate, engines, connector, client)

    print(f"PostgreSQL {pg.version} on 127.0.0.1 (scram-sha-256), psycopg {psycopg.__version__}, "
          f"SQLAlchemy {sa.__version__}, NullPool, no TLS")
    _report(args, medians, cpu, calls, PG_NAMES)
    _report_recovery(recover, stats)


if __name__ == "__main__":
    main()
