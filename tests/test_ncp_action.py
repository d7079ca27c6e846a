"""rotation.ncp.action: NCP's job protocol driving our engine on MariaDB through the emulator.

Five jobs under 8 querying threads (0 failed queries); a SIGKILL at every step boundary followed
by a retried job (some stage always logs in, the retry completes); alternating users when the
secret names a master; refusals that leave the chain and the database as they were.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ncp_harness import CdbAccount, querying

from rotation.ncp import action

ROTATIONS = 5
CHILD = Path(__file__).with_name("ncp_action_child.py")
KILL_POINTS = ("new:start", "new:put", "new:done", "set:done", "test:done", "end:promote", "end:mid")


def job_args(emu, secret_id: str, token: str) -> dict:
    return {"secretId": secret_id, "jobToken": token, "accessKey": emu.access_key, "secretKey": emu.secret_key}


def run(emu, account: CdbAccount, **kw) -> tuple[str, dict]:
    token = emu.start_rotation(account.secret_id)
    env = {"NCLOUD_SECRET_MANAGER_ENDPOINT": emu.endpoint}
    return token, action(job_args(emu, account.secret_id, token), env=env, **kw)


def test_action_rotates_five_times_under_load(ncp_emulator, mariadb):
    emu = ncp_emulator
    account = CdbAccount(mariadb, emu).create(privileged=False)  # single user: SET PASSWORD needs nothing
    seen = [account.active()["cdbPassword"]]
    with emu.store() as store, querying(account, store) as load:
        time.sleep(0.3)
        for _ in range(ROTATIONS):
            before = account.active()
            token, result = run(emu, account)
            assert result == {"done": True, "resumed": False}
            assert emu.job_state(account.secret_id, token) == "COMPLETED"
            after = account.active()
            assert after["cdbPassword"] not in seen and len(after["cdbPassword"]) == 16
            seen.append(after["cdbPassword"])
            assert set(after) == set(before) and {k for k in after if after[k] != before[k]} == {"cdbPassword"}
            assert account.stage("previous") == before and account.stage("pending") is None
            assert account.can_login(after) and not account.can_login(before)
            time.sleep(0.3)
    print(f"\nrotation.ncp.action: {ROTATIONS} rotations, {load.queries} queries by 8 threads, "
          f"{len(load.failures)} failed")
    assert load.failures == []
    assert load.queries > 100
    # The pending value was stored before the database changed: one PUT /pending per job.
    assert emu.calls["UpdatePendingStage"] == ROTATIONS and emu.calls["FailRotationJob"] == 0


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_step_then_a_retried_job_completes(ncp_emulator, mariadb, point):
    emu = ncp_emulator
    account = CdbAccount(mariadb, emu).create(privileged=False)
    original = account.active()
    token = emu.start_rotation(account.secret_id)
    spec = {"args": job_args(emu, account.secret_id, token), "pause_at": point,
            "env": {"NCLOUD_SECRET_MANAGER_ENDPOINT": emu.endpoint}}
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"PAUSED {point}", line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert account.some_stage_logs_in()
    crashed_pending = account.stage("pending")
    # The service gives up on the job and retries with a new token.
    retry, result = run(emu, account)
    assert result["done"] is True, result
    assert emu.job_state(account.secret_id, token) == "SUPERSEDED" or point == "end:mid"
    assert emu.job_state(account.secret_id, retry) == "COMPLETED"
    active = account.active()
    assert account.can_login(active) and account.stage("pending") is None
    if crashed_pending is not None and point != "end:mid":
        # Resumed with the stored password, never a new one.
        assert result["resumed"] is True and active == crashed_pending
    assert active["cdbPassword"] != original["cdbPassword"]


def test_alternating_users_when_the_secret_names_a_master(ncp_emulator, mariadb):
    emu = ncp_emulator
    master_value = {"cdbHost": mariadb.host, "cdbPort": str(mariadb.port), "cdbUser": mariadb.admin_user,
                    "cdbPassword": mariadb.admin_password}
    emu.create_secret("cdb-master", json.dumps(master_value), rotation_targets=["cdbPassword"])
    # Alternating users change cdbUser too: the secret's rotationTargets say so.
    account = CdbAccount(mariadb, emu).create(privileged=False, extra={"masterSecret": "cdb-master"},
                                              targets=("cdbUser", "cdbPassword"))
    users = []
    for _ in range(2):
        _, result = run(emu, account)
        assert result["done"] is True, result
        users.append(account.active()["cdbUser"])
        assert account.can_login(account.active())
    assert users == [account.user + "_rt", account.user]
    assert account.can_login(account.stage("previous"))  # the account behind the old active is untouched
    assert account.active()["masterSecret"] == "cdb-master"


def test_changes_outside_rotation_targets_are_refused(ncp_emulator, mariadb):
    emu = ncp_emulator
    master_value = {"cdbHost": mariadb.host, "cdbPort": str(mariadb.port), "cdbUser": mariadb.admin_user,
                    "cdbPassword": mariadb.admin_password}
    emu.create_secret("cdb-master2", json.dumps(master_value), rotation_targets=["cdbPassword"])
    account = CdbAccount(mariadb, emu).create(privileged=False, extra={"masterSecret": "cdb-master2"})
    chain = emu.chain(account.secret_id)
    token, result = run(emu, account)
    assert result["done"] is False and "cdbUser" in result["error_message"]
    assert emu.job_state(account.secret_id, token) == "FAILED"
    assert emu.chain(account.secret_id) == chain
    assert account.can_login(account.active())
    assert not account.can_login({**account.active(), "cdbUser": account.user + "_rt"})


def test_bad_arguments_and_a_refusing_database(ncp_emulator, mariadb):
    emu = ncp_emulator
    assert action({"secretId": "x"}) == {"done": False,
                                         "error_message": "the action needs jobToken, accessKey, secretKey"}
    bad_endpoint = action({"secretId": "x", "jobToken": "t", "accessKey": "a", "secretKey": "s"},
                          env={"NCLOUD_SECRET_MANAGER_ENDPOINT": "ftp://nowhere/path"})
    assert bad_endpoint["done"] is False and "endpoint" in bad_endpoint["error_message"]
    account = CdbAccount(mariadb, emu).create(privileged=False)
    mariadb.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (account.user, "changed-behind-its-back"))
    token, result = run(emu, account)
    assert result["done"] is False
    assert "changed-behind-its-back" not in json.dumps(result) and account.active()["cdbPassword"] not in json.dumps(result)
    assert emu.job_state(account.secret_id, token) == "FAILED"
    assert account.stage("active")["cdbPassword"] != "changed-behind-its-back"
