"""The live demo: an application that keeps querying while its database password rotates.

    bash scripts/demo.sh                       # installs what it needs, then runs this file
    python examples/demo.py --duration 60 --workers 16 --interval 2 --strategy single --store kms
    python examples/demo.py --db postgres      # the same on PostgreSQL (psycopg 3)

What happens:

1. a throwaway MariaDB starts on a free loopback port (secretclient.testing.MariaDB), or with
   ``--db postgres`` a throwaway PostgreSQL (secretclient.testing.PostgreSQL);
2. a store is opened: the EmbeddedStore (default) or, with ``--store kms``, a local KMS emulator
   reached through the real aliyun-python-sdk-kms (AliyunKmsStore), exactly as in production
   (``--store aws``: moto's Secrets Manager server through boto3, AwsSecretsManagerStore);
3. two accounts and their secrets are created: ``appuser`` (the application's, rotated) and
   ``rotator`` (the MasterSecret account, with least privileges: on PostgreSQL, CREATEROLE);
4. N worker threads query through a SQLAlchemy engine from ``secretclient.db.create_engine``,
   whose credentials come from a ``SecretClient``;
5. a ``rotation.Scheduler`` rotates the application's password every few seconds in the same
   process (alternating users ``appuser`` <-> ``appuser_rt`` by default);
6. a status line shows queries per second, failures, rotations, the current VersionId and account;
   at the end a summary such as "12 rotations, 48,210 queries, 0 failed".

Exit status: 0 when no query failed, no rotation failed and at least ``--min-rotations``
rotations happened; 1 otherwise; 130 when interrupted. Passwords are never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from sqlalchemy import text

from rotation import (
    AlternatingUsersStrategy,
    DrainPolicy,
    PostgresAlternatingUsersStrategy,
    PostgresSingleUserStrategy,
    RotationEvent,
    Rotator,
    Scheduler,
    SingleUserStrategy,
)
from rotation.passwords import MYSQL_PASSWORD_POLICY
from secretclient import EmbeddedStore, SecretClient, SecretNotFound, stage_labels
from secretclient.db import MYSQL, POSTGRES, Connector, create_engine
from secretclient.testing import MariaDB, MariaDBNotInstalled
from secretclient.testing.postgresql import PostgreSQL, PostgreSQLNotInstalled

APP_SECRET = "demo/app-db"
MASTER_SECRET = "demo/rotator-db"
APP_ACCOUNT = "appuser"
MASTER_ACCOUNT = "rotator"
ITEMS = 100


# -- terminal output -------------------------------------------------------------------------


class Console:
    """One status line redrawn in place on a terminal; plain lines otherwise. Thread-safe."""

    def __init__(self, stream: TextIO, live: bool) -> None:
        self.stream = stream
        self.live = live
        self._lock = threading.Lock()
        self._status = ""

    def say(self, line: str) -> None:
        """A permanent line (above the status line on a terminal)."""
        with self._lock:
            if self.live:
                self.stream.write("\r\x1b[2K" + line + "\n" + self._status)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def status(self, line: str) -> None:
        with self._lock:
            self._status = line
            self.stream.write(("\r\x1b[2K" + line) if self.live else (line + "\n"))
            self.stream.flush()

    def end_status(self) -> None:
        with self._lock:
            if self.live and self._status:
                self.stream.write("\n")
                self.stream.flush()
            self._status = ""


class ConsoleLogHandler(logging.Handler):
    """Library warnings go through the console, so they do not tear the status line."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.say(f"  [{record.levelname.lower()}] {record.name}: {record.getMessage()}")


# -- the application side --------------------------------------------------------------------


@dataclass
class WorkerStats:
    """Counters of one worker thread (only that thread writes them)."""

    queries: int = 0
    failed: int = 0
    slowest: float = 0.0
    errors: list[str] = field(default_factory=list)


