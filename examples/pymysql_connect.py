"""Plain PyMySQL through a rotation: ``secretclient.db.connect()``.

    python examples/pymysql_connect.py [--store secrets.db]     # re-runnable with the same file

1. starts a throwaway MariaDB and stores an account's credentials as a secret;
2. ``connect(secret, client=client)`` logs in with them (a PyMySQL connection, proxied);
3. the password is rotated behind the application's back (ALTER USER, then a new secret
   version, as a rotator in another process would do): the client's cache still holds the old
   version;
4. a new ``connect()`` is refused once (1045), re-reads the secret and logs in with the new
   version; the long-lived connection, killed by the server, reconnects with
   ``ping(reconnect=True)`` using the current credentials, not the ones it started with.

Passwords are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from secretclient import EmbeddedStore, SecretClient, SecretNotFound
from secretclient.db import Connector, connect
from secretclient.model import PasswordPolicy
from secretclient.testing import MariaDB, MariaDBNotInstalled

SECRET = "examples/pymysql"
ACCOUNT = "report_app"
POLICY = PasswordPolicy(length=24)


def whoami(conn: object) -> str:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT CURRENT_USER(), CONNECTION_ID(), COUNT(*) FROM orders")
        user, conn_id, orders = cur.fetchone()
    return f"{user}, connection {conn_id}, {orders} orders"


def secret_exists(store: EmbeddedStore) -> bool:
    try:
        store.describe(SECRET)
    except SecretNotFound:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=":memory:", help="EmbeddedStore file (default: in memory)")
    args = parser.parse_args(argv)

    try:
        db = MariaDB(audit=False).start()
    except MariaDBNotInstalled as exc:
        print(f"pymysql_connect: {exc}", file=sys.stderr)
        return 1
    with db, EmbeddedStore(args.store) as store, SecretClient(store) as client:
        print(f"MariaDB {db.version.split('-')[0]} on {db.host}:{db.port}")
        database = db.create_database("reports")
        db.execute(f"CREATE TABLE {db.quote_ident(database)}.orders (id INT PRIMARY KEY)")
        db.execute(f"INSERT INTO {db.quote_ident(database)}.orders VALUES (1), (2), (3)")
        password = store.random_password(POLICY)
        db.create_user(ACCOUNT, password, grants=(f"SELECT ON {db.quote_ident(database)}.*",))
        value = {"AccountName": ACCOUNT, "AccountPassword": password, "Endpoint": db.host,
                 "Port": db.port, "DBName": database, "SSL": False}
        if secret_exists(store):  # a --store file from an earlier run: its versions name a server now gone
            store.put_secret(SECRET, str(uuid.uuid4()), json.dumps(value))
        else:
            store.create_secret(SECRET, json.dumps(value), version_id=str(uuid.uuid4()))

        # One Connector per secret keeps what it learned (and counts) across connects.
        connector = Connector(SECRET, client)
        conn = connect(SECRET, connector=connector, autocommit=True, read_timeout=30)
        print(f"connected with version {conn.credential_version}: {whoami(conn)}")

        # Rotate behind the client's back: the database first, then the store.
        value["AccountPassword"] = store.random_password(POLICY)
        db.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (ACCOUNT, value["AccountPassword"]))
        new_version = str(uuid.uuid4())
        store.put_secret(SECRET, new_version, json.dumps(value))
        print(f"rotated the password in the database and stored version {new_version}; "
              f"the client still caches {client.get(SECRET).version_id}")

        print(f"the open connection keeps working (MariaDB keeps sessions): {whoami(conn)}")
        second = connect(SECRET, connector=connector, autocommit=True, read_timeout=30)
        stats = connector.stats()
        print(f"a new connect() was refused {stats.rejected} time(s), re-read the secret and logged in "
              f"with version {second.credential_version}: {whoami(second)}")
        second.close()

        db.execute(f"KILL CONNECTION {int(conn.thread_id())}")
        conn.ping(reconnect=True)
        print(f"the server killed the first connection; ping(reconnect=True) logged in again with "
              f"version {conn.credential_version}: {whoami(conn)}")
        conn.close()
        stats = connector.stats()
        print(f"connector: {stats.connects} connects, {stats.logins} logins, {stats.rejected} rejected, "
              f"{stats.recovered} recovered, {stats.store_reads} forced store read(s)")
    print("done: the throwaway MariaDB is stopped and its directory removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
