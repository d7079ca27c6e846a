"""rotation.aws_lambda driven exactly as Secrets Manager drives a rotation function.

Secrets Manager is moto's server over HTTP; the database a throwaway MariaDB. A rotation
starts with ``RotateSecret`` (moto, unable to invoke a Lambda, leaves the token's AWSPENDING
version without a value, as AWS does before calling the function), then the handler is
invoked four times with that ClientRequestToken: createSecret, setSecret, testSecret,
finishSecret.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aws_support import STEPS, Setup, _secret, aws_env, multi, rotate, single, store  # noqa: F401 - fixtures

from rotation.aws_lambda import lambda_handler, make_handler, rotator_from_environment
from rotation.engine import Rotator
from rotation.errors import InvalidRotationSetup, RotationConflict

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


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_rotate_secret_without_immediate_rotation_only_tests_the_configuration(kind, request):
    """RotateSecret(RotateImmediately=False): Secrets Manager labels a copy of AWSCURRENT
    AWSPENDING and invokes testSecret alone; nothing may change in the database."""
    from botocore.exceptions import ClientError

    setup: Setup = request.getfixturevalue(kind)
    creds = setup.creds()
    token = str(uuid.uuid4())
    try:
        setup.moto.client().rotate_secret(SecretId=setup.name, ClientRequestToken=token, RotateImmediately=False,
                                          RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:rotate")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
    assert setup.store.get_secret(setup.name, version_id=token).data == setup.store.get_secret(setup.name).data
    lambda_handler(setup.event(token, "testSecret"), None)
    assert setup.creds() == creds and setup.logs_in(creds)
    token2, before = rotate(setup)  # the next scheduled rotation runs as usual
    setup.assert_rotated(token2, before)


def test_rotation_cli_with_store_aws(single, aws_env):
    """`rotation --store aws` reads and rotates Secrets Manager secrets (credentials from AWS_*)."""
    from click.testing import CliRunner

    from rotation.cli import main

    args = ["--store", "aws", "--endpoint", aws_env.endpoint_url, "--strategy", "single"]
    res = CliRunner().invoke(main, [*args, "status", single.name])
    assert res.exit_code == 0, res.output
    assert "AWSCURRENT" in res.output
    before = single.holder("AWSCURRENT")
    res = CliRunner().invoke(main, [*args, "rotate", single.name])
    assert res.exit_code == 0, res.output
    after = single.holder("AWSCURRENT")
    assert after != before and single.labels()[before] == {"AWSPREVIOUS"} and single.logs_in(single.creds())


def test_the_engine_fills_the_value_less_pending_version_rotate_secret_makes(single):
    """RotateSecret leaves the token's AWSPENDING without a value: the engine's step new fills it
    (what createSecret runs) and keeps it on a retry; rotate() fills it too instead of failing."""
    from rotation import SingleUserStrategy

    rotator = Rotator(single.store, strategy=SingleUserStrategy())
    token = single.start_rotation()
    assert rotator.step(single.name, "new") == token
    stored = single.store.get_secret(single.name, version_id=token)
    assert stored.db_credentials().account_name == single.user and "username" in json.loads(stored.data)
    assert rotator.step(single.name, "new", token) == token
    assert single.store.get_secret(single.name, version_id=token).data == stored.data  # kept, not replaced
    rotator.abort(single.name)
    before = single.holder("AWSCURRENT")
    token = single.start_rotation()
    result = rotator.rotate(single.name)
    assert (result.version_id, result.resumed) == (token, False)
    single.assert_rotated(token, before)


def test_the_lambda_grace_defaults_to_one_hour(multi, monkeypatch):
    """Without ROTATION_GRACE_SECONDS, a second alternating rotation right after the first refuses
    to reset the AWSPREVIOUS account (consumers may cache it for AWS's default hour): nothing changes."""
    from rotation.errors import RotationTooSoon

    monkeypatch.delenv("ROTATION_GRACE_SECONDS")
    token, before = rotate(multi)
    multi.assert_rotated(token, before)
    previous = multi.creds(stage="AWSPREVIOUS")
    second = multi.start_rotation()
    with pytest.raises(RotationTooSoon, match="3600 s"):
        lambda_handler(multi.event(second, "createSecret"), None)
    assert multi.holder("AWSCURRENT") == token and multi.logs_in(previous)


class LambdaContext:
    """What AWS Lambda hands a handler, as far as time goes (plain data, not an SDK)."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_store_retries_end_before_the_lambda_times_out(single):
    """The Rotator the handler builds retries store calls only until the invocation's remaining
    time less the margin (a 60 s retry in a 30 s function would be killed mid-wait); without a
    context it keeps the default. A rotation with a context runs as before."""
    import time

    from rotation.store_retry import INVOCATION_MARGIN

    event = {"SecretId": single.name, "ClientRequestToken": uuid.uuid4().hex, "Step": "createSecret"}
    start = time.monotonic()
    bounded = rotator_from_environment(event, LambdaContext(30_000))
    end = time.monotonic()
    assert start + 30 - INVOCATION_MARGIN <= bounded.store_retry.deadline <= end + 30 - INVOCATION_MARGIN
    assert rotator_from_environment(event, None).store_retry.deadline is None
    before = single.holder("AWSCURRENT")
    token = single.start_rotation()
    for step in STEPS:
        lambda_handler(single.event(token, step), LambdaContext(300_000))
    single.assert_rotated(token, before)
