"""The KMS emulator through the real aliyun SDK (and raw HTTP where the SDK hides the wire),
plus AliyunKmsStore's options and error mapping."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkkms.request.v20160120.GetSecretValueRequest import GetSecretValueRequest
from aliyunsdkkms.request.v20160120.PutSecretValueRequest import PutSecretValueRequest
from server_support import post_json

from secretclient import SecretClient
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
from secretclient.stores.aliyun import AliyunKmsStore, _proxies, map_sdk_error
from secretclient.testing import ManualClock, ManualExecutor
from secretclient.testing.kms_emulator import Faults, KmsEmulator, sign, string_to_sign

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_value(client: AcsClient, name: str, **kw: str) -> dict:
    req = GetSecretValueRequest()
    req.set_SecretName(name)
    for key, value in kw.items():
        getattr(req, f"set_{key}")(value)
    return json.loads(client.do_action_with_exception(req))


def raw_call(emu: KmsEmulator, params: dict[str, str], secret: str | None = None, nonce: str | None = None):
    """A hand-signed POST, to see the status and body exactly as sent."""
    full = {
        "Version": "2016-01-20",
        "Format": "JSON",
        "RegionId": emu.region,
        "AccessKeyId": emu.access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **params,
    }
    full["Signature"] = sign("POST", full, secret or emu.access_key_secret)
    return post_json(f"{emu.endpoint}/?{urlencode(full)}")


@pytest.fixture
def emu():
    with KmsEmulator(seed=7) as e:
        e.backing_store.create_secret("app", "s3cret-value", version_id="v1")
        yield e


# -- signatures -----------------------------------------------------------------------------


def test_good_signature_with_the_raw_sdk(emu):
    resp = get_value(emu.acs_client(), "app")
    assert resp["SecretData"] == "s3cret-value"
    assert set(resp) >= {
        "SecretName", "VersionId", "CreateTime", "SecretData", "SecretDataType",
        "VersionStages", "SecretType", "RequestId",
    }
    assert "AutomaticRotation" not in resp  # KMS reports rotation for managed secret types only
    assert resp["VersionStages"] == {"VersionStage": ["ACSCurrent"]}
    assert resp["SecretDataType"] == "text"


def test_bad_secret_answers_signature_does_not_match(emu):
    status, body = raw_call(emu, {"Action": "GetSecretValue", "SecretName": "app"}, secret="wrong")
    assert status == 400
    assert body["Code"] == "SignatureDoesNotMatch"
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    # The SDK compares the text after ':' with its own string to sign.
    assert body["Message"].split(":", 1)[1].startswith("POST&%2F&")
    # Through the SDK, a matching string to sign is reported as a wrong AccessKey secret.
    with pytest.raises(ServerException) as err:
        get_value(emu.acs_client(secret="wrong"), "app")
    assert err.value.get_http_status() == 400
    assert err.value.get_error_code() == "InvalidAccessKeySecret"


def test_unknown_access_key(emu):
    with pytest.raises(ServerException) as err:
        get_value(emu.acs_client(ak="LTAIunknown"), "app")
    assert (err.value.get_error_code(), err.value.get_http_status()) == ("InvalidAccessKeyId.NotFound", 404)
    assert err.value.get_request_id()


def test_sts_token_is_checked(emu):
    emu.add_access_key("STS.key", "sts-secret", security_token="token-1")
    ok = AcsClient(region_id=emu.region, credential=StsTokenCredential("STS.key", "sts-secret", "token-1"), proxy={"all": None})
    ok.add_endpoint(emu.region, "kms", emu.endpoint)
    assert get_value(ok, "app")["VersionId"] == "v1"
    for credential, code in (
        (StsTokenCredential("STS.key", "sts-secret", "token-2"), "InvalidSecurityToken.Mismatch"),
        (AccessKeyCredential("STS.key", "sts-secret"), "InvalidSecurityToken.Malformed"),
    ):
        bad = AcsClient(region_id=emu.region, credential=credential, proxy={"all": None})
        bad.add_endpoint(emu.region, "kms", emu.endpoint)
        with pytest.raises(ServerException) as err:
            get_value(bad, "app")
        assert err.value.get_error_code() == code
    with emu.store(access_key_id="STS.key", access_key_secret="sts-secret", security_token="token-1") as store:
        assert store.get_secret("app").data == "s3cret-value"


def test_replayed_nonce_and_stale_timestamp_are_refused(emu):
    params = {"Action": "GetSecretValue", "SecretName": "app"}
    assert raw_call(emu, params, nonce="n-1")[0] == 200
    status, body = raw_call(emu, params, nonce="n-1")
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    with KmsEmulator(clock=lambda: time.time() + 3600) as late:
        with pytest.raises(ServerException) as err:
            get_value(late.acs_client(), "app")
        assert (err.value.get_error_code(), err.value.get_http_status()) == ("IllegalTimestamp", 400)


# -- error shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, status, code",
    [
        ({"Action": "GetSecretValue", "SecretName": "nope"}, 404, "Forbidden.ResourceNotFound"),
        ({"Action": "GetSecretValue"}, 400, "MissingParameter"),
        ({"Action": "GetSecretValue", "SecretName": "app", "VersionId": "v1", "VersionStage": "ACSPending"}, 404, "Forbidden.ResourceNotFound"),
        ({"Action": "PutSecretValue", "SecretName": "app", "VersionId": "v1", "SecretData": "other"}, 409, "Rejected.ResourceExist"),
        ({"Action": "CreateSecret", "SecretName": "app", "VersionId": "v9", "SecretData": "x"}, 409, "Rejected.ResourceExist"),
        ({"Action": "UpdateSecretVersionStage", "SecretName": "app", "VersionStage": "ACSCurrent", "RemoveFromVersion": "v1"}, 400, "InvalidParameter"),
        ({"Action": "GetRandomPassword", "PasswordLength": "4"}, 400, "InvalidParameter"),
        ({"Action": "PutSecretValue", "SecretName": "app", "VersionId": "b", "SecretData": "%%%", "SecretDataType": "binary"}, 400, "InvalidParameter"),
        ({"Action": "NoSuchAction"}, 404, "InvalidAction.NotFound"),
    ],
)
def test_error_codes_and_statuses(emu, params, status, code):
    got_status, body = raw_call(emu, params)
    assert (got_status, body["Code"]) == (status, code)
    assert body["RequestId"] and body["HostId"] == "127.0.0.1" and body["Message"]
    assert code in body["Recommend"]
    assert "other" not in body["Message"]


def test_version_cap_and_list_pages(emu):
    store = emu.store()
    for i in range(2, 14):
        store.put_secret("app", f"v{i}", f"d{i}")
    status, body = raw_call(emu, {"Action": "ListSecretVersionIds", "SecretName": "app", "IncludeDeprecated": "true", "PageSize": "4", "PageNumber": "3"})
    assert status == 200 and body["TotalCount"] == 10 and len(body["VersionIds"]["VersionId"]) == 2
    assert len(store.list_versions("app", include_deprecated=True)) == 10


def test_seed_style_version_stages_parameter(emu):
    client = emu.acs_client()
    req = PutSecretValueRequest()
    req.set_SecretName("app")
    req.set_VersionId("v2")
    req.set_SecretData("pending-value")
    req.set_VersionStages(json.dumps(["ACSPending"]))  # exactly as the Alibaba seed sends it
    resp = json.loads(client.do_action_with_exception(req))
    assert resp["VersionStages"] == {"VersionStage": ["ACSPending"]}
    assert get_value(client, "app", VersionStage="ACSPending")["VersionId"] == "v2"


def test_binary_secret_through_the_raw_sdk(emu):
    payload = bytes(range(200, 256)) + b"\x00"
    client = emu.acs_client()
    req = PutSecretValueRequest()
    req.set_SecretName("app")
    req.set_VersionId("bin")
    req.set_SecretData(base64.b64encode(payload).decode())
    req.set_SecretDataType("binary")
    client.do_action_with_exception(req)
    resp = get_value(client, "app")
    assert resp["SecretDataType"] == "binary"
    assert base64.b64decode(resp["SecretData"]) == payload
    assert emu.store().get_secret("app").data == payload


# -- fault injection ----------------------------------------------------------------------------


def test_call_counters(emu):
    store = emu.store()
    emu.faults.reset_calls()
    for _ in range(3):
        store.get_secret("app")
    store.describe("app")
    assert emu.calls["GetSecretValue"] == 3 and emu.calls["DescribeSecret"] == 1
    assert emu.calls["PutSecretValue"] == 0


def test_latency(emu):
    store = emu.store()
    emu.faults.set_latency(0.3, actions={"DescribeSecret"})
    start = time.monotonic()
    store.describe("app")
    assert time.monotonic() - start >= 0.3
    with emu.store(read_timeout=0.1) as impatient:
        with pytest.raises(StoreTimeout) as err:
            impatient.describe("app")
    assert err.value.retryable and err.value.code == "SDK.HttpError"
    emu.faults.clear()


def test_error_rate_is_seeded_and_coded(emu):
    store = emu.store()
    emu.faults.set_error_rate(1.0, code="Rejected.Throttling")
    with pytest.raises(Throttled) as err:
        store.get_secret("app")
    assert (err.value.code, err.value.http_status) == ("Rejected.Throttling", 429)

    def failures(seed: int) -> list[int]:
        emu.faults.set_error_rate(0.5, code="InternalFailure", seed=seed)
        out = []
        for i in range(20):
            try:
                store.get_secret("app")
            except StoreUnavailable as exc:
                assert exc.code == "InternalFailure" and exc.http_status == 500
                out.append(i)
        return out

    first = failures(42)
    assert 0 < len(first) < 20
    assert failures(42) == first
    emu.faults.clear()
    assert store.get_secret("app").version_id == "v1"


def test_outage_windows(emu):
    store = emu.store()
    with emu.faults.outage():
        with pytest.raises(StoreUnavailable) as err:
            store.get_secret("app")
        assert (err.value.code, err.value.http_status) == ("ServiceUnavailableTemporary", 503)
    with emu.faults.outage("drop"):
        with pytest.raises(StoreUnavailable) as err:
            store.get_secret("app")
        assert err.value.code == "SDK.HttpError"
    assert store.get_secret("app").version_id == "v1"


def test_throttling_per_second():
    now = [1000.0]
    faults = Faults(clock=lambda: now[0])
    with KmsEmulator(faults=faults) as emu:
        emu.backing_store.create_secret("app", "x", version_id="v1")
        store = emu.store()
        faults.throttle(2)
        store.get_secret("app")
        store.get_secret("app")
        with pytest.raises(Throttled):
            store.get_secret("app")
        now[0] += 1.0
        store.get_secret("app")
        faults.throttle(None)
        for _ in range(5):
            store.get_secret("app")


# -- HTTPS, proxies, CLI --------------------------------------------------------------------------


def test_https_needs_the_ca():
    with KmsEmulator(https=True) as emu:
        emu.backing_store.create_secret("app", "x", version_id="v1")
        assert emu.endpoint.startswith("https://") and emu.ca_file.exists()
        assert emu.store().get_secret("app").data == "x"
        with emu.store(verify=True) as untrusted:
            with pytest.raises(StoreUnavailable):
                untrusted.get_secret("app")


def test_env_proxies_do_not_capture_loopback(emu, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert emu.store().get_secret("app").version_id == "v1"
    assert get_value(emu.acs_client(), "app")["VersionId"] == "v1"
    assert _proxies("https", "kms.cn-hangzhou.aliyuncs.com", True) == {"https": "http://127.0.0.1:9"}
    monkeypatch.setenv("NO_PROXY", ".aliyuncs.com")
    assert _proxies("https", "kms.cn-hangzhou.aliyuncs.com", True) == {"all": None}
    assert _proxies("https", "kms.cn-hangzhou.aliyuncs.com", "http://p:1") == {"http": "http://p:1", "https": "http://p:1"}
    assert _proxies("https", "kms.cn-hangzhou.aliyuncs.com", False) == {"all": None}


def test_proxy_mode_serves_kms_host_names(emu, monkeypatch):
    """Unmodified code that targets kms-vpc.<region>.aliyuncs.com over HTTPS reaches the emulator."""
    monkeypatch.setenv("HTTPS_PROXY", emu.proxy_url)
    monkeypatch.setenv("ALIBABA_CLOUD_CA_BUNDLE", str(emu.ca_file))
    client = AcsClient(region_id=emu.region, credential=AccessKeyCredential(emu.access_key_id, emu.access_key_secret))
    client.add_endpoint(emu.region, "kms", f"kms-vpc.{emu.region}.aliyuncs.com")
    assert get_value(client, "app")["SecretData"] == "s3cret-value"


def test_cli_starts_serves_and_stops(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    db = tmp_path / "kms.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretclient.testing.kms_emulator", "--port", "0", "--https",
         "--db", str(db), "--access-key", "AKCLI:cli-secret"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(4)]
        endpoint = lines[0].split(" on ")[1].split()[0]
        ca = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("CA file"))
        assert endpoint.startswith("https://127.0.0.1:")
        assert "cli-secret" not in "".join(lines)
        with AliyunKmsStore(region="cn-hangzhou", endpoint=endpoint, verify=ca,
                            access_key_id="AKCLI", access_key_secret="cli-secret") as store:
            store.create_secret("cli", "value", version_id="v1")
            assert store.get_secret("cli").data == "value"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    from secretclient.stores.embedded import EmbeddedStore

    with EmbeddedStore(db) as persisted:
        assert persisted.get_secret("cli").data == "value"


def test_cli_fault_injection_options(tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cli = [sys.executable, "-m", "secretclient.testing.kms_emulator", "--port", "0", "--access-key", "AKCLI:cli-secret"]
    bad = subprocess.run([*cli, "--error-rate", "2"], capture_output=True, text=True, env=env, timeout=30, check=False)
    assert bad.returncode == 2 and "error rate must be between 0 and 1" in bad.stderr
    proc = subprocess.Popen([*cli, "--error-rate", "1", "--error-code", "Rejected.Throttling"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        endpoint = proc.stdout.readline().split(" on ")[1].split()[0]
        with AliyunKmsStore(region="cn-hangzhou", endpoint=endpoint, access_key_id="AKCLI",
                            access_key_secret="cli-secret", proxy=False) as store, pytest.raises(Throttled) as err:
            store.get_secret("anything")
        assert err.value.code == "Rejected.Throttling" and err.value.http_status == 429
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- AliyunKmsStore specifics -----------------------------------------------------------------------


SECRET = "TOP-SECRET-DATA"


def _everything_said_about(exc: BaseException) -> str:
    """str and repr of the error and of every exception chained to it, and its traceback."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        parts += [str(err), repr(err), repr(vars(err))]
        stack += [err.__cause__, err.__context__]
    return "\n".join(parts)


