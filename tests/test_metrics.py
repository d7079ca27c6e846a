"""secretclient.metrics: every public metric name after reads, a rejected login that recovers,
and a rotation (a real Rotator on MariaDB); values read at scrape time; no value leaks."""

from __future__ import annotations

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from rotation_support import make_app, make_strategy, start_store  # noqa: E402

from rotation import AccountInUse, Rotator  # noqa: E402
from secretclient import EmbeddedStore, SecretClient, SecretNotFound  # noqa: E402
from secretclient.db import Connector  # noqa: E402
from secretclient.metrics import instrument  # noqa: E402


NAMES = [
    "secretclient_cache_reads_total", "secretclient_store_requests_total", "secretclient_secret_version_info",
    "secretclient_secret_age_seconds", "secretclient_db_logins_rejected_total",
    "secretclient_db_credential_recoveries_total", "rotation_runs_total", "rotation_duration_seconds",
    "rotation_last_success_timestamp_seconds", "rotation_account_sessions",
]


def sample(registry, name, **labels):
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_client_metrics_are_read_at_scrape_time():
    registry = prometheus_client.CollectorRegistry()
    store = EmbeddedStore()
    store.create_secret("db", "s3cret-value-xyz", version_id="v1")
    client = SecretClient(store, rotation_aware=False)
    instrument(client=client, registry=registry)
    client.get("db")
    client.get("db")
    with pytest.raises(SecretNotFound):
        client.get("missing")
    assert sample(registry, "secretclient_cache_reads_total", result="hit") == 1
    assert sample(registry, "secretclient_cache_reads_total", result="miss") == 2
    assert sample(registry, "secretclient_cache_reads_total", result="error") == 1
    assert sample(registry, "secretclient_store_requests_total", action="GetSecretValue", outcome="success") == 1
    assert sample(registry, "secretclient_store_requests_total", action="GetSecretValue", outcome="not_found") == 1
    assert sample(registry, "secretclient_secret_version_info", secret="db", stage="ACSCurrent", version_id="v1") == 1
    assert sample(registry, "secretclient_secret_age_seconds", secret="db") >= 0
    # a second client in the same registry is summed, not registered twice
    other = SecretClient(store, rotation_aware=False)
    instrument(client=other, registry=registry)
    other.get("db")
    assert sample(registry, "secretclient_cache_reads_total", result="miss") == 3
    assert b"s3cret-value-xyz" not in prometheus_client.generate_latest(registry)


def test_every_name_after_a_recovered_login_and_a_rotation(mariadb, tmp_path, cleanup_accounts):
    handle = start_store("embedded", tmp_path)
    try:
        store = handle.store
        app = make_app(mariadb, store, "self", account="metricsuser")
        cleanup_accounts.append("metricsuser")
        registry = prometheus_client.CollectorRegistry()
        client = SecretClient(store, rotation_aware=False)
        # no client=: the engine's cache keeps the old password, so its next login is rejected
        rotator = Rotator(store, strategy=make_strategy("self"))
        instrument(client=client, rotator=rotator, registry=registry)
        connector = Connector(app.name, client)
        connector.connect()[0].close()
        old_password = app.current().account_password
        result = rotator.rotate(app.name)
        assert result.rotated
        conn, creds = connector.connect()  # rejected with the cached CURRENT, recovers from the store
        conn.close()
        assert creds.version_id == result.version_id
        status = rotator.status(app.name)  # counts the sessions per account and stage
        assert status.sessions
        text = prometheus_client.generate_latest(registry).decode()
        for name in NAMES:
            assert f"\n{name}" in text or text.startswith(name), name
        assert sample(registry, "rotation_runs_total", secret=app.name, outcome="success") == 1
        assert sample(registry, "rotation_duration_seconds_count") == 1
        assert sample(registry, "rotation_last_success_timestamp_seconds", secret=app.name) > 0
        assert sample(registry, "secretclient_secret_version_info", secret=app.name, stage="ACSCurrent",
                      version_id=result.version_id) == 1
        assert sample(registry, "secretclient_db_logins_rejected_total", secret=app.name, stage="ACSCurrent") == 1
        assert sample(registry, "secretclient_db_credential_recoveries_total", secret=app.name,
                      stage="ACSCurrent") == 1
        assert registry.get_sample_value("rotation_account_sessions", {
            "secret": app.name, "account": "metricsuser", "stage": "ACSCurrent"}) is not None
        for password in (old_password, app.current().account_password):
            assert password not in text
        # another client's connectors are not this registry's
        Connector(app.name, SecretClient(store, rotation_aware=False)).connect()[0].close()
        assert sample(registry, "secretclient_db_logins_rejected_total", secret=app.name, stage="ACSCurrent") == 1
    finally:
        handle.close()


