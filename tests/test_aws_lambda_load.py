"""Applications keep working while rotation.aws_lambda rotates: the credential search of
secretclient.db tries AWSPENDING / AWSPREVIOUS on the AWS store, so no query fails.
"""

from __future__ import annotations

import time

import pytest
from aws_support import Setup, aws_env, multi, rotate, single, store  # noqa: F401 - fixtures
from db_support import querying

from secretclient.client import SecretClient
from secretclient.db.sqlalchemy import create_engine


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_eight_threads_query_through_five_rotations_without_a_failure(kind, request):
    """8 threads query MariaDB through create_engine(client=SecretClient(AwsSecretsManagerStore)),
    dropping a connection after one query in five (new logins all the time), while
    lambda_handler rotates the secret 5 times."""
    setup: Setup = request.getfixturevalue(kind)
    moto = request.getfixturevalue("aws_env")
    # The application learns of a rotation within its TTL (here 1 s: the Lambda runs elsewhere and
    # tells no client); its engine then rolls pooled sessions of the replaced version over, and the
    # next rotation's drain check waits for the AWSPREVIOUS account's last sessions to end.
    request.getfixturevalue("monkeypatch").setenv("ROTATION_DRAIN_WAIT", "30")
    client = SecretClient(moto.store(), close_store=True, ttl=1)
    engine = create_engine("mysql+pymysql:///", secret=setup.name, client=client,
                           pool_size=8, max_overflow=8, pool_timeout=20)
    durations: list[float] = []
    try:
        with querying(engine, 8) as load:
            for _ in range(5):
                time.sleep(0.3)
                t0 = time.monotonic()
                token, before = rotate(setup)
                durations.append(time.monotonic() - t0)
                setup.assert_rotated(token, before)
            time.sleep(0.3)
    finally:
        engine.dispose()
        client.close()
    print(f"\n{kind}: {load.queries} queries by 8 threads through 5 rotations "
          f"({', '.join(f'{d:.2f}' for d in durations)} s each), {len(load.failures)} failed")
    assert load.failures == []
    assert all(load.per_thread)
