"""Play NCP's Secret Manager and its Cloud Functions trigger locally, then rotate.

    python examples/ncp/run_locally.py [--rotations 3]

A throwaway MariaDB holds a Cloud DB-style account; the NCP emulator holds its secret (the
seed's keys, ``cdbPassword`` as the rotation target). For each rotation it does what the service
does — issue a job token — and calls ``index.main`` with the action's four arguments, while an
application queries through ``secretclient.db`` fed by the NCP store. Passwords are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # index.py, as Cloud Functions loads it

import index
import sqlalchemy as sa

from secretclient import SecretClient
from secretclient.db.sqlalchemy import create_engine
from secretclient.testing import MariaDB, MariaDBNotInstalled, NcpEmulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rotations", type=int, default=3)
    args = parser.parse_args()
    try:
        db = MariaDB().start()
    except MariaDBNotInstalled as exc:
        print(f"cannot run: {exc}", file=sys.stderr)
        return 2
    with db, NcpEmulator() as ncp:
        database = db.create_database("shop")
        password = secrets.token_urlsafe(12)
        db.create_user("shopapp", password, grants=(f"ALL ON {db.quote_ident(database)}.*",))
        value = {"cdbHost": db.host, "cdbPort": str(db.port), "cdbUser": "shopapp",
                 "cdbDatabase": database, "cdbPassword": password}
        secret_id = ncp.create_secret("shop-db", json.dumps(value), rotation_targets=["cdbPassword"])
        print(f"NCP emulator at {ncp.endpoint}; secret shop-db = {secret_id[:12]}…")
        # The action's one setting for a local run (default: https://secretmanager.apigw.ntruss.com).
        os.environ["NCLOUD_SECRET_MANAGER_ENDPOINT"] = ncp.endpoint

        store = ncp.store()
        client = SecretClient(store)
        engine = create_engine("mysql+pymysql:///", secret=secret_id, client=client, pool_size=4)
        stop, counts, failures = threading.Event(), [0], []

        def app() -> None:  # the application keeps querying through every rotation
            while not stop.is_set():
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1"))
                        conn.invalidate()  # a new login each time: the hard case
                    counts[0] += 1
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    failures.append(type(exc).__name__)

        worker = threading.Thread(target=app)
        worker.start()
        try:
            for i in range(1, args.rotations + 1):
                stop.wait(0.5)  # let the application run between rotations
                token = ncp.start_rotation(secret_id)  # what the service does on schedule
                result = index.main({"secretId": secret_id, "jobToken": token,
                                     "accessKey": ncp.access_key, "secretKey": ncp.secret_key})
                print(f"rotation {i}: {json.dumps(result)}; job {ncp.job_state(secret_id, token)}; "
                      f"chain: {', '.join(sorted(ncp.chain(secret_id)))}")
        finally:
            stop.set()
            worker.join(30)
            engine.dispose()
            client.close()
        print(f"application: {counts[0]} queries, {len(failures)} failed")
        return 0 if not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
