"""NCP's own rotation action (tests/seed/ncp_rotation_action.py), unchanged, against our NCP
emulator and a throwaway MariaDB, while 8 threads query through an engine fed by the NCP store.

Only the host is redirected: requests' HTTPS_PROXY sends the action's calls to
secretmanager.apigw.ntruss.com into the emulator's proxy mode (TLS with the emulator's CA,
trusted through REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import json
import time

import pytest
from ncp_harness import CdbAccount, querying
from seed_harness import load_seed

from secretclient.db.policy import RetryPolicy
from secretclient.testing import NcpEmulator

ROTATIONS = 5


@pytest.fixture(scope="module")
def seed():
    return load_seed("ncp_rotation_action.py")


@pytest.fixture
def emu(monkeypatch):
    with NcpEmulator() as emulator:
        monkeypatch.setenv("HTTPS_PROXY", emulator.proxy_url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield emulator


def run_seed(seed, emu: NcpEmulator, secret_id: str) -> tuple[str, dict]:
    token = emu.start_rotation(secret_id)
    result = seed.main({"secretId": secret_id, "jobToken": token,
                        "accessKey": emu.access_key, "secretKey": emu.secret_key})
    return token, result


def test_seed_action_rotates_five_times_under_load(seed, emu, mariadb, capsys):
    account = CdbAccount(mariadb, emu).create()
    seen = [account.active()["cdbPassword"]]
    # The seed changes the password before storing it as pending: until its PUT /pending lands,
    # a new login finds no stored password that works. On a loaded machine that window can
    # outlast the default three passes over the store, so the connections search longer here
    # (tests/test_ncp_action.py shows our action needs no such patience).
    patient = RetryPolicy(total=30.0, max_attempts=30, rounds=12)
    with emu.store() as store, querying(account, store, patient) as load:
        time.sleep(0.3)
        for _ in range(ROTATIONS):
            before = account.active()
            token, result = run_seed(seed, emu, account.secret_id)
            assert result["done"] is True, result.get("error_message")
            assert emu.job_state(account.secret_id, token) == "COMPLETED"
            after = account.active()
            assert after["cdbPassword"] not in seen
            seen.append(after["cdbPassword"])
            assert {k: v for k, v in after.items() if k != "cdbPassword"} == {
                k: v for k, v in before.items() if k != "cdbPassword"}
            assert account.stage("previous") == before and account.stage("pending") is None
            assert account.can_login(after) and not account.can_login(before)
            time.sleep(0.3)
    capsys.readouterr()  # the seed prints the chain (its own choice): keep it out of the report
    print(f"\nseed action: {ROTATIONS} rotations, {load.queries} queries by 8 threads, "
          f"{len(load.failures)} failed")
    assert load.failures == []
    assert load.queries > 100
    assert emu.calls["CompleteRotationJob"] == ROTATIONS and emu.calls["FailRotationJob"] == 0


def test_seed_action_fails_the_job_when_the_database_refuses(seed, emu, mariadb, capsys):
    """Every stored password is wrong: the seed reports /fail, the chain is kept."""
    account = CdbAccount(mariadb, emu).create()
    mariadb.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (account.user, "changed-behind-its-back"))
    chain = emu.chain(account.secret_id)
    token, result = run_seed(seed, emu, account.secret_id)
    capsys.readouterr()
    assert result["done"] is False
    assert emu.job_state(account.secret_id, token) == "FAILED"
    assert emu.chain(account.secret_id) == chain
    assert json.loads(chain["active"])["cdbPassword"] != "changed-behind-its-back"