def test_sessions_on_the_account_to_reset_are_published_until_a_promotion(mariadb, tmp_path, cleanup_accounts):
    handle = start_store("embedded", tmp_path)
    try:
        store = handle.store
        app = make_app(mariadb, store, "alternating", rich=False)
        cleanup_accounts.append(app.account)
        registry = prometheus_client.CollectorRegistry()
        rotator = Rotator(store, strategy=make_strategy("alternating"))
        instrument(rotator=rotator, registry=registry)
        rotator.rotate(app.name)  # app -> app_rt: app is PREVIOUS now
        previous = store.get_secret(app.name, stage="ACSPrevious").db_credentials()
        session = app.login(previous)  # an instance still on the old account
        try:
            with pytest.raises(AccountInUse):
                rotator.rotate(app.name)
            labels = {"secret": app.name, "account": app.account, "stage": "ACSPrevious"}
            assert sample(registry, "rotation_account_sessions", **labels) == 1
            assert sample(registry, "rotation_runs_total", secret=app.name, outcome="failure") == 1
            rotator.status(app.name)
            assert sample(registry, "rotation_account_sessions", **labels) == 1
        finally:
            session.close()
        rotator.status(app.name)  # the session ended: counted again, 0
        assert registry.get_sample_value("rotation_account_sessions", labels) == 0
        rotator.rotate(app.name)  # its accounts changed stages: no stale count stays
        text = prometheus_client.generate_latest(registry).decode()
        assert "rotation_account_sessions{" not in text
        assert previous.account_password not in text
    finally:
        handle.close()


def test_the_documented_dashboard_and_alerts_use_only_published_names():
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    dashboard = json.loads(re.search(r"```json\n(.*?)```", doc, re.S).group(1))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += re.findall(r"expr: (.*)", re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))
    used = {m for e in exprs for m in re.findall(r"\b((?:secretclient|rotation)_[a-z_]+)", e)}
    published = set(NAMES) | {"rotation_duration_seconds_bucket"}
    assert used and used <= published, used - published


def test_opentelemetry_gets_the_same_metrics_from_the_same_observer(mariadb, tmp_path, cleanup_accounts):
    sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from secretclient.metrics import instrument_opentelemetry

    reader = InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    handle = start_store("embedded", tmp_path)
    try:
        store = handle.store
        app = make_app(mariadb, store, "self", account="otelmetricsuser")
        cleanup_accounts.append("otelmetricsuser")
        client = SecretClient(store, rotation_aware=False)
        rotator = Rotator(store, strategy=make_strategy("self"))
        metrics = instrument_opentelemetry(client=client, rotator=rotator, meter_provider=provider)
        assert instrument_opentelemetry(client=client, meter_provider=provider) is metrics  # one per provider
        connector = Connector(app.name, client)
        connector.connect()[0].close()
        rotator.rotate(app.name)
        connector.connect()[0].close()  # rejected, recovered
        rotator.status(app.name)
        points = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points[metric.name] = list(metric.data.data_points)
        published = {name.removesuffix("_total") for name in NAMES}
        assert published <= set(points), published - set(points)

        def value(name, **attrs):
            return sum(p.value for p in points[name] if all(p.attributes.get(k) == v for k, v in attrs.items()))

        assert value("secretclient_db_logins_rejected", secret=app.name, stage="ACSCurrent") == 1
        assert value("secretclient_db_credential_recoveries", secret=app.name, stage="ACSCurrent") == 1
        assert value("rotation_runs", secret=app.name, outcome="success") == 1
        assert points["rotation_duration_seconds"][0].count == 1
        assert value("secretclient_cache_reads", result="miss") >= 1
        password = app.current().account_password
        assert all(password not in str(p.attributes) for ps in points.values() for p in ps)
    finally:
        provider.shutdown()
        handle.close()
