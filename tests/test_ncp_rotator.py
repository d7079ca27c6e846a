"""In-process Rotator over the NCP store (rotation.ncp.for_engine): the engine's rotation on NCP's
chain without the service's job, resumable from a pending value left behind."""

from __future__ import annotations

import json
import time

from ncp_harness import CdbAccount

from rotation import Rotator, SingleUserStrategy
from rotation.ncp import for_engine
from secretclient.model import PasswordPolicy, Stage


def test_in_process_rotations_on_the_chain(ncp_emulator, mariadb):
    emu = ncp_emulator
    account = CdbAccount(mariadb, emu).create(privileged=False)
    first = account.active()
    with emu.store() as store:
        rotator = Rotator(for_engine(store), strategy=SingleUserStrategy(password_policy=PasswordPolicy(length=24)))
        one = rotator.rotate(account.secret_id)
        assert one.rotated and not one.resumed
        second = account.active()
        assert account.stage("previous") == first and account.stage("pending") is None
        assert {k for k in second if second[k] != first[k]} == {"cdbPassword"}
        assert account.can_login(second) and not account.can_login(first)
        # A pending value left by an interrupted rotation is resumed, never replaced.
        left = {**second, "cdbPassword": "left-behind-" + "x" * 12}
        store.put_secret(account.secret_id, None, json.dumps(left), stages=[Stage.PENDING])
        two = rotator.rotate(account.secret_id)
        assert two.resumed and account.active() == left and account.can_login(left)
        assert account.stage("previous") == second
    assert emu.calls["StartRotationJob"] == 0  # no job: the REST API only


def test_scheduler_rotates_when_due(mariadb):
    from datetime import UTC, datetime, timedelta

    from rotation import Scheduler
    from secretclient.testing.ncp_emulator import NcpEmulator

    now = [time.time()]  # one clock for the service, its client and the rotator: 31 days pass for all
    with NcpEmulator(clock=lambda: now[0]) as emu, emu.store(clock=lambda: now[0]) as store:
        account = CdbAccount(mariadb, emu).create(privileged=False)
        before = account.active()
        rotator = Rotator(for_engine(store), strategy=SingleUserStrategy(password_policy=PasswordPolicy(length=24)),
                          clock=lambda: datetime.fromtimestamp(now[0], UTC))
        scheduler = Scheduler(rotator, account.secret_id, interval=timedelta(days=30))
        assert scheduler.run_pending() == []  # the active value was set just now
        assert account.active() == before
        now[0] += timedelta(days=31).total_seconds()
        [result] = scheduler.run_pending()
        assert result.rotated and account.active()["cdbPassword"] != before["cdbPassword"]
        assert account.can_login(account.active())


def test_rotation_command_with_store_ncp(ncp_emulator, mariadb):
    from click.testing import CliRunner

    from rotation.cli import main

    emu = ncp_emulator
    account = CdbAccount(mariadb, emu).create(privileged=False)
    before = account.active()
    base = ["--store", "ncp", "--endpoint", emu.endpoint, "--access-key-id", emu.access_key,
            "--access-key-secret", emu.secret_key, "--strategy", "single", "--password-length", "20"]
    result = CliRunner().invoke(main, [*base, "rotate", account.secret_id])
    assert result.exit_code == 0, result.output
    after = account.active()
    assert after["cdbPassword"] != before["cdbPassword"] and account.can_login(after)
    assert after["cdbPassword"] not in result.output
    status = CliRunner().invoke(main, [*base, "status", account.secret_id])
    assert status.exit_code == 0, status.output
