"""NcpEmulator: NCP Secret Manager's REST and rotation-job API over real HTTP(S), with signature v2,
timestamp and job-token checks answered in NCP's error shape, chain semantics and faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from secretclient.errors import AccessDenied, SecretNotFound, StoreTimeout, StoreUnavailable, Throttled, VersionConflict
from secretclient.stores._ncp_http import sign_v2
from secretclient.testing import NcpEmulator

VALUE = json.dumps({"cdbHost": "127.0.0.1", "cdbPort": "3306", "cdbUser": "app", "cdbDatabase": "db",
                    "cdbPassword": "first-password"})


def raw(emu: NcpEmulator, method: str, path: str, body=None, *, secret=None, stamp=None, headers=None):
    """A request signed by hand (requests, as NCP's own sample does)."""
    ts = stamp or str(int(time.time() * 1000))
    h = {"x-ncp-apigw-timestamp": ts, "x-ncp-iam-access-key": emu.access_key,
         "x-ncp-apigw-signature-v2": sign_v2(method, path, ts, emu.access_key, secret or emu.secret_key)}
    h.update(headers or {})
    return requests.request(method, emu.endpoint + path, json=body, headers=h, timeout=10)


def test_signature_timestamp_and_key_failures_answer_as_the_gateway(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    path = f"/api/v1/secrets/{sid}/values"
    assert raw(emu, "GET", path).status_code == 200
    for kwargs in ({"secret": "wrong"}, {"stamp": str(int((time.time() - 600) * 1000))}):
        resp = raw(emu, "GET", path, **kwargs)
        assert resp.status_code == 401
        assert resp.json()["error"]["errorCode"] == "200"
        assert resp.json()["error"]["message"] == "Authentication Failed"
    resp = requests.get(emu.endpoint + path, timeout=10)
    assert resp.status_code == 401 and resp.json()["error"]["errorCode"] == "200"
    with emu.store(secret_key="not-the-key") as bad:
        with pytest.raises(AccessDenied) as err:
            bad.get_secret(sid)
    assert err.value.code == "200" and err.value.http_status == 401
    assert "first-password" not in str(err.value)


def test_get_secret_value_shape_and_not_found(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    body = raw(emu, "GET", f"/api/v1/secrets/{sid}/values").json()
    assert body == {"code": "SUCCESS", "data": {"decryptedSecretChain": {"active": VALUE},
                                                 "rotationTargets": ["cdbPassword"]}}
    missing = raw(emu, "GET", "/api/v1/secrets/" + "0" * 64 + "/values")
    assert missing.status_code == 404 and missing.json()["error"]["errorCode"] == "NOT_FOUND"
    listed = raw(emu, "GET", "/api/v1/secrets?pageNo=1").json()["data"]
    assert listed["totalCount"] == 1 and listed["secretList"][0]["secretName"] == "app-db"


def test_job_start_pending_complete_shifts_the_chain(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    token = emu.start_rotation(sid)
    job = emu.store().job(sid, token)
    started = job.start()
    assert dict(started.chain) == {"active": VALUE} and started.rotation_targets == ("cdbPassword",)
    assert raw(emu, "GET", f"/api/v1/secrets/{sid}").json()["data"]["secretStatus"] == "ROTATING"
    password = job.generate_random_secret()
    assert len(password) == 32
    pending = json.dumps({**json.loads(VALUE), "cdbPassword": password})
    job.update_pending(pending)
    assert emu.chain(sid) == {"active": VALUE, "pending": pending}
    job.complete()
    assert emu.chain(sid) == {"active": pending, "previous": VALUE}
    assert emu.job_state(sid, token) == "COMPLETED"
    with pytest.raises(VersionConflict) as err:  # the job has ended
        job.complete()
    assert err.value.code == "INVALID_STATUS" and err.value.http_status == 422
    assert emu.chain(sid) == {"active": pending, "previous": VALUE}


def test_fail_ends_the_job_and_keeps_the_chain(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    token = emu.start_rotation(sid)
    job = emu.store().job(sid, token)
    job.start()
    pending = job.add_pending()  # NCP fills the rotation targets itself
    assert json.loads(pending)["cdbUser"] == "app" and json.loads(pending)["cdbPassword"] != "first-password"
    job.fail()
    assert emu.chain(sid) == {"active": VALUE, "pending": pending}
    assert emu.job_state(sid, token) == "FAILED"
    # The next job sees the pending value of the failed one.
    retry = emu.store().job(sid, emu.start_rotation(sid))
    assert retry.start().chain.get("pending") == pending


def test_job_token_failures(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    token = emu.start_rotation(sid)
    base = f"/action/v1/secrets/{sid}/jobs"
    resp = raw(emu, "POST", f"{base}/{token}/start", {}, headers={"SECRET-JOB-TOKEN": "other"})
    assert resp.status_code == 403 and resp.json()["error"]["errorCode"] == "FORBIDDEN"
    resp = raw(emu, "POST", f"{base}/not-a-token/start", {})
    assert resp.status_code == 403
    # Complete before any pending value: refused, the chain unchanged.
    job = emu.store().job(sid, token)
    job.start()
    with pytest.raises(VersionConflict):
        job.complete()
    # A new job supersedes the open one: the old token stops working.
    emu.start_rotation(sid)
    with pytest.raises(VersionConflict) as err:
        job.update_pending(VALUE)
    assert err.value.code == "INVALID_STATUS"
    assert emu.job_state(sid, token) == "SUPERSEDED"
    assert emu.chain(sid) == {"active": VALUE}
    with pytest.raises(SecretNotFound):
        emu.store().job("f" * 64, token).start()


def test_random_secret_follows_the_body_and_has_both_shapes(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    token = emu.start_rotation(sid)
    path = f"/action/v1/secrets/{sid}/jobs/{token}"
    raw(emu, "POST", path + "/start", {})
    body = raw(emu, "POST", path + "/generate-random-secret",
               {"length": 16, "excludeCharacters": "\"&'+/\\`", "requireEachIncludedType": True}).json()
    text = body["data"]["randomString"]
    assert body["randomString"] == text and len(text) == 16
    assert not set(text) & set("\"&'+/\\`")
    digits = raw(emu, "POST", path + "/generate-random-secret",
                 {"length": 12, "excludeLowercase": True, "excludeUppercase": True, "excludePunctuation": True})
    assert digits.json()["data"]["randomString"].isdigit()
    too_long = raw(emu, "POST", path + "/generate-random-secret", {"length": 33})
    assert too_long.status_code == 400 and too_long.json()["error"]["errorCode"] == "INVALID_REQUEST"


def test_faults_outage_throttle_error_rate_latency(ncp_emulator):
    emu = ncp_emulator
    sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
    store = emu.store()
    with emu.faults.outage():
        with pytest.raises(StoreUnavailable) as err:
            store.get_secret(sid)
    assert err.value.http_status == 503
    with emu.faults.outage("drop"):
        with pytest.raises(StoreUnavailable):
            store.get_secret(sid)
    emu.faults.throttle(1)
    store.get_secret(sid)
    with pytest.raises(Throttled) as throttled:
        store.get_secret(sid)
    assert throttled.value.code == "400" and throttled.value.http_status == 429
    emu.faults.clear()
    emu.faults.set_error_rate(1.0)
    with pytest.raises(StoreUnavailable) as err:
        store.get_secret(sid)
    assert err.value.code == "INTERNAL_SERVER_ERROR"
    emu.faults.clear()
    emu.faults.set_latency(2.0)
    with emu.store(timeout=0.2) as slow, pytest.raises(StoreTimeout):
        slow.get_secret(sid)
    emu.faults.clear()
    assert store.get_secret(sid).data == VALUE
    assert emu.calls["GetSecretValue"] >= 6


def test_https_and_proxy_mode_reach_ncp_host_names():
    with NcpEmulator(https=True) as emu:
        sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
        with emu.store() as store:
            assert store.get_secret("app-db").data == VALUE
    with NcpEmulator() as emu:  # proxy mode: plain HTTP to the proxy, TLS inside the tunnel
        sid = emu.create_secret("app-db", VALUE, rotation_targets=["cdbPassword"])
        # Unmodified code on the real host name: the proxy answers the CONNECT itself.
        ts = str(int(time.time() * 1000))
        path = f"/api/v1/secrets/{sid}/values"
        headers = {"x-ncp-apigw-timestamp": ts, "x-ncp-iam-access-key": emu.access_key,
                   "x-ncp-apigw-signature-v2": sign_v2("GET", path, ts, emu.access_key, emu.secret_key)}
        resp = requests.get("https://secretmanager.apigw.ntruss.com" + path, headers=headers, timeout=10,
                            proxies={"https": emu.proxy_url}, verify=str(emu.ca_file))
        assert resp.json()["data"]["decryptedSecretChain"]["active"] == VALUE
        with pytest.raises(requests.exceptions.ProxyError):
            requests.get("https://example.com/", proxies={"https": emu.proxy_url}, timeout=10)


def test_command_line_serves_until_sigterm():
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen([sys.executable, "-m", "secretclient.testing.ncp_emulator", "--port", "0",
                             "--access-key", "AK1:SK1"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        endpoint = first.rsplit(" ", 1)[1].strip()
        from secretclient.stores.ncp import NcpSecretManagerStore

        with NcpSecretManagerStore(endpoint, access_key="AK1", secret_key="SK1") as store:
            with pytest.raises(SecretNotFound):
                store.get_secret("no-such")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped" in out and "SK1" not in out
