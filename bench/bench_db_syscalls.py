"""System calls per new connection: our engine vs a plain engine with the same login bound.

    python bench/bench_db_syscalls.py [--connections 200]

A count that load on the host does not change (unlike wall-clock time): each engine runs in a
child process under ``strace -f``; the calls made between two marker writes around the loop of
``engine.connect()`` + ``SELECT 1`` + close (``NullPool``, no TLS) are counted per connection.
Needs ``strace`` and ``mariadbd``; loopback only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(")
_MARK = b"BENCH-MARK\n"


def _child(kind: str, n: int) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from secretclient.client import SecretClient
    from secretclient.db import Connector
    from secretclient.db.sqlalchemy import create_engine
    from secretclient.stores.embedded import EmbeddedStore

    env = os.environ
    host, port, user = env["B_HOST"], int(env["B_PORT"]), env["B_USER"]
    password, database = env["B_PW"], env["B_DB"]
    if kind == "ours":
        store = EmbeddedStore()
        store.create_secret("bench/db", json.dumps({"AccountName": user, "AccountPassword": password, "Endpoint": host,
                                                    "Port": port, "DBName": database, "SSL": False}))
        engine = create_engine("mysql+pymysql:///", connector=Connector("bench/db", SecretClient(store)),
                               poolclass=NullPool)
    else:
        url = sa.URL.create("mysql+pymysql", username=user, password=password, host=host, port=port,
                            database=database)
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"ssl_disabled": True, "read_timeout": 30})

    def one() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar_one()

    for _ in range(50):  # warm up
        one()
    os.write(2, _MARK)
    for _ in range(n):
        one()
    os.write(2, _MARK)


def _count(trace: str, n: int) -> tuple[float, collections.Counter[str]]:
    with open(trace) as f:
        lines = f.read().splitlines()
    marks = [i for i, line in enumerate(lines) if "BENCH-MARK" in line and "write(2" in line]
    segment = lines[marks[0] + 1:marks[1]]
    calls: collections.Counter[str] = collections.Counter()
    for line in segment:
        m = _CALL.match(line)
        if m:
            calls[m.group(1)] += 1
    return sum(calls.values()) / n, calls


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200, help="connections per engine (default 200)")
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("needs strace (apt-get install strace)")
    from secretclient.testing import MariaDB

    with MariaDB(audit=False) as db, tempfile.TemporaryDirectory() as tmp:
        database = db.create_database("bench")
        user, password = "bench_sys", secrets.token_urlsafe(16)
        db.create_user(user, password, grants=(f"ALL ON {database}.*",))
        env = dict(os.environ, B_HOST=db.host, B_PORT=str(db.port), B_USER=user, B_PW=password, B_DB=database)
        print(f"MariaDB {db.version}; {args.connections} new connections + SELECT 1 + close per engine, "
              "NullPool, no TLS")
        for kind, title in (("plain", "plain, read_timeout=30 (bounded login)"), ("ours", "secretclient.db engine")):
            trace = os.path.join(tmp, kind)
            subprocess.run(["strace", "-f", "-qq", "-o", trace, sys.executable, __file__, "--child", kind,
                            str(args.connections)], env=env, check=True, stderr=subprocess.DEVNULL)
            per, calls = _count(trace, args.connections)
            top = ", ".join(f"{name} {count / args.connections:.0f}" for name, count in calls.most_common(6))
            print(f"{title:<42} {per:6.1f} syscalls per connection ({top})")


if __name__ == "__main__":
    main()