def worker(engine: Any, stats: WorkerStats, seed: int, stop: threading.Event) -> None:
    """Query until told to stop: read an item, and every fifth time update its stock."""
    item = seed
    while not stop.is_set():
        item = item % ITEMS + 1
        started = time.perf_counter()
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT name, stock FROM items WHERE id = :id"), {"id": item}).one()
                if item % 5 == 0:
                    conn.execute(text("UPDATE items SET stock = stock + 1 WHERE id = :id"), {"id": item})
        except Exception as exc:  # noqa: BLE001 - every failure counts; the point is that there are none
            stats.failed += 1
            if len(stats.errors) < 3:
                # Type and message: our errors name versions and stages, never a password.
                stats.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            continue
        stats.queries += 1
        stats.slowest = max(stats.slowest, time.perf_counter() - started)


# -- set-up ----------------------------------------------------------------------------------


def provision(db: Any, store: Any, kind: str) -> str:
    """Create the database, the two accounts and their secrets; return the database name."""
    if kind == "postgres":
        return provision_postgres(db, store)
    database = db.create_database("shop")
    q = db.quote_ident(database)
    db.execute(f"CREATE TABLE {q}.items (id INT PRIMARY KEY, name VARCHAR(40), stock INT NOT NULL)")
    db.execute(
        f"INSERT INTO {q}.items VALUES " + ", ".join(f"({i}, 'item {i}', 100)" for i in range(1, ITEMS + 1))
    )
    app_password = store.random_password(MYSQL_PASSWORD_POLICY)
    db.create_user(APP_ACCOUNT, app_password, grants=(f"SELECT, INSERT, UPDATE, DELETE ON {q}.*",))
    # The MasterSecret account gets the least privileges docs/security.md lists: create and
    # alter accounts, read the grant tables, and hand on the application's privileges.
    master_password = store.random_password(MYSQL_PASSWORD_POLICY)
    db.create_user(MASTER_ACCOUNT, master_password, grants=("CREATE USER ON *.*", "SELECT ON mysql.*"))
    db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {q}.* TO %s@%s WITH GRANT OPTION", (MASTER_ACCOUNT, "%"))
    common = {"Endpoint": db.host, "Port": db.port, "SSL": False}
    store_version(store, MASTER_SECRET, {**common, "AccountName": MASTER_ACCOUNT, "AccountPassword": master_password})
    store_version(store, APP_SECRET, {**common, "AccountName": APP_ACCOUNT, "AccountPassword": app_password,
                                      "DBName": database, "MasterSecret": MASTER_SECRET})
    return database


def provision_postgres(pg: PostgreSQL, store: Any) -> str:
    """PostgreSQL: the application's role owns what it creates; its twin ``appuser_rt`` (made by
    the first rotation) acts as ``appuser``, so both reach the same tables (docs/rotation.md)."""
    database = pg.create_database("shop")
    app_password = store.random_password(MYSQL_PASSWORD_POLICY)
    pg.create_user(APP_ACCOUNT, app_password, grants=(f"CONNECT ON DATABASE {pg.quote_ident(database)}",))
    pg.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), stock INT NOT NULL)", dbname=database)
    pg.execute("INSERT INTO items SELECT i, 'item ' || i, 100 FROM generate_series(1, %s) AS i", (ITEMS,),
               dbname=database)
    pg.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON items TO {APP_ACCOUNT}", dbname=database)
    # The MasterSecret role: CREATEROLE (on PostgreSQL 16+ also ADMIN OPTION on the role it manages).
    master_password = store.random_password(MYSQL_PASSWORD_POLICY)
    pg.create_user(MASTER_ACCOUNT, master_password, attributes="CREATEROLE")
    if int(pg.version.split(".")[0]) >= 16:
        pg.execute(f"GRANT {APP_ACCOUNT} TO {MASTER_ACCOUNT} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE")
    common = {"engine": "postgres", "Endpoint": pg.host, "Port": pg.port, "SSL": False}
    store_version(store, MASTER_SECRET, {**common, "AccountName": MASTER_ACCOUNT, "AccountPassword": master_password})
    store_version(store, APP_SECRET, {**common, "AccountName": APP_ACCOUNT, "AccountPassword": app_password,
                                      "DBName": database, "MasterSecret": MASTER_SECRET})
    return database


