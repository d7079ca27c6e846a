"""The one Alibaba Cloud RPC adapter (secretclient.stores._aliyun_rpc) shared by AliyunKmsStore
and the RDS API client: the pinned private SDK call, STS tokens kept out of the SDK's logs."""

from __future__ import annotations

import inspect
import logging
import pathlib

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import RpcRequest

from rotation.errors import RdsApiError
from rotation.strategies.rds import RdsApi, rds_client
from secretclient.errors import StoreUnavailable
from secretclient.stores import _aliyun_rpc
from secretclient.stores.aliyun import AliyunKmsStore
from secretclient.testing.kms_emulator import KmsEmulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOKEN = "STS-TOKEN-0123456789-do-not-log"


def test_private_sdk_call_is_used_in_exactly_one_place():
    users = [
        path.relative_to(ROOT).as_posix()
        for package in ("secretclient", "rotation")
        for path in (ROOT / package).rglob("*.py")
        if "._implementation_of_do_action(" in path.read_text()
    ]
    assert users == ["secretclient/stores/_aliyun_rpc.py"]
    assert (ROOT / users[0]).read_text().count("_implementation_of_do_action(") == 1


def test_pinned_private_sdk_call_keeps_its_shape():
    """What _aliyun_rpc relies on: (request, signer) in, (status, headers, body, exception) out."""
    params = list(inspect.signature(AcsClient._implementation_of_do_action).parameters)
    assert params[:3] == ["self", "request", "signer"]
    with KmsEmulator() as emu:
        emu.backing_store.create_secret("s", "v", version_id="v1")
        client = emu.acs_client()
        request = RpcRequest("Kms", "2016-01-20", "DescribeSecret")
        request.set_method("POST")
        request.set_accept_format("JSON")
        request.add_query_param("SecretName", "s")
        request.set_endpoint(emu.host_port)
        request.set_protocol_type("http")
        status, headers, body, exc = _aliyun_rpc._do_action(client, request, None)
        assert (status, exc) == (200, None) and b'"SecretName": "s"' in body and headers
        request = RpcRequest("Kms", "2016-01-20", "DescribeSecret")
        request.add_query_param("SecretName", "missing")
        request.set_endpoint(emu.host_port)
        request.set_protocol_type("http")
        status, _, _, exc = _aliyun_rpc._do_action(client, request, None)
        assert status == 404 and exc.get_error_code() == "Forbidden.ResourceNotFound"


def test_sts_token_never_reaches_the_sdk_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with KmsEmulator() as emu:
        emu.add_access_key("STS.key", "sts-secret", security_token=TOKEN)
        emu.backing_store.create_secret("s", "value", version_id="v1")
        with emu.store(access_key_id="STS.key", access_key_secret="sts-secret", security_token=TOKEN) as store:
            assert store.get_secret("s").data == "value"
            assert store.describe("s").name == "s"
        with emu.store(access_key_id="STS.key", access_key_secret="sts-secret", security_token="other") as bad:
            with pytest.raises(Exception):  # noqa: B017 - only the logs matter here
                bad.get_secret("s")
    assert "Request received" in caplog.text  # the SDK's DEBUG line was written
    dead = AliyunKmsStore(region="cn-hangzhou", endpoint="http://127.0.0.1:9", access_key_id="STS.key",
                          access_key_secret="sts-secret", security_token=TOKEN, proxy=False)
    with pytest.raises(StoreUnavailable):  # the SDK logs the URL of a refused connection
        dead.get_secret("s")
    assert TOKEN not in caplog.text
    assert "HttpError occurred" in caplog.text


def test_rds_client_keeps_the_sts_token_out_of_the_sdk_logs(caplog):
    caplog.set_level(logging.DEBUG)
    client = rds_client("cn-hangzhou", endpoint="http://127.0.0.1:9", access_key_id="STS.key",
                        access_key_secret="sts-secret", security_token=TOKEN)
    with pytest.raises(RdsApiError) as err:
        RdsApi(client, "rm-1").describe("app")
    assert err.value.code == "SDK.HttpError" and err.value.__context__ is None
    assert "Request received" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(err.value)
