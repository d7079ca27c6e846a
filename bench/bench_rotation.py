"""One full rotation (new → set → test → end) on loopback: median of 20, per strategy and store.

    python bench/bench_rotation.py [--db mariadb|postgres]
    python bench/bench_rotation.py --store aws   # rotation.aws_lambda driven as Secrets Manager does

A throwaway MariaDB or PostgreSQL (secretclient.testing) and, for the KMS rows, the KmsEmulator
reached through the real aliyun SDK over HTTP; for ``--store aws``, moto's server over HTTP (each
rotation: RotateSecret, then lambda_handler for createSecret, setSecret, testSecret and
finishSecret with its ClientRequestToken, as Secrets Manager invokes a rotation function). Each
rotation includes taking and releasing the lock (GET_LOCK, or pg_advisory_lock), every store
call and every login the engine makes. Target: median ≤ 200 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rotation import AlternatingUsersStrategy, Rotator, SingleUserStrategy
from secretclient.stores.embedded import EmbeddedStore
from secretclient.testing.kms_emulator import KmsEmulator
from secretclient.testing.mariadb import MariaDB
from secretclient.testing.postgresql import PostgreSQL

ROUNDS = 20


def setup(db: MariaDB, store, n: int) -> str:
    database = db.create_database("bench")
    db.create_user(f"adm{n}", "admin-pw-0123456789")
    db.execute("GRANT ALL ON *.* TO %s@%s WITH GRANT OPTION", (f"adm{n}", "%"))
    db.create_user(f"app{n}", "app-pw-0123456789", grants=(f"SELECT, INSERT, UPDATE ON {database}.*",))
    common = {"Endpoint": db.host, "Port": db.port, "SSL": False}
    return _secrets(store, n, common, database)


def _secrets(store, n: int, common: dict, database: str) -> str:
    """The MasterSecret and the application's secret of bench account ``n``; the secret's name."""
    store.create_secret(f"master{n}", json.dumps({**common, "AccountName": f"adm{n}",
                                                  "AccountPassword": "admin-pw-0123456789"}), version_id="m")
    store.create_secret(f"app{n}", json.dumps({**common, "AccountName": f"app{n}", "DBName": database,
                                               "AccountPassword": "app-pw-0123456789",
                                               "MasterSecret": f"master{n}"}), version_id="v0")
    return f"app{n}"


def setup_postgres(pg: PostgreSQL, store, n: int) -> str:
    database = pg.create_database("bench")
    pg.create_user(f"adm{n}", "admin-pw-0123456789", attributes="CREATEROLE")
    pg.create_user(f"app{n}", "app-pw-0123456789", grants=(f"ALL ON DATABASE {database}",))
    common = {"engine": "postgres", "Endpoint": pg.host, "Port": pg.port, "SSL": False}
    return _secrets(store, n, common, database)


def measure(rotator: Rotator, name: str) -> list[float]:
    rotator.rotate(name)  # warm-up: creates the _rt account, fills caches
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        rotator.rotate(name)
        times.append(time.perf_counter() - t0)
    return times


def aws_rows(db: MariaDB) -> list[tuple[str, str, float, float]]:
    """rotation.aws_lambda on moto's server: single user and alternating users (masterarn)."""
    import logging

    from botocore.exceptions import ClientError

    from rotation.aws_lambda import lambda_handler
    from secretclient.testing.aws import MotoServer, enable_rotation

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request at INFO
    rows = []
    with MotoServer() as moto:
        os.environ.update(moto.env)  # the function's environment: endpoint, region, credentials
        client, store = moto.client(), moto.store()
        for label, masterarn in (("single user", False), ("alternating users (masterarn)", True)):
            n = len(rows) + 1
            database = db.create_database("bench")
            db.create_user(f"awsadm{n}", "admin-pw-0123456789", grants=("ALL ON *.* WITH GRANT OPTION",))
            db.create_user(f"awsapp{n}", "app-pw-0123456789", grants=(f"SELECT, INSERT, UPDATE ON {database}.*",))
            # "ssl": false as the other rows' "SSL": false: no TLS context per login on loopback.
            common = {"engine": "mariadb", "host": db.host, "port": db.port, "ssl": False}
            extra = {}
            if masterarn:
                info = store.create_secret(f"awsmaster{n}", json.dumps({**common, "username": f"awsadm{n}",
                                                                         "password": "admin-pw-0123456789"}),
                                           version_id=str(uuid.uuid4()))
                extra = {"masterarn": info.arn}
            name = f"awsapp{n}"
            store.create_secret(name, json.dumps({**common, "username": name, "password": "app-pw-0123456789",
                                                  "dbname": database, **extra}), version_id=str(uuid.uuid4()))
            enable_rotation(client, name)

            def rotate(name: str = name) -> None:
                token = str(uuid.uuid4())
                try:  # moto labels the token AWSPENDING, then cannot invoke a Lambda
                    client.rotate_secret(SecretId=name, ClientRequestToken=token,
                                         RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:rotate")
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                        raise
                for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                    lambda_handler({"SecretId": name, "ClientRequestToken": token, "Step": step}, None)

            rotate()  # warm-up: creates the _clone account, fills caches
            times = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                rotate()
                times.append(time.perf_counter() - t0)
            rows.append(("AWS lambda_handler on moto", label, statistics.median(times), max(times)))
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--db", choices=("mariadb", "postgres"), default="mariadb")
    parser.add_argument("--store", choices=("kms", "aws"), default="kms",
                        help="kms: EmbeddedStore and the KMS emulator (default); aws: rotation.aws_lambda on moto")
    args = parser.parse_args()
    if args.store == "aws":
        with MariaDB(audit=False) as db:
            rows = aws_rows(db)
            print(f"MariaDB {db.version}, {ROUNDS} rotations each after one warm-up, loopback")
        report(rows)
        return
    rows = []
    if args.db == "postgres":
        from rotation.strategies.postgres import PostgresAlternatingUsersStrategy, PostgresSingleUserStrategy

        server: MariaDB | PostgreSQL = PostgreSQL()
        strategies = (
            ("alternating users", lambda: PostgresAlternatingUsersStrategy(grace=timedelta(0))),
            ("single user, MasterSecret", lambda: PostgresSingleUserStrategy(use_master=True)),
            ("single user, self", lambda: PostgresSingleUserStrategy(use_master=False)),
        )
        make_app = setup_postgres
    else:
        server = MariaDB(audit=False)
        strategies = (
            ("alternating users", lambda: AlternatingUsersStrategy(name_limit=80, grace=timedelta(0))),
            ("single user, MasterSecret", lambda: SingleUserStrategy(use_master=True)),
            ("single user, self", lambda: SingleUserStrategy(use_master=False)),
        )
        make_app = setup
    with server as db:
        backing = EmbeddedStore()
        with KmsEmulator(store=EmbeddedStore()) as emulator:
            stores = {"EmbeddedStore (:memory:)": backing, "KMS emulator via SDK (HTTP)": emulator.store()}
            n = 0
            for store_label, store in stores.items():
                for label, strategy in strategies:
                    n += 1
                    name = make_app(db, store, n)
                    times = measure(Rotator(store, strategy=strategy()), name)
                    rows.append((store_label, label, statistics.median(times), max(times)))
        kind = "PostgreSQL" if args.db == "postgres" else "MariaDB"
        print(f"{kind} {db.version}, {ROUNDS} rotations each after one warm-up, loopback")
    report(rows)


def report(rows: list[tuple[str, str, float, float]]) -> None:
    print(f"{'store':30} {'strategy':28} {'median ms':>10} {'max ms':>8}")
    for store_label, label, median, worst in rows:
        print(f"{store_label:30} {label:28} {median * 1000:10.1f} {worst * 1000:8.1f}")
    verdict = all(median <= 0.200 for _, _, median, _ in rows)
    print(f"target median <= 200 ms: {'met' if verdict else 'MISSED'}")


if __name__ == "__main__":
    main()
