"""Applications keep working while rotation.aws_lambda rotates: the credential search of
secretclient.db tries AWSPENDING / AWSPREVIOUS on the AWS store, so no query fails.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa
from aws_support import Setup, aws_env, multi, rotate, single, store  # noqa: F401 - fixtures

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
    stop = threading.Event()
    counts = [0] * 8
    failures: list[str] = []
    durations: list[float] = []

    def worker(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
                    if rng.random() < 0.2:
                        conn.invalidate()
                counts[i] += 1
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            stop.wait(0.3)
            t0 = time.monotonic()
            token, before = rotate(setup)
            durations.append(time.monotonic() - t0)
            setup.assert_rotated(token, before)
        stop.wait(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        engine.dispose()
        client.close()
    print(f"\n{kind}: {sum(counts)} queries by 8 threads through 5 rotations "
          f"({', '.join(f'{d:.2f}' for d in durations)} s each), {len(failures)} failed")
    assert failures == []
    assert all(counts)