def start_database(kind: str, stack: ExitStack, say: Callable[[str], None]) -> Any:
    """The throwaway server, or None (with a message) when it is not installed."""
    try:
        if kind == "postgres":
            pg = stack.enter_context(PostgreSQL())
            say(f"PostgreSQL {pg.version.split()[0]} running on {pg.host}:{pg.port} (throwaway, in {pg.directory})")
            return pg
        db = stack.enter_context(MariaDB(audit=False))
    except (MariaDBNotInstalled, PostgreSQLNotInstalled) as exc:
        print(f"demo: {exc} (bash scripts/demo.sh installs it)", file=sys.stderr)
        return None
    say(f"MariaDB {db.version.split('-')[0]} running on {db.host}:{db.port} (throwaway, in {db.datadir})")
    return db


def database_accounts(db: Any, kind: str) -> set[str]:
    """Which of the two application accounts exist on the server."""
    names = (APP_ACCOUNT, APP_ACCOUNT + "_rt")
    if kind == "postgres":
        rows = db.execute("SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s)", names)
    else:
        rows = db.execute("SELECT User FROM mysql.user WHERE User IN (%s, %s)", names)
    return {str(row[0]) for row in rows}


def store_version(store: Any, name: str, value: dict[str, Any]) -> None:
    """Create secret ``name``, or add a version (ACSCurrent) when a ``--store-file`` from an earlier
    run has it already: its versions name that run's server, which is gone."""
    try:
        store.describe(name)
    except SecretNotFound:
        store.create_secret(name, json.dumps(value), version_id=uuid.uuid4().hex)
    else:
        store.put_secret(name, uuid.uuid4().hex, json.dumps(value))


def open_stores(kind: str, store_file: str, stack: ExitStack, say: Callable[[str], None]) -> tuple[Any, Any]:
    """(the application's store, the rotator's store): the same EmbeddedStore, or two SDK
    clients of one KMS emulator (as two processes would have)."""
    if kind == "aws":
        from secretclient.testing.aws import MotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
        moto = stack.enter_context(MotoServer())
        say(f"store: AWS Secrets Manager API at {moto.endpoint_url} (moto's server) through boto3")
        return stack.enter_context(moto.store()), stack.enter_context(moto.store())
    backing = stack.enter_context(EmbeddedStore(store_file))
    if kind == "embedded":
        say(f"store: EmbeddedStore ({'in memory' if store_file == ':memory:' else store_file})")
        return backing, backing
    from secretclient.testing import KmsEmulator

    emulator = stack.enter_context(KmsEmulator(store=backing))
    app_store = stack.enter_context(emulator.store())
    rotator_store = stack.enter_context(emulator.store())
    say(f"store: Alibaba KMS API at {emulator.endpoint} (local emulator) through aliyun-python-sdk-kms")
    return app_store, rotator_store


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Rotations:
    """Rotation events as the Rotator reports them (written by the scheduler thread)."""

    done: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)


