"""Play Secrets Manager and the rotation Lambda locally, with an application querying throughout.

    python examples/aws/run_locally.py

Starts a throwaway MariaDB and moto's Secrets Manager server on 127.0.0.1, stores a master
secret and an application secret in AWS's format (``masterarn`` → alternating users), and
runs 4 threads querying through ``create_engine(..., client=SecretClient(AwsSecretsManagerStore()))``
while Secrets Manager's part is played twice: ``RotateSecret`` (which labels a new token
AWSPENDING), then ``lambda_handler`` for createSecret, setSecret, testSecret and finishSecret.
Needs the ``dev`` extra (moto's server) and mariadbd.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import sqlalchemy as sa
from botocore.exceptions import ClientError

from secretclient import AwsSecretsManagerStore, SecretClient
from secretclient.db.sqlalchemy import create_engine
from secretclient.testing import MariaDB
from secretclient.testing.aws import MotoServer, enable_rotation

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:rotate-mysql"


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs each request at INFO
    with MariaDB() as db, MotoServer() as moto:
        os.environ.update(moto.env)  # what the Lambda and the application would have: region, role, endpoint
        # The application's sessions as the AWSPREVIOUS account end within moments (the engine rolls
        # its pool over to AWSCURRENT): the rotation waits for them rather than refusing.
        os.environ["ROTATION_DRAIN_WAIT"] = "30"
        os.environ["ROTATION_GRACE_SECONDS"] = "0"  # two rotations back to back: no grace (the default is 1 h)
        from lambda_function import lambda_handler  # imported as Lambda does, after its environment is set

        database = db.create_database("shop")
        db.create_user("rotator", "master-Pass-1", grants=["ALL PRIVILEGES ON *.* WITH GRANT OPTION"])
        db.create_user("shopapp", "first-Pass-1", grants=[f"SELECT ON {database}.*"])
        sm = moto.client()
        common = {"engine": "mariadb", "host": db.host, "port": db.port}
        master = sm.create_secret(Name="prod/db/master", SecretString=json.dumps(
            {**common, "username": "rotator", "password": "master-Pass-1"}))
        sm.create_secret(Name="prod/app/db", SecretString=json.dumps(
            {**common, "username": "shopapp", "password": "first-Pass-1", "dbname": database,
             "masterarn": master["ARN"]}))
        enable_rotation(sm, "prod/app/db", days=30)

        client = SecretClient(AwsSecretsManagerStore(), close_store=True)
        engine = create_engine("mysql+pymysql:///", secret="prod/app/db", client=client, pool_size=4)
        stop, queries, failures = threading.Event(), [0], []

        def app() -> None:
            while not stop.is_set():
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1")).scalar_one()
                        conn.invalidate()  # a new login every time: the hard case
                    queries[0] += 1
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    failures.append(type(exc).__name__)

        workers = [threading.Thread(target=app) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            for n in (1, 2):
                token = str(uuid.uuid4())
                try:
                    sm.rotate_secret(SecretId="prod/app/db", ClientRequestToken=token, RotationLambdaARN=LAMBDA_ARN)
                except ClientError:
                    pass  # moto cannot invoke a Lambda: it only labels the token AWSPENDING, as AWS does first
                for step in STEPS:
                    lambda_handler({"SecretId": "prod/app/db", "ClientRequestToken": token, "Step": step}, None)
                    print(f"rotation {n}: {step} done")
                current = json.loads(sm.get_secret_value(SecretId="prod/app/db", VersionStage="AWSCURRENT")["SecretString"])
                print(f"rotation {n}: AWSCURRENT is {token} (username {current['username']})")
        finally:
            stop.set()
            for w in workers:
                w.join(30)
            engine.dispose()
            client.close()
        for v in sm.list_secret_version_ids(SecretId="prod/app/db")["Versions"]:
            print(f"  {v['VersionId']}  {', '.join(v['VersionStages']) or '-'}")
        print(f"application: {queries[0]} queries, {len(failures)} failed")
        if failures:
            raise SystemExit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
