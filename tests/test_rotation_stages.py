"""The engine speaks stage roles: the same rotations on a store whose labels are AWS's
(a real EmbeddedStore translated by AwsLabelledStore, which refuses any ACS label)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rotation_support import STRATEGIES, AwsLabelledStore, make_app, make_strategy

from rotation import LocalLock, LoginFailed, RotationTooSoon, Rotator, Scheduler
from secretclient.errors import InvalidParameter
from secretclient.model import AWS_STAGES, Stage
from secretclient.stores.embedded import EmbeddedStore


@pytest.fixture
def aws_store(tmp_path):
    inner = EmbeddedStore(tmp_path / "aws.db")
    try:
        yield AwsLabelledStore(inner)
    finally:
        inner.close()


def _labels(store, name):
    return {stage for v in store.list_versions(name) for stage in v.stages}


def test_the_wrapper_refuses_acs_labels(aws_store):
    aws_store.create_secret("s", "x", version_id="v1")
    with pytest.raises(InvalidParameter):
        aws_store.get_secret("s", stage="ACSCurrent")
    assert aws_store.get_secret("s", stage=Stage.CURRENT).stages == {"AWSCURRENT"}


@pytest.mark.parametrize("kind", STRATEGIES)
def test_rotate_plan_status_abort_on_aws_labels(mariadb, aws_store, cleanup_accounts, kind):
    app = make_app(mariadb, aws_store, kind, rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(aws_store, strategy=make_strategy(kind))
    assert rotator.labels == AWS_STAGES
    plan = rotator.plan(app.name)
    assert plan.ok and "AWSCURRENT: v0" in plan.lines()
    for _ in range(3):
        result = rotator.rotate(app.name)
        assert result.rotated
        current = aws_store.get_secret(app.name, stage=AWS_STAGES.current)
        assert current.version_id == result.version_id and app.can_login(current.db_credentials())
        assert _labels(aws_store, app.name) == {"AWSCURRENT", "AWSPREVIOUS"}
    # The seed's step by step flow, an abort and a resume.
    vid = rotator.step(app.name, "new")
    assert aws_store.get_secret(app.name, stage="AWSPENDING").version_id == vid
    status = rotator.status(app.name)
    assert status.pending_version_id == vid and f"AWSPENDING is {vid}" in "\n".join(status.lines())
    assert rotator.abort(app.name).reason == "AWSPENDING removed"
    vid = rotator.step(app.name, "new")
    for step in ("set", "test", "end"):
        rotator.step(app.name, step, vid)
    assert aws_store.get_secret(app.name).version_id == vid
    assert _labels(aws_store, app.name) == {"AWSCURRENT", "AWSPREVIOUS"}


def test_grace_check_reads_the_previous_role(mariadb, aws_store, cleanup_accounts):
    app = make_app(mariadb, aws_store, "alternating", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(aws_store, strategy=make_strategy("alternating", grace=timedelta(hours=1)), lock=LocalLock())
    rotator.rotate(app.name)
    with pytest.raises(RotationTooSoon, match="AWSPREVIOUS"):
        rotator.rotate(app.name)


def test_scheduler_and_abort_refusal_on_aws_labels(mariadb, aws_store, cleanup_accounts):
    app = make_app(mariadb, aws_store, "self", rich=False)
    cleanup_accounts.append(app.account)
    rotator = Rotator(aws_store, strategy=make_strategy("self"))
    scheduler = Scheduler(rotator, app.name, interval=timedelta(days=1))
    assert scheduler.due_at(app.name) > aws_store.get_secret(app.name).created
    vid = rotator.step(app.name, "new")
    rotator.step(app.name, "set", vid)
    with pytest.raises(LoginFailed, match="AWSCURRENT"):
        rotator.abort(app.name)
    assert scheduler.rotate_now().resumed
