"""The seed's CloudFlow step sequence through rotation.fc.handler, the scheduler across four
processes, and the ``rotation`` CLI — against real MariaDB, both stores."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rotation_support import (
    PENDING,
    ShiftedClock,
    child_env,
    make_app,
    start_store,
)

import rotation.fc
from rotation import InvalidRotationSetup
from rotation.cli import main as cli

CHILD = Path(__file__).with_name("rotation_child.py")


def _fc_env(monkeypatch, handle):
    if handle.kind == "embedded":
        monkeypatch.setenv("ROTATION_STORE", f"embedded:{handle.spec['path']}")
        context_creds = None
    else:
        monkeypatch.setenv("ROTATION_STORE", "kms")
        monkeypatch.setenv("ROTATION_KMS_ENDPOINT", handle.spec["endpoint"])
        context_creds = SimpleNamespace(accessKeyId=handle.spec["ak"], accessKeySecret=handle.spec["sk"],
                                        securityToken=None)
    monkeypatch.setenv("ROTATION_STRATEGY", "alternating")
    monkeypatch.setenv("ROTATION_GRACE_SECONDS", "0")  # flows back to back: explicit, not the 1 h default
    return context_creds


def test_seed_step_sequence_through_the_fc_handler(mariadb, store_handle, cleanup_accounts, monkeypatch):
    app = make_app(mariadb, store_handle.store, "alternating", account="fcuser")
    cleanup_accounts.append("fcuser")
    creds = _fc_env(monkeypatch, store_handle)
    payload = {"SecretName": app.name, "RegionId": "cn-hangzhou"}  # the CloudFlow schedule's payload
    for run in (1, 2):
        context = SimpleNamespace(requestId=f"req-{run}", credentials=creds)
        local = rotation.fc.handler(json.dumps({**payload, "Step": "new"}).encode(), context)
        assert local == {"VersionId": f"req-{run}"}
        assert store_handle.store.get_secret(app.name, stage=PENDING).version_id == f"req-{run}"
        for step in ("set", "test", "end"):  # each step gets $local.VersionId, as in the YAML
            out = rotation.fc.handler(json.dumps({**payload, "Step": step, **local}), context)
            assert out == local
        current = store_handle.store.get_secret(app.name)
        assert current.version_id == f"req-{run}" and PENDING not in current.stages
        assert current.db_credentials().account_name == ("fcuser_rt" if run == 1 else "fcuser")
        assert app.can_login(current.db_credentials())
    # Retried steps are harmless (here with Scenario 1's InstanceId, accepted and unused); a bad step changes nothing.
    retried = {**payload, "InstanceId": "rm-1234", "Step": "end", "VersionId": "req-2"}
    assert rotation.fc.handler(retried, context) == {"VersionId": "req-2"}
    with pytest.raises(InvalidRotationSetup, match="step must be one of"):
        rotation.fc.handler({**payload, "Step": "finish", "VersionId": "req-2"}, context)
    assert store_handle.store.get_secret(app.name).version_id == "req-2"


def test_fc_handler_rejects_malformed_events_and_non_generic_secrets(tmp_path, monkeypatch):
    with pytest.raises(InvalidRotationSetup, match="not JSON"):
        rotation.fc.handler(b"{nope", SimpleNamespace(requestId="r"))
    with pytest.raises(InvalidRotationSetup, match="SecretName"):
        rotation.fc.handler({"Step": "new"}, SimpleNamespace(requestId="r"))
    handle = start_store("embedded", tmp_path)
    try:
        handle.store.create_secret("rds/app", '{"AccountName": "a", "AccountPassword": "p"}', version_id="v1",
                                   secret_type="Rds")
        monkeypatch.setenv("ROTATION_STORE", f"embedded:{handle.spec['path']}")
        with pytest.raises(InvalidRotationSetup, match="not Generic"):  # as the seed: only Generic here
            rotation.fc.handler({"SecretName": "rds/app", "Step": "new"}, SimpleNamespace(requestId="r"))
        assert [v.version_id for v in handle.store.list_versions("rds/app")] == ["v1"]
    finally:
        handle.close()


def test_fc_suffix_from_the_environment(tmp_path):
    handle = start_store("embedded", tmp_path)
    handle.close()
    env = {"ROTATION_STORE": f"embedded:{handle.spec['path']}", "ROTATION_SUFFIX": "_clone"}
    event = {"SecretName": "app/db", "Step": "new"}
    rotator = rotation.fc.rotator_from_environment(event, SimpleNamespace(), env)
    rotator.store.close()
    assert rotator.strategy.mysql.suffix == rotator.strategy.postgres.suffix == "_clone"
    with pytest.raises(InvalidRotationSetup, match="suffix"):
        rotation.fc.rotator_from_environment(event, SimpleNamespace(), {**env, "ROTATION_SUFFIX": "_x'"})


@pytest.mark.parametrize("store_kind", ["embedded", "kms"])
def test_four_schedulers_rotate_a_due_secret_exactly_once(mariadb, tmp_path, cleanup_accounts, store_kind):
    clock = ShiftedClock()
    clock.offset = -timedelta(hours=2)  # the secret was created two hours ago: due (interval 1 h)
    handle = start_store(store_kind, tmp_path, clock)
    try:
        app = make_app(mariadb, handle.store, "alternating", rich=False)
        cleanup_accounts.append(app.account)
        clock.offset = timedelta(0)
        spec = {"store": handle.spec, "secret": app.name, "strategy": "alternating", "mode": "scheduler",
                "start_at": time.time() + 1.0}
        procs = [subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=child_env()) for _ in range(4)]
        outputs = [p.communicate(timeout=60) for p in procs]
        results = []
        for (out, err), p in zip(outputs, procs):
            assert p.returncode == 0, err.decode()[-2000:]
            results.append(json.loads(out.decode().split("RESULT ", 1)[1]))
        assert sum(r.count("promoted") for r in results) == 1, results
        versions = handle.store.list_versions(app.name, include_deprecated=True)
        assert len(versions) == 2  # v0 and exactly one new version
        assert app.can_login(app.current())
    finally:
        handle.close()


def test_cli_status_plan_rotate_abort(mariadb, tmp_path, cleanup_accounts):
    handle = start_store("embedded", tmp_path)
    try:
        app = make_app(mariadb, handle.store, "alternating", rich=False)
        cleanup_accounts.append(app.account)
        base = ["--store", f"embedded:{handle.spec['path']}", "--name-limit", "80", "--grace", "0"]
        runner = CliRunner()
        res = runner.invoke(cli, [*base, "plan", app.name])
        assert res.exit_code == 0, res.output
        assert f"account: {app.account}_rt@%" in res.output and "<redacted>" in res.output
        res = runner.invoke(cli, [*base, "--json", "rotate", app.name])
        assert res.exit_code == 0, res.output
        rotated = json.loads(res.output)
        assert rotated["rotated"] and handle.store.get_secret(app.name).version_id == rotated["version_id"]
        res = runner.invoke(cli, [*base, "status", app.name, "--interval", "24"])
        assert res.exit_code == 0 and "ACSCurrent" in res.output and "next rotation: 20" in res.output
        res = runner.invoke(cli, [*base, "abort", app.name])
        assert res.exit_code == 0 and "no ACSPending" in res.output
        secret_values = [handle.store.get_secret(app.name, version_id=v.version_id).db_credentials().account_password
                         for v in handle.store.list_versions(app.name)]
        res = runner.invoke(cli, [*base, "--json", "status", app.name])
        assert all(pw not in res.output for pw in secret_values)
        status = json.loads(res.output)
        current = [v for v in status["versions"] if v["stages"] == ["ACSCurrent"]]
        assert [v["version_id"] for v in current] == [rotated["version_id"]]
        res = runner.invoke(cli, [*base, "--name-limit", "4", "rotate", app.name])
        assert res.exit_code == 1 and "UnsafeAccountName" in res.output
    finally:
        handle.close()


def test_cli_suffix_names_the_alternate_account(mariadb, tmp_path, cleanup_accounts):
    """``--suffix _clone`` (AWS's multi-user template's name) through a real MariaDB rotation;
    a bad suffix is refused before anything changes."""
    handle = start_store("embedded", tmp_path)
    try:
        app = make_app(mariadb, handle.store, "alternating", rich=False)
        cleanup_accounts.extend([app.account, app.account + "_clone"])
        base = ["--store", f"embedded:{handle.spec['path']}", "--name-limit", "80", "--grace", "0"]
        runner = CliRunner()
        before = handle.store.list_versions(app.name, include_deprecated=True)
        for bad in (["--suffix", ""], ["--suffix", "_rt'--"], ["--suffix", "_a.b"], ["--strategy", "single", "--suffix", "_clone"]):
            for command in ("plan", "rotate"):
                res = runner.invoke(cli, [*base, *bad, command, app.name])
                assert res.exit_code == 1, res.output
                assert res.output.startswith("Error: InvalidRotationSetup:") and "suffix" in res.output
        assert handle.store.list_versions(app.name, include_deprecated=True) == before
        assert not mariadb.execute("SELECT User FROM mysql.user WHERE User LIKE %s", (app.account + "\\_%",))

        res = runner.invoke(cli, [*base, "--suffix", "_clone", "plan", app.name])
        assert res.exit_code == 0 and f"account: {app.account}_clone@%" in res.output, res.output
        res = runner.invoke(cli, [*base, "--suffix", "_clone", "rotate", app.name])
        assert res.exit_code == 0, res.output
        assert app.current().account_name == app.account + "_clone" and app.can_login(app.current())
        # The environment variable, as the FC handler's: the next rotation goes back to the base name.
        res = runner.invoke(cli, [*base, "rotate", app.name], env={"ROTATION_SUFFIX": "_clone"})
        assert res.exit_code == 0, res.output
        assert app.current().account_name == app.account and app.can_login(app.current())
        assert not mariadb.execute("SELECT User FROM mysql.user WHERE User = %s", (app.account + "_rt",))
    finally:
        handle.close()
