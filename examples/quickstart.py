"""Quickstart: a secret in the embedded store, a throwaway MariaDB, a query through the secret.

    python examples/quickstart.py [--store secrets.db]     # run it again: the secret gets new versions

1. starts a throwaway MariaDB (secretclient.testing.MariaDB) on a free loopback port;
2. creates a database and an application account with a password from the store's generator;
3. stores the account as a secret (the JSON shape of Alibaba KMS RDS/generic secrets);
4. connects with credentials read back from the secret (plain PyMySQL) and runs queries;
5. rotates the password by hand (ALTER USER + a new secret version) and connects again:
   the new version is ACSCurrent and the old one ACSPrevious.

Passwords are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import pymysql

from secretclient import EmbeddedStore, SecretNotFound
from secretclient.model import CURRENT, PasswordPolicy
from secretclient.testing import MariaDB, MariaDBNotInstalled

SECRET = "quickstart/app-db"
POLICY = PasswordPolicy(length=24)  # any characters: they travel as query parameters


def query_through_secret(store: EmbeddedStore) -> None:
    """Read the current credentials from the store and use them, as an application would."""
    creds = store.get_secret(SECRET).db_credentials()
    conn = pymysql.connect(
        host=creds.endpoint,
        port=creds.port,
        user=creds.account_name,
        password=creds.account_password,
        database=creds.db_name,
        connect_timeout=5,
        read_timeout=30,
        ssl_disabled=not creds.ssl,
    )
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO visits (who) VALUES (CURRENT_USER())")
        conn.commit()
        cur.execute("SELECT COUNT(*), CURRENT_USER(), DATABASE() FROM visits")
        count, user, database = cur.fetchone()
    print(f"  connected as {user} to {database} with version {creds.version_id}: {count} visit(s) so far")


def store_version(store: EmbeddedStore, value: str) -> str:
    """Store ``value`` as the secret's new ACSCurrent version and return its VersionId: the first
    version of a new secret, or one more when a ``--store`` file from an earlier run has the
    secret already (its versions name that run's server, which is gone)."""
    version = str(uuid.uuid4())
    try:
        store.describe(SECRET)
    except SecretNotFound:
        store.create_secret(SECRET, value, version_id=version)
    else:
        store.put_secret(SECRET, version, value)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=":memory:", help="EmbeddedStore file (default: in memory)")
    args = parser.parse_args(argv)

    store = EmbeddedStore(args.store)
    try:
        db = MariaDB().start()
    except MariaDBNotInstalled as exc:
        print(f"quickstart: {exc}", file=sys.stderr)
        return 1
    with db, store:
        print(f"MariaDB {db.version} running on {db.host}:{db.port} (data in {db.datadir})")
        database = db.create_database("shop")
        db.execute(
            f"CREATE TABLE {db.quote_ident(database)}.visits"
            " (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(200))"
        )
        password = store.random_password(POLICY)
        db.create_user("shop_app", password, grants=(f"SELECT, INSERT ON {db.quote_ident(database)}.*",))
        print(f"created database {database} and account shop_app@% (password from the store's generator)")

        value = {
            "AccountName": "shop_app",
            "AccountPassword": password,
            "Endpoint": db.host,
            "Port": db.port,
            "DBName": database,
            "SSL": False,
        }
        first = store_version(store, json.dumps(value))
        print(f"stored secret {SECRET!r} version {first} as {CURRENT}")
        query_through_secret(store)

        # A manual rotation, to show the stages: the database first, then the secret.
        value["AccountPassword"] = store.random_password(POLICY)
        db.execute("ALTER USER 'shop_app'@'%%' IDENTIFIED BY %s", (value["AccountPassword"],))
        store_version(store, json.dumps(value))
        print("rotated the password; secret versions now:")
        for info in store.list_versions(SECRET):
            print(f"  {info.version_id}: {', '.join(sorted(info.stages)) or '-'}")
        query_through_secret(store)
    print("done: the throwaway MariaDB is stopped and its directory removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
