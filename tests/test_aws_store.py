"""AwsSecretsManagerStore beyond the shared contract: AWS's own rules, errors, logs, options.

Secrets Manager is moto's server over HTTP (``moto_server`` fixture). Error codes moto cannot
be made to send come from a small local HTTP server answering with Secrets Manager's JSON
error shape, so that botocore parses a real response.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from secretclient.errors import (
    AccessDenied,
    InvalidParameter,
    LimitExceeded,
    SecretNotFound,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    Throttled,
    VersionConflict,
)
from secretclient.model import AWS_STAGES, PasswordPolicy, Stage
from secretclient.stores.aws import AwsSecretsManagerStore
from secretclient.testing.aws import MotoServer, enable_rotation


def vid() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def store(moto_server: MotoServer) -> Iterator[AwsSecretsManagerStore]:
    with moto_server.store() as s:
        yield s


def labels(store: AwsSecretsManagerStore, name: str) -> dict[str, frozenset[str]]:
    return {v.version_id: v.stages for v in store.list_versions(name, include_deprecated=True)}


def test_labels_are_aws_and_roles_are_accepted(store):
    v1, v2 = vid(), vid()
    store.create_secret("app", "one", version_id=v1)
    store.put_secret("app", v2, "two", stages=[Stage.PENDING])
    assert labels(store, "app") == {v1: {"AWSCURRENT"}, v2: {"AWSPENDING"}}
    assert store.get_secret("app", stage="AWSPENDING").data == "two"
    store.update_stage("app", "AWSCURRENT", move_to=v2, remove_from=v1)
    # As on AWS, AWSPENDING stays where it was until removed.
    assert labels(store, "app") == {v2: {"AWSCURRENT", "AWSPENDING"}, v1: {"AWSPREVIOUS"}}
    store.update_stage("app", Stage.PENDING, remove_from=v2)
    assert labels(store, "app") == {v2: {"AWSCURRENT"}, v1: {"AWSPREVIOUS"}}
    assert store.stage_labels is AWS_STAGES


def test_short_version_ids_are_refused_and_change_nothing(store):
    v1 = vid()
    store.create_secret("app", "one", version_id=v1)
    for bad in ("v2", "x" * 65, 42):
        with pytest.raises(InvalidParameter, match="32 to 64"):
            store.put_secret("app", bad, "two")
    with pytest.raises(InvalidParameter):
        store.create_secret("other", "x", version_id="short")
    assert labels(store, "app") == {v1: {"AWSCURRENT"}}


def test_reused_token_with_other_data_conflicts(store):
    v1, v2 = vid(), vid()
    store.create_secret("app", "one", version_id=v1)
    store.put_secret("app", v2, "two")
    assert store.put_secret("app", v2, "two").version_id == v2  # same data: idempotent
    with pytest.raises(VersionConflict) as err:
        store.put_secret("app", v2, "sekrit-other-data")
    assert err.value.code == "ResourceExistsException"
    assert "sekrit" not in str(err.value) and "sekrit" not in repr(err.value)
    assert store.get_secret("app").data == "two"


def test_names_and_arns(store):
    v1, v2 = vid(), vid()
    info = store.create_secret("prod/db", "one", version_id=v1)
    assert info.arn and ":secret:prod/db-" in info.arn
    assert store.get_secret(info.arn).data == "one"
    store.put_secret(info.arn, v2, "two", stages=[Stage.PENDING])
    store.update_stage(info.arn, Stage.CURRENT, move_to=v2, remove_from=v1)
    got = store.get_secret("prod/db")
    assert (got.name, got.version_id, got.data) == ("prod/db", v2, "two")
    assert store.describe(info.arn).name == "prod/db"


def test_stage_move_without_remove_from_takes_it_from_its_holder(store):
    v1, v2, v3 = vid(), vid(), vid()
    store.create_secret("app", "one", version_id=v1)
    store.put_secret("app", v2, "two", stages=["Blue"])
    store.put_secret("app", v3, "three", stages=["Red"])
    store.update_stage("app", "Red", remove_from=v3)
    # AWS itself needs RemoveFromVersionId here; the store looks the holder up.
    store.update_stage("app", "Blue", move_to=v3)
    assert labels(store, "app") == {v1: {"AWSCURRENT"}, v2: frozenset(), v3: {"Blue"}}
    store.update_stage("app", Stage.CURRENT, move_to=v3)
    assert labels(store, "app") == {v1: {"AWSPREVIOUS"}, v2: frozenset(), v3: {"Blue", "AWSCURRENT"}}


def test_compare_and_set_refuses_a_stale_remove_from(store):
    v1, v2, v3 = vid(), vid(), vid()
    store.create_secret("app", "one", version_id=v1)
    store.put_secret("app", v2, "two", stages=[Stage.PENDING])
    store.put_secret("app", v3, "three", stages=["Red"])
    before = labels(store, "app")
    with pytest.raises(VersionConflict):
        store.update_stage("app", Stage.CURRENT, move_to=v3, remove_from=v2)
    with pytest.raises(VersionConflict):
        store.update_stage("app", Stage.PENDING, remove_from=v3)
    with pytest.raises(InvalidParameter):
        store.update_stage("app", Stage.PREVIOUS, remove_from=v1)
    with pytest.raises(SecretNotFound):
        store.update_stage("app", Stage.CURRENT, move_to=vid())
    assert labels(store, "app") == before


def test_deprecated_versions_listed_only_on_request(store):
    v1, v2, v3 = vid(), vid(), vid()
    store.create_secret("app", "one", version_id=v1)
    store.put_secret("app", v2, "two")
    store.put_secret("app", v3, "three", stages=[Stage.PENDING])
    v4 = vid()
    with pytest.raises(InvalidParameter, match="at least one stage"):
        store.put_secret("app", v4, "four", stages=[])
    store.put_secret("app", v4, "four", stages=["Red"])
    store.update_stage("app", "Red", remove_from=v4)
    assert {v.version_id for v in store.list_versions("app")} == {v1, v2, v3}
    assert len(store.list_versions("app", include_deprecated=True)) == 4


def test_describe_rotation_fields(moto_server, store):
    store.create_secret("rot", "x", version_id=vid(), description="weekly")
    assert store.describe("rot").automatic_rotation is False
    enable_rotation(moto_server.client(), "rot", days=7)
    info = store.describe("rot")
    assert info.automatic_rotation is True and info.description == "weekly"
    assert info.rotation_interval is not None and info.rotation_interval.days == 7
    assert info.next_rotation is not None and info.created is not None and info.next_rotation > info.created


def test_create_refuses_what_aws_has_not(store):
    from datetime import timedelta

    with pytest.raises(InvalidParameter, match="rotation_lambda_arn"):
        store.create_secret("a", "x", version_id=vid(), rotation_interval=timedelta(days=7))
    with pytest.raises(InvalidParameter, match="ExtendedConfig"):
        store.create_secret("a", "x", version_id=vid(), extended_config={"k": "v"})
    with pytest.raises(InvalidParameter, match="secret types"):
        store.create_secret("a", "x", version_id=vid(), secret_type="Rds")
    with pytest.raises(SecretNotFound):
        store.describe("a")


def test_random_password_from_aws(store):
    policy = PasswordPolicy(length=20, exclude_characters="/@\"'\\", exclude_punctuation=False)
    pw = store.random_password(policy)
    assert policy.accepts(pw)


def test_delete_with_recovery_window_reads_as_not_found_until_restored(store):
    v1 = vid()
    store.create_secret("app", "one", version_id=v1)
    with pytest.raises(InvalidParameter):
        store.delete_secret("app", recovery_window_days=3)
    store.delete_secret("app", recovery_window_days=7)
    with pytest.raises(SecretNotFound) as err:
        store.get_secret("app")
    assert err.value.code == "InvalidRequestException" and "RestoreSecret" in str(err.value)
    with pytest.raises(SecretNotFound):
        store.describe("app")
    store.restore_secret("app")
    assert store.get_secret("app").data == "one"
    store.delete_secret("app")  # 30 days, as AWS
    with pytest.raises(SecretNotFound):
        store.describe("app")
    store.restore_secret("app")
    store.delete_secret("app", force=True)
    with pytest.raises(SecretNotFound):
        store.delete_secret("app", force=True)


def test_list_secrets_reads_every_page(moto_server, store):
    client = moto_server.client()
    names = [f"app/{i:03d}" for i in range(101)]  # ListSecrets answers 100 per page
    for name in reversed(names):
        client.create_secret(Name=name, SecretString="listed-Value-42")
    client.delete_secret(SecretId="app/050", RecoveryWindowInDays=7)
    listed = store.list_secrets()
    assert [info.name for info in listed] == names
    assert [info.name for info in listed if info.planned_deletion is not None] == ["app/050"]
    assert all(info.arn and info.arn.startswith("arn:aws:secretsmanager:") for info in listed)


def test_botocore_debug_logs_hold_no_secret_values(store, caplog):
    secret = "pw-" + uuid.uuid4().hex
    binary = b"bin-" + uuid.uuid4().hex.encode()
    with caplog.at_level(logging.DEBUG, logger="botocore"):
        store.create_secret("app", json.dumps({"password": secret}), version_id=vid())
        store.put_secret("app", vid(), json.dumps({"password": secret + "2"}), stages=[Stage.PENDING])
        assert secret in store.get_secret("app").data
        store.get_secret("app", stage=Stage.PENDING)
        store.create_secret("bin", binary, version_id=vid())
        assert store.get_secret("bin").data == binary
        password = store.random_password()
    text = caplog.text
    assert "Making request for" in text and "Response body" in text  # botocore did log at DEBUG
    assert "redacted by secretclient" in text
    for value in (secret, binary.decode(), password):
        assert value not in text
    assert "VersionIdsToStages" in text  # a call without secret data keeps its body in the log


def test_repr_and_options(moto_server, store):
    assert "AwsSecretsManagerStore(region='us-east-1'" in repr(store) and "testing" not in repr(store)
    client = moto_server.client()
    s = AwsSecretsManagerStore(client)
    s.create_secret("x", "one", version_id=vid())
    assert s.get_secret("x").data == "one"
    s.close()
    assert client.describe_secret(SecretId="x")["Name"] == "x"  # a client passed in stays open
    with pytest.raises(InvalidParameter):
        AwsSecretsManagerStore(client, region="us-east-1")
    with pytest.raises(InvalidParameter, match="secretsmanager"):
        AwsSecretsManagerStore(object())
    with pytest.raises(InvalidParameter, match="read_timeout"):
        moto_server.store(read_timeout=0)
    with pytest.raises(InvalidParameter, match="together"):
        AwsSecretsManagerStore(region="us-east-1", access_key_id="AKIA")


# -- errors from a server that answers what we tell it -------------------------------------


class _ErrorServer:
    """HTTP on 127.0.0.1 answering every request with one Secrets Manager JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps({"__type": code, "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-RequestId", "req-123")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (400, "ThrottlingException", Throttled),
        (400, "Throttling", Throttled),
        (500, "InternalServiceError", StoreUnavailable),
        (400, "DecryptionFailure", AccessDenied),
        (400, "AccessDeniedException", AccessDenied),
        (400, "UnrecognizedClientException", AccessDenied),
        (400, "LimitExceededException", LimitExceeded),
        (400, "InvalidRequestException", InvalidParameter),
        (400, "InvalidParameterException", InvalidParameter),
        (400, "ResourceNotFoundException", SecretNotFound),
        (400, "ResourceExistsException", VersionConflict),
        (503, "SomethingNew", StoreUnavailable),
        (400, "SomethingNew", StoreError),
    ],
)
def test_every_error_is_mapped_after_one_attempt(status, code, expected):
    server = _ErrorServer(status, code, "You can't do that to version abc")
    try:
        store = AwsSecretsManagerStore(region="us-east-1", endpoint_url=server.url,
                                       access_key_id="k", secret_access_key="s")
        with pytest.raises(expected) as err:
            store.get_secret("app")
        assert type(err.value) is expected
        assert err.value.code == code and err.value.request_id == "req-123" and err.value.http_status == status
        assert server.requests == 1  # botocore's retries are off
        assert err.value.__cause__ is None and err.value.__context__ is None
        with pytest.raises(expected) as err:
            store.list_secrets()
        assert type(err.value) is expected and "ListSecrets" in str(err.value)
        # Server text is never copied for calls that carry secret data.
        with pytest.raises(expected) as err:
            store.put_secret("app", vid(), "sekrit")
        assert "abc" not in str(err.value)
        store.close()
    finally:
        server.close()


