"""stats(), observer events and logging: complete, and never carrying a secret value."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from secretclient.backoff import Backoff
from secretclient.client import SecretClient
from secretclient.errors import SecretNotFound, StoreUnavailable
from secretclient.stats import EVENT_KINDS, ClientEvent, ClientStats
from secretclient.testing import ManualClock, ManualExecutor

VALUES = ("hunter2-first-value", "hunter2-second-value")


class Recorder:
    def __init__(self) -> None:
        self.events: list[ClientEvent] = []

    def on_event(self, event: ClientEvent) -> None:
        self.events.append(event)


def run_everything(kms, clock, observer) -> tuple[SecretClient, list[BaseException]]:
    """Drive a client through every path: miss, hit, refresh-ahead, describe, version change,
    subscriber, outage with stale serves, error past max_stale, not found."""
    store = kms.backing_store
    store.create_secret("db", VALUES[0], version_id="v1", rotation_interval=timedelta(days=1))
    executor = ManualExecutor()
    client = SecretClient(
        kms.store(), clock=clock, executor=executor, observer=observer,
        ttl=100, max_stale=50, backoff=Backoff(base=1, cap=1),
        rotation_delay=0,  # a new version is described at once, not spread
    )
    errors: list[BaseException] = []
    first = client.get("db")
    assert client.get("db") is first and first.text == VALUES[0]
    assert not any(v in repr(first) or v in str(first) for v in VALUES)
    executor.run_pending()
    client.subscribe("db", lambda s: None)
    store.put_secret("db", "v2", VALUES[1])
    clock.advance(85)
    client.get("db")
    executor.run_pending()
    executor.run_pending()
    with kms.faults.outage():
        clock.advance(120)
        client.get("db")
        clock.advance(60)
        try:
            client.get("db")
        except StoreUnavailable as exc:
            errors.append(exc)
    try:
        client.get("nope")
    except SecretNotFound as exc:
        errors.append(exc)
    return client, errors


def test_stats_count_every_path(kms_emulator):
    clock = ManualClock()
    client, errors = run_everything(kms_emulator, clock, None)
    stats = client.stats()
    assert len(errors) == 2
    assert stats.hits == 2 and stats.misses == 4
    assert stats.store_calls == kms_emulator.calls["GetSecretValue"] == 5
    assert stats.describe_calls == kms_emulator.calls["DescribeSecret"] == 2
    assert stats.refreshes == 1 and stats.version_changes == 1
    assert stats.stale_serves == 1 and stats.store_errors == 2
    assert stats.not_found == 1 and stats.caller_errors == 2
    assert stats.size == 1
    assert stats.current_staleness == pytest.approx(80)  # 180 s after fetch, TTL 100
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.hits = 0  # type: ignore[misc]
    assert isinstance(stats, ClientStats)


def test_observer_sees_slow_path_events_without_values(kms_emulator):
    recorder = Recorder()
    client, _ = run_everything(kms_emulator, ManualClock(), recorder)
    kinds = {e.kind for e in recorder.events}
    assert kinds == EVENT_KINDS
    calls = [e for e in recorder.events if e.kind == "store_call"]
    assert len(calls) == client.stats().store_calls and all(e.duration is not None for e in calls)
    assert {e.error_code for e in calls} == {None, "ServiceUnavailableTemporary", "Forbidden.ResourceNotFound"}
    assert [e.staleness for e in recorder.events if e.kind == "stale_serve"] == [pytest.approx(20)]
    text = repr(recorder.events)
    assert not any(v in text for v in VALUES)


def test_a_failing_observer_does_not_break_reads(kms_emulator, caplog):
    class Broken:
        def on_event(self, event: ClientEvent) -> None:
            raise ValueError("metrics backend down")

    kms_emulator.backing_store.create_secret("db", "x", version_id="v1")
    client = SecretClient(kms_emulator.store(), observer=Broken(), executor=ManualExecutor())
    with caplog.at_level(logging.ERROR, logger="secretclient.client"):
        assert client.get_text("db") == "x"
    assert "ValueError" in caplog.text


def test_logs_reprs_and_errors_never_contain_values(kms_emulator, caplog):
    recorder = Recorder()
    with caplog.at_level(logging.DEBUG, logger="secretclient"):
        client, errors = run_everything(kms_emulator, ManualClock(), recorder)
    assert caplog.records, "the scenario should log"
    assert {r.levelname for r in caplog.records} >= {"DEBUG", "INFO", "WARNING", "ERROR"}
    texts = [caplog.text, repr(client), repr(client.stats()), repr(recorder.events)]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    for text in texts:
        for value in VALUES:
            assert value not in text