def _outage(emu):
    emu.faults.start_outage()


def _drop(emu):
    emu.faults.start_outage("drop")


def _error_rate(emu):
    emu.faults.set_error_rate(1.0, code="InternalFailure")


def _throttle(emu):
    emu.faults.set_error_rate(1.0, code="Rejected.Throttling")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [(_outage, StoreUnavailable), (_drop, StoreUnavailable), (_error_rate, StoreUnavailable), (_throttle, Throttled)],
)
@pytest.mark.parametrize("action", ["put", "create"])
def test_secret_data_never_leaks_from_failed_writes(emu, caplog, fault, expected, action):
    caplog.set_level(logging.DEBUG)
    store = emu.store()
    fault(emu)
    with pytest.raises(expected) as err:
        if action == "put":
            store.put_secret("app", "v2", SECRET)
        else:
            store.create_secret("new", SECRET, version_id="v1")
    told = _everything_said_about(err.value)
    assert SECRET not in told and emu.access_key_secret not in told
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert SECRET not in caplog.text


def test_secret_data_never_leaks_from_refused_writes(emu, caplog):
    caplog.set_level(logging.DEBUG)
    emu.store().put_secret("app", "v3", SECRET)
    errors = []
    with emu.store(access_key_secret="wrong") as bad, pytest.raises(AccessDenied) as err:  # bad signature
        bad.put_secret("app", "v4", SECRET)
    errors.append(err.value)
    with pytest.raises(VersionConflict) as err:  # same VersionId, other data
        emu.store().put_secret("app", "v3", SECRET + "-other")
    errors.append(err.value)
    dead = AliyunKmsStore(region="cn-hangzhou", endpoint="http://127.0.0.1:9",
                          access_key_id="a", access_key_secret="b", proxy=False)
    with pytest.raises(StoreUnavailable) as err:  # nothing listens: the SDK's error quotes the URL
        dead.put_secret("app", "v2", SECRET)
    errors.append(err.value)
    for error in errors:
        assert SECRET not in _everything_said_about(error)
    assert SECRET not in caplog.text
    assert "TOP-SECRET" not in repr(emu.store().get_secret("app"))