def expected_rotations(duration: float, interval: float) -> int:
    """Half the rotations the schedule allows: slack for slow machines, still proof of many."""
    return max(1, int(duration / interval) // 2)


def run(args: argparse.Namespace, console: Console) -> int:
    say = console.say
    with ExitStack() as stack:
        db = start_database(args.db, stack, say)
        if db is None:
            return 1
        postgres = args.db == "postgres"
        app_store, rotator_store = open_stores(args.store, args.store_file, stack, say)
        database = provision(db, app_store, args.db)
        say(f"created database {database}, account {APP_ACCOUNT} (secret {APP_SECRET}) and "
            f"MasterSecret account {MASTER_ACCOUNT} (secret {MASTER_SECRET}); passwords from the store")

        client = stack.enter_context(SecretClient(app_store))
        connector = Connector(APP_SECRET, client, family=POSTGRES if postgres else MYSQL)
        engine = create_engine(
            # host, port, database, user and password: all from the secret
            "postgresql+psycopg:///" if postgres else "mysql+pymysql:///",
            connector=connector,
            pool_size=args.workers,
            max_overflow=args.workers,
            connect_args={"connect_timeout": 5} if postgres else
            {"connect_timeout": 5, "read_timeout": 30, "write_timeout": 30},
            # Without publish, new logins are what discover a rotation: make some.
            pool_recycle=-1 if args.publish else args.interval,
        )
        stack.callback(engine.dispose)
        stack.callback(connector.close)

        if args.strategy == "alternating":
            # A demo rotates every few seconds and its own pool still holds PREVIOUS sessions: both
            # protections are turned off explicitly here (production keeps the defaults, docs/rotation.md).
            alternating = PostgresAlternatingUsersStrategy if postgres else AlternatingUsersStrategy
            strategy: Any = alternating(grace=timedelta(0), drain=DrainPolicy(proceed=True))
            described = f"alternating users ({APP_ACCOUNT} <-> {APP_ACCOUNT}_rt)"
        else:
            strategy = PostgresSingleUserStrategy() if postgres else SingleUserStrategy()
            described = f"single user ({APP_ACCOUNT}, changed by {MASTER_ACCOUNT})"
        rotations = Rotations()
        def account_of(version_id: str) -> str:
            return rotator_store.get_secret(APP_SECRET, version_id=version_id).db_credentials().account_name

        rotator = Rotator(rotator_store, strategy=strategy, client=client if args.publish else None,
                          listeners=[_on_event(rotations, say, account_of, stage_labels(rotator_store).current)])
        scheduler = Scheduler(rotator, APP_SECRET, interval=timedelta(seconds=args.interval),
                              poll=max(0.1, args.interval / 2))

        expected = args.min_rotations if args.min_rotations is not None else expected_rotations(args.duration, args.interval)
        say(f"rotating {APP_SECRET} every {args.interval:g} s, {described}; {args.workers} workers "
            f"for {args.duration:g} s (expecting at least {expected} rotations)")
        if not args.publish:
            say("the rotator does not tell the application's SecretClient (as from another process): "
                f"refused logins make the engine re-read the secret and try {rotator.labels.pending} / {rotator.labels.previous}")

        stop = threading.Event()
        stats = [WorkerStats() for _ in range(args.workers)]
        threads = [
            threading.Thread(target=worker, args=(engine, s, i * 7, stop), name=f"worker-{i}", daemon=True)
            for i, s in enumerate(stats)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        scheduler.start()
        interrupted = False
        try:
            last_count, last_time, period = 0, started, 0.5 if console.live else 1.0
            while (now := time.monotonic()) - started < args.duration:
                time.sleep(min(period, args.duration - (now - started)))
                now = time.monotonic()
                count = sum(s.queries for s in stats)
                rate = (count - last_count) / max(now - last_time, 1e-6)
                last_count, last_time = count, now
                creds = client.get_db_credentials(APP_SECRET)
                console.status(
                    f"{now - started:5.1f} s | {rate:8,.0f} q/s | {count:>10,} queries | "
                    f"{sum(s.failed for s in stats)} failed | {rotations.done} rotations | "
                    f"version {creds.version_id[:12]} account {creds.account_name}"
                )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            scheduler.stop()
            stop.set()
            for t in threads:
                t.join(timeout=60)
            console.end_status()
        elapsed = time.monotonic() - started

        queries = sum(s.queries for s in stats)
        failed = sum(s.failed for s in stats)
        accounts = database_accounts(db, args.db)
        cs = connector.stats()
        say("")
        say(f"{rotations.done} rotations, {queries:,} queries, {failed:,} failed"
            f"  ({queries / max(elapsed, 1e-6):,.0f} queries/s over {elapsed:.1f} s, {args.workers} workers)")
        if rotations.durations:
            ms = sorted(d * 1000 for d in rotations.durations)
            say(f"  rotation time: median {ms[len(ms) // 2]:.0f} ms, slowest {ms[-1]:.0f} ms"
                f"; failed rotations: {rotations.failed}")
        say(f"  slowest query: {max(s.slowest for s in stats) * 1000:.0f} ms; logins {cs.logins} "
            f"(rejected {cs.rejected}, recovered {cs.recovered}); pooled connections rolled over {cs.rollovers}")
        current = rotator_store.get_secret(APP_SECRET)
        say(f"  database accounts: {', '.join(sorted(accounts))}; {rotator.labels.current} is "
            f"{current.db_credentials().account_name} version {current.version_id}")
        for line in sorted({e for s in stats for e in s.errors})[:5]:
            say(f"  error: {line}")

    if interrupted:
        say("interrupted")
        return 130
    problems = []
    if failed:
        problems.append(f"{failed:,} queries failed")
    if rotations.failed:
        problems.append(f"{rotations.failed} rotations failed")
    if rotations.done < expected:
        problems.append(f"only {rotations.done} rotations, expected at least {expected}")
    if problems:
        say("FAILED: " + "; ".join(problems))
        return 1
    say(f"OK: no failed query through {rotations.done} password rotations")
    return 0


def _on_event(
    rotations: Rotations, say: Callable[[str], None], account_of: Callable[[str], str], current: str
) -> Callable[[RotationEvent], None]:
    """A Rotator listener counting rotations and printing one line per promotion."""

    def on_event(event: RotationEvent) -> None:
        if event.kind == "promoted":
            rotations.done += 1
            if event.duration is not None:
                rotations.durations.append(event.duration)
            account = account_of(event.version_id) if event.version_id else "?"
            took = f" in {event.duration * 1000:.0f} ms" if event.duration is not None else ""
            say(f"  rotation {rotations.done}: {current} -> version {event.version_id} ({account}){took}")
        elif event.kind == "failed":
            rotations.failed += 1
            say(f"  rotation failed: {event.detail}")

    return on_event


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Live demo: worker threads query MariaDB (or PostgreSQL) while the password rotates in-process.")
    parser.add_argument("--db", choices=("mariadb", "postgres"), default="mariadb",
                        help="the throwaway database: MariaDB (default) or PostgreSQL (psycopg 3)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    parser.add_argument("--workers", type=int, default=8, help="querying threads (default 8)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between rotations (default 3)")
    parser.add_argument("--strategy", choices=("alternating", "single"), default="alternating",
                        help="alternating users appuser/appuser_rt (default) or one user changed in place")
    parser.add_argument("--store", choices=("embedded", "kms", "aws"), default="embedded",
                        help="EmbeddedStore (default), the KMS emulator through the Alibaba SDK, or "
                             "moto's AWS Secrets Manager server through boto3")
    parser.add_argument("--store-file", default=":memory:",
                        help="EmbeddedStore file holding the secrets (behind the emulator with --store kms); "
                             "default in memory")
    parser.add_argument("--no-publish", dest="publish", action="store_false",
                        help="do not hand new versions to the application's client, as a rotator in "
                             "another process would not; pooled connections are recycled every interval")
    parser.add_argument("--min-rotations", type=int, default=None,
                        help="fewer rotations than this is a failure (default: half of duration/interval)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.interval <= 0 or args.workers < 1:
        parser.error("--duration and --interval must be > 0 and --workers >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(sys.stdout, live=sys.stdout.isatty())
    handler = ConsoleLogHandler(console)
    # Our libraries' warnings only: the Alibaba SDK logs every 404 (an absent ACSPending, the
    # usual case) at ERROR level.
    loggers = [logging.getLogger(name) for name in ("secretclient", "rotation")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        return run(args, console)
    except KeyboardInterrupt:  # during set-up; the run itself handles it and prints a summary
        console.say("interrupted")
        return 130
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
