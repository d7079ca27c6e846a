"""Helpers for the AWS Lambda tests (test_aws_lambda.py, test_aws_lambda_load.py): a rotated
secret on moto's server and MariaDB (``Setup``), its fixtures, and one rotation driven exactly as
Secrets Manager drives a rotation function. The fixtures are imported by those modules."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pytest
from botocore.exceptions import ClientError

from rotation.aws_lambda import lambda_handler
from secretclient.model import DbCredentials
from secretclient.stores.aws import AwsSecretsManagerStore
from secretclient.testing.aws import MotoServer, enable_rotation

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
FAKE_LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:rotate"


@dataclass
class Setup:
    moto: MotoServer
    store: AwsSecretsManagerStore
    name: str
    db: Any
    dbname: str
    user: str
    master_user: str | None = None

    def labels(self) -> dict[str, set[str]]:
        return {v.version_id: set(v.stages) for v in self.store.list_versions(self.name, include_deprecated=True)}

    def holder(self, label: str) -> str | None:
        return next((vid for vid, stages in self.labels().items() if label in stages), None)

    def start_rotation(self) -> str:
        """RotateSecret as Secrets Manager receives it; returns the ClientRequestToken."""
        token = str(uuid.uuid4())
        try:
            self.moto.client().rotate_secret(SecretId=self.name, ClientRequestToken=token,
                                             RotationLambdaARN=FAKE_LAMBDA)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"  # moto cannot invoke it
        assert self.labels()[token] == {"AWSPENDING"}
        return token

    def event(self, token: str, step: str) -> dict[str, str]:
        return {"SecretId": self.name, "ClientRequestToken": token, "Step": step}

    def creds(self, **selector: Any) -> DbCredentials:
        return self.store.get_secret(self.name, **selector).db_credentials()

    def logs_in(self, creds: DbCredentials) -> bool:
        try:
            self.db.connect(creds.account_name, creds.account_password, database=creds.db_name).close()
            return True
        except pymysql.OperationalError:
            return False

    def assert_rotated(self, token: str, before: str) -> None:
        labels = self.labels()
        assert labels[token] == {"AWSCURRENT"}
        assert labels[before] == {"AWSPREVIOUS"}
        assert not any("AWSPENDING" in s for s in labels.values())
        assert self.logs_in(self.creds())


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The Lambda's environment: region, role credentials and SECRETS_MANAGER_ENDPOINT."""
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ROTATION_STRATEGY", raising=False)
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")  # rotations back to back: explicit, not the 1 h default
    return moto_server


@pytest.fixture
def store(aws_env: MotoServer) -> Iterator[AwsSecretsManagerStore]:
    with aws_env.store() as s:
        yield s


def _secret(db: Any, user: str, password: str, dbname: str, **extra: Any) -> str:
    return json.dumps({"engine": "mariadb", "host": db.host, "port": db.port, "username": user,
                       "password": password, "dbname": dbname, **extra})


@pytest.fixture
def single(aws_env: MotoServer, store: AwsSecretsManagerStore, mariadb: Any) -> Setup:
    dbname = mariadb.create_database("aws")
    user, password = f"app{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    mariadb.create_user(user, password, grants=[f"ALL ON {mariadb.quote_ident(dbname)}.*"])
    name = f"db/{user}"
    store.create_secret(name, _secret(mariadb, user, password, dbname), version_id=str(uuid.uuid4()))
    enable_rotation(aws_env.client(), name)
    return Setup(aws_env, store, name, mariadb, dbname, user)


@pytest.fixture
def multi(aws_env: MotoServer, store: AwsSecretsManagerStore, mariadb: Any) -> Setup:
    dbname = mariadb.create_database("aws")
    master, master_pw = f"rotator{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    mariadb.create_user(master, master_pw, grants=["ALL PRIVILEGES ON *.* WITH GRANT OPTION"])
    info = store.create_secret(f"db/{master}", _secret(mariadb, master, master_pw, ""), version_id=str(uuid.uuid4()))
    user, password = f"app{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    mariadb.create_user(user, password, grants=[f"SELECT, INSERT ON {mariadb.quote_ident(dbname)}.*"])
    name = f"db/{user}"
    store.create_secret(name, _secret(mariadb, user, password, dbname, masterarn=info.arn),
                        version_id=str(uuid.uuid4()))
    enable_rotation(aws_env.client(), name)
    return Setup(aws_env, store, name, mariadb, dbname, user, master)


def rotate(setup: Setup, handler: Callable[[Any, Any], None] = lambda_handler) -> tuple[str, str]:
    before = setup.holder("AWSCURRENT")
    assert before is not None
    token = setup.start_rotation()
    for step in STEPS:
        handler(setup.event(token, step), None)
    return token, before
