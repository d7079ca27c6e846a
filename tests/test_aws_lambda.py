"""rotation.aws_lambda driven exactly as Secrets Manager drives a rotation function.

Secrets Manager is moto's server over HTTP; the database a throwaway MariaDB. A rotation
starts with ``RotateSecret`` (moto, unable to invoke a Lambda, leaves the token's AWSPENDING
version without a value, as AWS does before calling the function), then the handler is
invoked four times with that ClientRequestToken: createSecret, setSecret, testSecret,
finishSecret.
"""

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

from rotation.aws_lambda import lambda_handler, make_handler, rotator_from_environment
from rotation.engine import Rotator
from rotation.errors import InvalidRotationSetup, RotationConflict
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


def rotate(setup: Setup, handler: Callable[[Any, Any], None] = lambda e, c: lambda_handler(e, c)) -> tuple[str, str]:
    before = setup.holder("AWSCURRENT")
    assert before is not None
    token = setup.start_rotation()
    for step in STEPS:
        handler(setup.event(token, step), None)
    return token, before


# -- single user and multi user ------------------------------------------------------------


def test_single_user_rotation_changes_the_password_in_the_format_it_read(single):
    old = single.creds()
    token, before = rotate(single)
    single.assert_rotated(token, before)
    new = single.creds()
    assert new.account_name == old.account_name and new.account_password != old.account_password
    assert not single.logs_in(old)  # single user: the old password is gone
    stored = json.loads(single.store.get_secret(single.name).data)
    assert set(stored) == {"engine", "host", "port", "username", "password", "dbname"}
    assert stored["engine"] == "mariadb"


def test_multi_user_rotation_alternates_user_and_user_clone(multi):
    first = multi.creds()
    token1, before1 = rotate(multi)
    multi.assert_rotated(token1, before1)
    assert multi.creds().account_name == f"{multi.user}_clone"
    assert multi.logs_in(first)  # the AWSPREVIOUS account is untouched
    grants = multi.db.execute("SHOW GRANTS FOR %s@'%%'", (f"{multi.user}_clone",))
    assert any("SELECT, INSERT" in row[0] for row in grants)
    token2, before2 = rotate(multi)
    multi.assert_rotated(token2, before2)
    again = multi.creds()
    assert again.account_name == multi.user and again.account_password != first.account_password
    assert json.loads(multi.store.get_secret(multi.name).data)["masterarn"] == first.master_secret


def test_password_policy_from_the_environment(single, monkeypatch):
    monkeypatch.setenv("EXCLUDE_CHARACTERS", "abcdefXYZ0123!#$%")
    monkeypatch.setenv("PASSWORD_LENGTH", "20")
    for _ in range(2):
        rotate(single)
        pw = single.creds().account_password
        assert len(pw) == 20 and not set(pw) & set("abcdefXYZ0123!#$%")


# -- what AWS's templates check before every step ------------------------------------------


def test_rotation_must_be_enabled(aws_env, store, mariadb):
    store.create_secret("db/off", _secret(mariadb, "nobody", "x", "d"), version_id=str(uuid.uuid4()))
    with pytest.raises(InvalidRotationSetup, match="not enabled for rotation"):
        lambda_handler({"SecretId": "db/off", "ClientRequestToken": str(uuid.uuid4()), "Step": "createSecret"}, None)


def test_token_must_be_a_version_of_the_secret(single):
    with pytest.raises(InvalidRotationSetup, match="no stage for rotation"):
        lambda_handler(single.event(str(uuid.uuid4()), "createSecret"), None)


def test_a_current_token_is_nothing_to_do_and_other_tokens_are_refused(single):
    token, before = rotate(single)
    labels = single.labels()
    for step in STEPS:  # Secrets Manager calling again after the rotation finished
        lambda_handler(single.event(token, step), None)
    assert single.labels() == labels
    with pytest.raises(RotationConflict, match="not AWSPENDING"):
        lambda_handler(single.event(before, "setSecret"), None)  # AWSPREVIOUS


@pytest.mark.parametrize("event", [
    {"SecretId": "x", "ClientRequestToken": "t"},
    {"SecretId": "x", "ClientRequestToken": "t", "Step": "rotateEverything"},
    ["not", "an", "object"],
])
def test_bad_events_are_refused(event):
    with pytest.raises(InvalidRotationSetup):
        lambda_handler(event, None)


# -- crashes and retries -------------------------------------------------------------------


class Crash(Exception):
    """The Lambda dying at a checkpoint (timeout, out of memory…)."""


def crashing_handler(point: str) -> Callable[[Any, Any], None]:
    fired = []

    def checkpoint(where: str) -> None:
        if where == point and not fired:
            fired.append(where)
            raise Crash(where)

    def factory(event: Any, context: Any) -> Rotator:
        r = rotator_from_environment(event, context)
        return Rotator(r.store, strategy=r.strategy, checkpoint=checkpoint)

    return make_handler(factory)


@pytest.mark.parametrize("kind", ["single", "multi"])
@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_crash_between_steps_then_secrets_manager_retries(kind, stop_after, request):
    setup: Setup = request.getfixturevalue(kind)
    before = setup.holder("AWSCURRENT")
    token = setup.start_rotation()
    for step in STEPS[:stop_after]:
        lambda_handler(setup.event(token, step), None)
    # The function died after that step; consumers still log in with something stored.
    assert setup.logs_in(setup.creds()) or setup.logs_in(setup.creds(version_id=token))
    for step in STEPS:  # Secrets Manager retries the rotation with the same token
        lambda_handler(setup.event(token, step), None)
    setup.assert_rotated(token, before)


@pytest.mark.parametrize("kind", ["single", "multi"])
@pytest.mark.parametrize("point", ["set:mid", "set:done", "test:start", "end:promote", "end:mid"])
def test_crash_inside_a_step_then_retry(kind, point, request):
    setup: Setup = request.getfixturevalue(kind)
    before = setup.holder("AWSCURRENT")
    token = setup.start_rotation()
    handler = crashing_handler(point)
    crashed = False
    for step in STEPS:
        try:
            handler(setup.event(token, step), None)
        except Crash:
            crashed = True
            break
    assert crashed
    for step in STEPS:
        lambda_handler(setup.event(token, step), None)
    setup.assert_rotated(token, before)


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_every_step_retried_after_success(kind, request):
    setup: Setup = request.getfixturevalue(kind)
    before = setup.holder("AWSCURRENT")
    token = setup.start_rotation()
    lambda_handler(setup.event(token, "createSecret"), None)
    stored = setup.store.get_secret(setup.name, version_id=token).data
    for step in STEPS:
        lambda_handler(setup.event(token, step), None)
        lambda_handler(setup.event(token, step), None)
    setup.assert_rotated(token, before)
    assert setup.store.get_secret(setup.name, version_id=token).data == stored  # one password per token



def test_in_process_rotator_on_the_aws_store_alternates_with_the_lambda(multi):
    """The in-process alternative (Rotator / Scheduler) on the same secret, then the Lambda again."""
    from rotation import AlternatingUsersStrategy

    before = multi.holder("AWSCURRENT")
    result = Rotator(multi.store, strategy=AlternatingUsersStrategy(suffix="_clone")).rotate(multi.name)
    multi.assert_rotated(result.version_id, before)
    assert multi.creds().account_name == f"{multi.user}_clone"
    token, before = rotate(multi)
    multi.assert_rotated(token, before)
    assert multi.creds().account_name == multi.user