def test_unreachable_and_silent_endpoints():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    refused = AwsSecretsManagerStore(region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                                     access_key_id="k", secret_access_key="s", connect_timeout=1)
    with pytest.raises(StoreUnavailable) as err:
        refused.get_secret("app")
    assert err.value.retryable
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections, never answers
        store = AwsSecretsManagerStore(region="us-east-1", endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
                                       access_key_id="k", secret_access_key="s", read_timeout=0.3)
        with pytest.raises(StoreTimeout):
            store.get_secret("app")


def test_missing_region_is_a_clear_error(monkeypatch):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(InvalidParameter, match="region"):
        AwsSecretsManagerStore(access_key_id="k", secret_access_key="s")


def test_open_store_aws_and_the_cli(moto_server):
    from click.testing import CliRunner

    from secretclient import open_store
    from secretclient.cli import main

    with open_store("aws", region="us-east-1", endpoint=moto_server.endpoint_url,
                    access_key_id="testing", access_key_secret="testing") as store:
        assert isinstance(store, AwsSecretsManagerStore)
        store.create_secret("shop/app", '{"password": "cli-Secret-42"}', version_id=vid())
    args = ["--store", "aws", "--region", "us-east-1", "--endpoint", moto_server.endpoint_url,
            "--access-key-id", "testing", "--access-key-secret", "testing"]
    res = CliRunner().invoke(main, [*args, "get", "shop/app"])
    assert res.exit_code == 0, res.output
    assert "AWSCURRENT" in res.output and "cli-Secret-42" not in res.output
    res = CliRunner().invoke(main, [*args, "put", "shop/app", "--stage", "AWSPENDING"], input="next")
    assert res.exit_code == 0 and "AWSPENDING" in res.output, res.output
    res = CliRunner().invoke(main, [*args, "get", "shop/app", "--version-id", "short"])
    assert res.exit_code == 1 and "SecretNotFound" in res.output
    assert CliRunner().invoke(main, [*args, "create", "shop/token"], input="t").exit_code == 0
    res = CliRunner().invoke(main, [*args, "list"])
    assert res.exit_code == 0, res.output
    assert [line.split()[0] for line in res.output.splitlines()] == ["shop/app", "shop/token"]
    assert "cli-Secret-42" not in res.output
    res = CliRunner().invoke(main, [*args, "delete", "shop/app", "--yes", "--recovery-window-days", "7"])
    assert res.exit_code == 0, res.output
    assert "deletion planned" in CliRunner().invoke(main, [*args, "list"]).output.splitlines()[0]
    assert CliRunner().invoke(main, [*args, "restore", "shop/app"]).exit_code == 0
    assert "deletion planned" not in CliRunner().invoke(main, [*args, "list"]).output