def test_secret_client_over_a_failing_kms_says_nothing_of_the_value(emu, caplog):
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    emu.store().put_secret("app", "v2", SECRET)
    with SecretClient(emu.store(), ttl=60, max_stale=60, clock=clock, executor=ManualExecutor(),
                      observer=(events := _Recorder())) as client:
        assert client.get_text("app") == SECRET
        emu.faults.start_outage()
        clock.advance(61)
        assert client.get_text("app") == SECRET  # stale, within max_stale
        clock.advance(3600)
        with pytest.raises(StoreUnavailable) as err:
            client.get("app")
        told = _everything_said_about(err.value) + repr(client) + repr(client.stats()) + repr(events.seen)
    assert SECRET not in told
    assert SECRET not in caplog.text


class _Recorder:
    def __init__(self):
        self.seen = []

    def on_event(self, event):
        self.seen.append(event)


def test_credentials_from_environment(emu, monkeypatch):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emu.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emu.access_key_secret)
    monkeypatch.setenv("ALIBABA_CLOUD_REGION_ID", emu.region)
    assert AliyunKmsStore(endpoint=emu.endpoint).get_secret("app").version_id == "v1"
    emu.add_access_key("STS.env", "env-secret", security_token="env-token")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.env")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-token")
    assert AliyunKmsStore(endpoint=emu.endpoint).get_secret("app").version_id == "v1"
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(var)
    with pytest.raises(InvalidParameter, match="credentials"):
        AliyunKmsStore(endpoint=emu.endpoint)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"region": "cn hangzhou"}, "region"),
        ({"region": "cn-hangzhou", "endpoint": "http://h/path"}, "endpoint"),
        ({"region": "cn-hangzhou", "endpoint": "http://h", "protocol": "https"}, "protocol"),
        ({"region": "cn-hangzhou", "read_timeout": 0}, "read_timeout"),
    ],
)
def test_bad_options_are_typed_errors(kwargs, fragment):
    with pytest.raises(InvalidParameter, match=fragment):
        AliyunKmsStore(access_key_id="a", access_key_secret="b", **kwargs)


def test_endpoint_forms():
    store = AliyunKmsStore(region="cn-shanghai", vpc=True, access_key_id="a", access_key_secret="b")
    assert (store.protocol, store.host) == ("https", "kms-vpc.cn-shanghai.aliyuncs.com")
    inst = AliyunKmsStore(region="cn-shanghai", endpoint="kst-sha123.cryptoservice.kms.aliyuncs.com",
                          access_key_id="a", access_key_secret="b")
    assert inst.host == "kst-sha123.cryptoservice.kms.aliyuncs.com"
    local = AliyunKmsStore(region="cn-shanghai", endpoint="127.0.0.1:8100", protocol="http",
                           access_key_id="a", access_key_secret="b")
    assert (local.protocol, local.host) == ("http", "127.0.0.1:8100")
    assert "b" not in repr(local).replace("b'", "")


def test_import_without_the_sdk():
    code = (
        "import sys\n"
        "for m in ('aliyunsdkcore', 'aliyunsdkkms'): sys.modules[m] = None\n"
        "import secretclient, secretclient.stores\n"
        "from secretclient.stores import AliyunKmsStore\n"
        "try:\n    AliyunKmsStore(region='cn-hangzhou')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert "InvalidParameter" in out.stdout and "pip install 'secretclient-rotation[kms]'" in out.stdout, out.stderr


@pytest.mark.parametrize(
    "code, status, cls",
    [
        ("Forbidden.ResourceNotFound", 404, SecretNotFound),
        ("Rejected.Throttling", 429, Throttled),
        ("Throttling.User", 400, Throttled),
        ("SignatureDoesNotMatch", 400, AccessDenied),
        ("InvalidAccessKeyId.NotFound", 404, AccessDenied),
        ("InvalidAccessKeyId.Inactive", 400, AccessDenied),
        ("Forbidden.NoPermission", 403, AccessDenied),
        ("InvalidSecurityToken.Expired", 400, AccessDenied),
        ("InvalidParameter", 400, InvalidParameter),
        ("MissingSecretName", 400, InvalidParameter),
        ("MissingParameter", 400, InvalidParameter),
        ("Rejected.ResourceExist", 409, VersionConflict),
        ("Rejected.LimitExceeded", 400, LimitExceeded),
        ("InternalFailure", 500, StoreUnavailable),
        ("ServiceUnavailableTemporary", 503, StoreUnavailable),
        ("SDK.UnknownServerError", 502, StoreUnavailable),
        ("Whatever.Else", 400, StoreError),
    ],
)
def test_server_error_mapping(code, status, cls):
    err = map_sdk_error(ServerException(code, "message", http_status=status, request_id="rid"), "GetSecretValue", "n")
    assert type(err) is cls
    assert (err.code, err.http_status, err.request_id) == (code, status, "rid")


def test_client_error_mapping():
    timeout = map_sdk_error(ClientException("SDK.HttpError", "Read timed out. url=/?SecretData=x"), "PutSecretValue")
    assert isinstance(timeout, StoreTimeout) and "SecretData" not in str(timeout)
    refused = map_sdk_error(ClientException("SDK.HttpError", "Connection refused"), "GetSecretValue")
    assert type(refused) is StoreUnavailable
    renamed = map_sdk_error(ServerException("InvalidAccessKeySecret", "x", 400, "r"), "GetSecretValue")
    assert isinstance(renamed, AccessDenied) and renamed.code == "SignatureDoesNotMatch"
    secret_msg = map_sdk_error(ServerException("InvalidParameter", "bad SecretData=abc", 400, "r"), "PutSecretValue")
    assert "abc" not in str(secret_msg)


def test_string_to_sign_matches_documented_algorithm():
    params = {"b": "x y", "a": "1/2~", "Signature": "ignored"}
    assert string_to_sign("POST", params) == "POST&%2F&a%3D1%252F2~%26b%3Dx%2520y"


# -- signature V3 (ACS3-HMAC-SHA256, the Tea SDK's default) -------------------------------------


def _tea(emu, **config):
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi.utils_models import Config

    options = {"access_key_id": emu.access_key_id, "access_key_secret": emu.access_key_secret,
               "region_id": emu.region, "endpoint": emu.host_port, "protocol": "http", **config}
    return Client(Config(**options))


def _tea_code(call) -> str:
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    with pytest.raises(AlibabaCloudException) as err:
        call()
    return f"{err.value.status_code} {err.value.code}"


def v3_call(emu, action: str, query: dict[str, str], *, nonce: str | None = None, secret: str | None = None,
            date: str | None = None, body: bytes = b"", send: bytes | None = None):
    """A hand-signed V3 request (what the Tea SDK sends), to replay nonces and bend fields."""
    import hashlib

    from secretclient.testing._signing import Incoming, canonical_request_v3, sign_v3

    headers = {
        "host": emu.host_port,
        "x-acs-action": action,
        "x-acs-version": "2016-01-20",
        "x-acs-date": date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    signed = sorted(headers)
    canonical = canonical_request_v3(Incoming("POST", "/", {}, headers, tuple(sorted(query.items())), body), signed)
    signature = sign_v3(canonical, secret or emu.access_key_secret)
    headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={emu.access_key_id},"
                                f"SignedHeaders={';'.join(signed)},Signature={signature}")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return post_json(f"{emu.endpoint}/?{urlencode(query)}", body if send is None else send, headers)


def test_tea_sdk_default_configuration_is_answered(emu):
    from alibabacloud_kms20160120 import models

    client = _tea(emu)
    body = client.get_secret_value(models.GetSecretValueRequest(secret_name="app")).body
    assert (body.secret_data, body.version_id) == ("s3cret-value", "v1")
    client.put_secret_value(models.PutSecretValueRequest(secret_name="app", version_id="v2",
                                                         secret_data="a b+c&d=é\n"))
    assert emu.backing_store.get_secret("app").data == "a b+c&d=é\n"


def test_v3_bad_signature_stale_time_reused_nonce_and_tokens(emu):
    from alibabacloud_kms20160120 import models

    req = models.GetSecretValueRequest(secret_name="app")
    assert _tea_code(lambda: _tea(emu, access_key_secret="wrong").get_secret_value(req)) == "400 SignatureDoesNotMatch"
    assert _tea_code(lambda: _tea(emu, access_key_id="LTAIunknown").get_secret_value(req)) == \
        "404 InvalidAccessKeyId.NotFound"
    emu.add_access_key("STS.v3", "sts-secret", security_token="token-1")
    sts = {"access_key_id": "STS.v3", "access_key_secret": "sts-secret"}
    assert _tea(emu, security_token="token-1", **sts).get_secret_value(req).body.version_id == "v1"
    assert _tea_code(lambda: _tea(emu, security_token="token-2", **sts).get_secret_value(req)) == \
        "400 InvalidSecurityToken.Mismatch"
    assert _tea_code(lambda: _tea(emu, **sts).get_secret_value(req)) == "400 InvalidSecurityToken.Malformed"
    with KmsEmulator(clock=lambda: time.time() + 3600) as late:
        assert _tea_code(lambda: _tea(late).get_secret_value(req)) == "400 IllegalTimestamp"
    query = {"SecretName": "app"}
    assert v3_call(emu, "GetSecretValue", query, nonce="n-v3")[0] == 200
    status, body = v3_call(emu, "GetSecretValue", query, nonce="n-v3")
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")
    assert v3_call(emu, "GetSecretValue", {}, body=b"SecretName=app")[0] == 200  # form body parameters
    status, body = v3_call(emu, "GetSecretValue", {}, body=b"SecretName=app", send=b"SecretName=nop")
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")  # x-acs-content-sha256 covers the body
    status, body = v3_call(emu, "GetSecretValue", query, date="2020-01-01T00:00:00Z")
    assert (status, body["Code"]) == (400, "IllegalTimestamp")


def test_v3_unsigned_acs_header_is_refused(emu):
    import hashlib

    headers = {
        "host": emu.host_port, "x-acs-action": "GetSecretValue", "x-acs-version": "2016-01-20",
        "x-acs-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        "Authorization": f"ACS3-HMAC-SHA256 Credential={emu.access_key_id},SignedHeaders=host;x-acs-action,Signature=00",
    }
    req = urllib.request.Request(f"{emu.endpoint}/?SecretName=app", data=b"", method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5)
    assert (err.value.code, json.loads(err.value.read())["Code"]) == (400, "IncompleteSignature")


# -- KMS rules the emulator follows ---------------------------------------------------------------


def test_dry_run_never_returns_the_value_through_the_classic_sdk(emu):
    with pytest.raises(ServerException) as err:
        get_value(emu.acs_client(), "app", DryRun="true")
    assert err.value.get_error_code() == "DryRunOperationError"
    assert "s3cret-value" not in str(err.value)
    status, body = raw_call(emu, {"Action": "GetSecretValue", "SecretName": "app", "DryRun": "true"})
    assert status == 400 and "SecretData" not in body


@pytest.mark.parametrize(
    "params, code",
    [
        ({"SecretType": "Nope"}, "InvalidParameter"),
        ({"SecretType": "Rds"}, "MissingParameter"),  # managed types need their ExtendedConfig
        ({"SecretData": "x" * 30721}, "InvalidParameter"),
        ({"SecretData": base64.b64encode(b"x" * 30721).decode(), "SecretDataType": "binary"}, "InvalidParameter"),
        ({"SecretName": "app\n"}, "InvalidParameter"),
        ({"SecretName": "a\x00b"}, "InvalidParameter"),
        ({"VersionId": "v1\n"}, "InvalidParameter"),
        ({"VersionId": ""}, "MissingParameter"),
    ],
)
def test_create_secret_validation(emu, params, code):
    full = {"Action": "CreateSecret", "SecretName": "new", "VersionId": "v1", "SecretData": "x", **params}
    status, body = raw_call(emu, full)
    assert (status, body["Code"]) == (400, code)
    assert "new" not in {i.name for i in emu.backing_store.list_secrets()}


def test_control_characters_refused_everywhere(emu):
    for params in (
        {"Action": "GetSecretValue", "SecretName": "app\n"},
        {"Action": "GetSecretValue", "SecretName": "app", "VersionId": "v1\r"},
        {"Action": "GetSecretValue", "SecretName": "app", "VersionStage": "ACSCurrent\n"},
        {"Action": "PutSecretValue", "SecretName": "app", "VersionId": "v2\n", "SecretData": "x"},
        {"Action": "PutSecretValue", "SecretName": "app", "VersionId": "v2", "SecretData": "x",
         "VersionStages": '["Blue\\u0007"]'},
        {"Action": "UpdateSecretVersionStage", "SecretName": "app", "VersionStage": "Blue\t", "MoveToVersion": "v1"},
    ):
        status, body = raw_call(emu, params)
        assert (status, body["Code"]) == (400, "InvalidParameter"), params
    assert [v.version_id for v in emu.backing_store.list_versions("app", include_deprecated=True)] == ["v1"]
    store = emu.store()
    before = emu.calls
    for call in (
        lambda: store.get_secret("app\n"),
        lambda: store.get_secret("app", version_id="v1\n"),
        lambda: store.put_secret("app", "v2\n", "x"),
        lambda: store.put_secret("app", "v2", "x", stages=["Blue\n"]),
        lambda: store.update_stage("app", "Blue\n", move_to="v1"),
        lambda: store.create_secret("new\n", "x"),
    ):
        with pytest.raises(InvalidParameter):
            call()
    assert emu.calls == before  # the store refused them itself: nothing was sent


def test_at_most_eight_custom_stages(emu):
    store = emu.store()
    for i in range(8):
        store.put_secret("app", f"c{i}", f"d{i}", stages=[f"Custom{i}"])
    with pytest.raises(LimitExceeded):
        store.put_secret("app", "c8", "d8", stages=["Custom8"])
    with pytest.raises(LimitExceeded):
        store.update_stage("app", "Custom8", move_to="v1")
    store.put_secret("app", "c9", "d9", stages=["Custom0"])  # an existing custom stage moves freely
    assert store.get_secret("app", stage="Custom0").version_id == "c9"


def test_list_secret_version_ids_default_page_is_20(emu):
    status, body = raw_call(emu, {"Action": "ListSecretVersionIds", "SecretName": "app"})
    assert (status, body["PageSize"], body["PageNumber"]) == (200, 20, 1)


def test_list_secrets_pages_and_filters_and_update_secret(emu):
    store = emu.store()
    for i in range(12):
        store.create_secret(f"s{i:02d}", "x")
    status, body = raw_call(emu, {"Action": "ListSecrets"})
    assert status == 200 and body["PageSize"] == 10 and body["TotalCount"] == 13
    assert len(body["SecretList"]["Secret"]) == 10
    status, body = raw_call(emu, {"Action": "ListSecrets", "PageNumber": "2"})
    assert [s["SecretName"] for s in body["SecretList"]["Secret"]] == ["s09", "s10", "s11"]
    status, body = raw_call(emu, {"Action": "ListSecrets", "Filters": json.dumps([{"Key": "SecretName",
                                                                                     "Values": ["s03", "app"]}])})
    assert [s["SecretName"] for s in body["SecretList"]["Secret"]] == ["app", "s03"]
    raw_call(emu, {"Action": "TagResource", "SecretName": "s05", "Tags": json.dumps([{"TagKey": "team",
                                                                                       "TagValue": "db"}])})
    status, body = raw_call(emu, {"Action": "ListSecrets", "FetchTags": "true",
                                  "Filters": json.dumps([{"Key": "TagKey", "Values": ["team"]}])})
    assert body["SecretList"]["Secret"] == [
        {**body["SecretList"]["Secret"][0], "SecretName": "s05", "Tags": {"Tag": [{"TagKey": "team", "TagValue": "db"}]}}
    ]
    assert raw_call(emu, {"Action": "ListSecrets", "Filters": "[{}]"})[1]["Code"] == "InvalidParameter"
    assert raw_call(emu, {"Action": "UpdateSecret", "SecretName": "s01", "Description": "new words"})[0] == 200
    assert store.describe("s01").description == "new words"
    assert [i.name for i in store.list_secrets()][:3] == ["app", "s00", "s01"]


def test_managed_secret_rotation_policy_and_rotate(emu):
    store = emu.store()
    config = {"SecretSubType": "SingleUser", "DBInstanceId": "rm-1", "CustomData": {}}
    store.create_secret("rds/app", '{"AccountName": "app", "AccountPassword": "old-pw"}', secret_type="Rds",
                        extended_config=config)
    assert store.describe("rds/app").automatic_rotation is False
    status, _ = raw_call(emu, {"Action": "UpdateSecretRotationPolicy", "SecretName": "rds/app",
                               "EnableAutomaticRotation": "true", "RotationInterval": "7d"})
    assert status == 200
    info = store.describe("rds/app")
    assert info.automatic_rotation and info.rotation_interval == timedelta(days=7) and info.next_rotation
    status, body = raw_call(emu, {"Action": "UpdateSecretRotationPolicy", "SecretName": "rds/app",
                                  "EnableAutomaticRotation": "true", "RotationInterval": "1h"})
    assert (status, body["Code"]) == (400, "InvalidParameter")
    status, body = raw_call(emu, {"Action": "RotateSecret", "SecretName": "rds/app", "VersionId": "r2"})
    assert status == 200 and body["VersionId"] == "r2" and body["Arn"].endswith("secret/rds/app")
    rotated = json.loads(store.get_secret("rds/app").data)
    assert rotated["AccountName"] == "app" and rotated["AccountPassword"] != "old-pw"
    assert store.get_secret("rds/app", stage="ACSPrevious").version_id != "r2"
    for action in ("RotateSecret", "UpdateSecretRotationPolicy"):
        status, body = raw_call(emu, {"Action": action, "SecretName": "app", "VersionId": "x",
                                      "EnableAutomaticRotation": "true", "RotationInterval": "7d"})
        assert (status, body["Code"]) == (400, "Rejected.UnsupportedOperation"), action


def test_next_rotation_tag_for_generic_secrets(emu):
    store = emu.store()
    assert store.describe("app").next_rotation is None
    when = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    store.record_next_rotation("app", when)
    assert store.describe("app").next_rotation == when
    assert store.describe("app").automatic_rotation is False  # KMS still rotates nothing itself
    store.record_next_rotation("app", None)
    assert store.describe("app").next_rotation is None
    with pytest.raises(InvalidParameter):
        store.record_next_rotation("app", datetime(2030, 5, 1))  # naive: which zone?
    status, body = raw_call(emu, {"Action": "TagResource", "SecretName": "app",
                                  "Tags": json.dumps([{"TagKey": "acs:x", "TagValue": "v"}])})
    assert (status, body["Code"]) == (400, "InvalidParameter")


# -- hostile requests: KMS-shaped 4xx, never a dropped connection or a huge read ---------------


def _raw_http(emu, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    import socket

    with socket.create_connection((emu.host, emu.port), timeout=5) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    payload = rest.split(b"\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(payload)


def test_non_ascii_signature_and_security_token_get_kms_answers(emu, capfd):
    emu.add_access_key("STS.key", "sts-secret", security_token="token-1")
    for params, code in (
        ({"Signature": "签名"}, "SignatureDoesNotMatch"),
        ({"AccessKeyId": "STS.key", "SecurityToken": "tökén"}, "InvalidSecurityToken.Mismatch"),
    ):
        full = {"Action": "GetSecretValue", "SecretName": "app", "Version": "2016-01-20", "Format": "JSON",
                "AccessKeyId": emu.access_key_id, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                "SignatureNonce": uuid.uuid4().hex, "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Signature": "x", **params}
        head = f"POST /?{urlencode(full)} HTTP/1.1\r\nHost: {emu.host_port}\r\nContent-Length: 0\r\n\r\n".encode()
        status, body = _raw_http(emu, head)
        assert (status, body["Code"]) == (400, code) and body["RequestId"] and body["Recommend"]
    assert "Traceback" not in capfd.readouterr().err


def test_huge_content_length_is_refused_without_reading(emu, capfd):
    head = (f"POST /?Action=GetSecretValue HTTP/1.1\r\nHost: {emu.host_port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40000000000\r\n\r\n").encode()
    status, body = _raw_http(emu, head, b"0123456789")
    assert (status, body["Code"]) == (413, "RequestEntityTooLarge") and body["RequestId"]
    for bad in ("-5", "ten"):
        head = f"POST / HTTP/1.1\r\nHost: {emu.host_port}\r\nContent-Length: {bad}\r\n\r\n".encode()
        status, body = _raw_http(emu, head)
        assert (status, body["Code"]) == (400, "InvalidContentLength")
    assert "Traceback" not in capfd.readouterr().err
    assert get_value(emu.acs_client(), "app")["SecretData"] == "s3cret-value"  # still serving



def test_client_refreshes_a_generic_secret_at_the_tagged_rotation_time(emu):
    """The client half of rotation awareness against a KMS that rotates no Generic secret: the
    engine's tag is all DescribeSecret has, and one DescribeSecret per version reads it."""
    clock = ManualClock()
    store = emu.store()
    store.record_next_rotation("app", clock.utc() + timedelta(minutes=2))
    executor = ManualExecutor()
    with SecretClient(store, ttl=3600, rotation_delay=30, clock=clock, wall_clock=clock.utc,
                      executor=executor) as client:
        assert client.get_text("app") == "s3cret-value"
        executor.run_pending()  # DescribeSecret, tags included
        emu.backing_store.put_secret("app", "v2", "rotated")  # the engine rotates on time
        clock.advance(120 + 2 * 30 + 1)  # the refresh comes within twice rotation_delay
        client.get("app")
        executor.run_pending()
        assert client.get_text("app") == "rotated"  # long before the 1 h TTL
        clock.advance(30)  # the new version is described on a read within rotation_delay
        client.get("app")
        executor.run_pending()
    assert emu.calls["DescribeSecret"] == 2  # once per version, no extra request on reads


def test_client_gone_before_the_answer_leaves_no_traceback(emu, capfd):
    import socket

    emu.faults.set_latency(0.3)
    params = urlencode({"Action": "GetSecretValue", "SecretName": "app"})
    for _ in range(3):
        with socket.create_connection((emu.host, emu.port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.sendall(f"POST /?{params} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    time.sleep(1.2)  # let the server try to answer the departed clients
    emu.faults.clear()
    assert get_value(emu.acs_client(), "app")["SecretData"] == "s3cret-value"
    assert "Traceback" not in capfd.readouterr().err
