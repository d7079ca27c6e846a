"""Prometheus metrics for clients and rotators, read at scrape time (``pip install
secretclient-rotation[metrics]``)::

    from secretclient.metrics import instrument
    instrument(client=client, rotator=rotator)          # the default registry
    # prometheus_client.start_http_server(9100), or your framework's /metrics

Nothing runs on the read path: client metrics come from :meth:`SecretClient.stats` and
:meth:`SecretClient.cached_versions` when Prometheus scrapes; rotation metrics from the
rotator's events, counted as they happen. The metric names are a public contract (dashboards
and alert rules are built on them, see docs/operations.md); none carries a secret value.

``secretclient_db_logins_rejected_total`` and ``secretclient_db_credential_recoveries_total``
are read at scrape time from the counters of every :class:`~secretclient.db.Connector` (each
engine and connection of :mod:`secretclient.db` has one) built on a watched client.
``rotation_account_sessions`` comes from the rotator's ``sessions`` events (each
:meth:`rotation.Rotator.status` that counts sessions) and from a rotation refused with
:class:`rotation.AccountInUse`; a promotion clears the secret's series (its accounts changed
stages) until they are counted again.

:func:`instrument_opentelemetry` publishes the same metrics through OpenTelemetry (extra
``opentelemetry``), from the same :class:`Metrics`.
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .db.connector import live_connectors
from .errors import InvalidParameter
from .model import stage_labels

if TYPE_CHECKING:
    from .client import SecretClient

__all__ = ["DURATION_BUCKETS", "Family", "Metrics", "instrument", "instrument_opentelemetry"]

#: ``rotation_duration_seconds`` buckets: a rotation takes from tens of milliseconds to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Rotation event kind -> rotation_runs_total outcome.
_OUTCOMES = {"promoted": "success", "failed": "failure", "skipped": "skipped", "aborted": "aborted"}
# One collector per Prometheus registry or OpenTelemetry meter provider: series of several
# clients are summed, never registered twice.
_BY_REGISTRY: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _prometheus() -> Any:
    """``prometheus_client.core`` (metric families and ``REGISTRY``), or a clear error."""
    try:
        import prometheus_client.core
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidParameter(
            "metrics need the 'prometheus_client' package: pip install 'secretclient-rotation[metrics]'"
        ) from None
    return prometheus_client.core


@dataclass(frozen=True, slots=True)
class Family:
    """One metric's samples: ``name`` (counters without ``_total``), ``kind`` (``counter`` or
    ``gauge``), help text, label names and ``{label values: value}``."""

    name: str
    kind: str
    doc: str
    labels: tuple[str, ...]
    values: Mapping[tuple[str, ...], float]


class Metrics:
    """What :func:`instrument` registers (a Prometheus collector) and
    :func:`instrument_opentelemetry` observes: the clients it watches and what rotation events
    told it. Thread-safe."""

    def __init__(self, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[SecretClient] = weakref.WeakSet()
        self._wall_clock = wall_clock
        self._runs: Counter[tuple[str, str]] = Counter()
        self._last_success: dict[str, float] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self._duration_sum = 0.0
        self._sessions: dict[tuple[str, str, str], int] = {}
        #: Called with each counted rotation event (OpenTelemetry's histogram records there).
        self.duration_sink: Callable[[Any], None] | None = None

    # -- what feeds it -------------------------------------------------------------------

    def watch_client(self, client: SecretClient) -> None:
        with self._lock:
            self._clients.add(client)

    def on_rotation_event(self, event: Any) -> None:
        """A rotator listener (:class:`rotation.events.RotationEvent`)."""
        rows = getattr(event, "sessions", ())
        if event.kind == "sessions":  # a full count of the secret's accounts: it replaces the last one
            self._set_sessions(event.secret_name, rows, replace=True)
            return
        if rows:  # AccountInUse: the account that was to be reset
            self._set_sessions(event.secret_name, rows, replace=False)
        outcome = _OUTCOMES.get(event.kind)
        if outcome is None:
            return
        if self.duration_sink is not None:
            self.duration_sink(event)
        with self._lock:
            self._runs[(event.secret_name, outcome)] += 1
            if event.kind == "promoted":
                # its accounts changed stages: no count until the next one
                self._sessions = {k: n for k, n in self._sessions.items() if k[0] != event.secret_name}
                at = event.at.timestamp() if isinstance(event.at, datetime) else time.time()
                self._last_success[event.secret_name] = at
                if event.duration is not None:
                    self._buckets[bisect.bisect_left(DURATION_BUCKETS, event.duration)] += 1
                    self._duration_sum += event.duration

    def _set_sessions(self, secret: str, rows: Any, *, replace: bool) -> None:
        counted: Counter[tuple[str, str, str]] = Counter()
        for stage, account, _host, count in rows:
            counted[(secret, account, stage)] += count
        with self._lock:
            if replace:
                self._sessions = {k: n for k, n in self._sessions.items() if k[0] != secret}
            self._sessions.update(counted)

    # -- what exporters read -------------------------------------------------------------

    def families(self) -> list[Family]:
        """Every counter and gauge now (the histogram: :meth:`durations`), computed from the
        watched clients' and connectors' counters and the rotation events received."""
        with self._lock:
            clients = list(self._clients)
            runs, last = dict(self._runs), dict(self._last_success)
            sessions = dict(self._sessions)
        totals: Counter[str] = Counter()
        held: dict[tuple[str, ...], float] = {}
        oldest: dict[tuple[str, ...], float] = {}
        now = self._wall_clock()
        for client in clients:
            s = client.stats()
            for field in ("hits", "misses", "stale_serves", "caller_errors", "store_calls", "store_errors",
                          "store_not_found", "describe_calls", "describe_errors"):
                totals[field] += getattr(s, field)
            current = stage_labels(client.store).current
            for v in client.cached_versions():
                held[(v.name, v.stage, v.version_id)] = 1
                if v.stage == current and v.created is not None:
                    created = v.created if v.created.tzinfo else v.created.replace(tzinfo=UTC)
                    oldest[(v.name,)] = max(oldest.get((v.name,), 0.0), (now - created).total_seconds())
        reads: dict[tuple[str, ...], float] = {(result,): float(totals[field]) for result, field in (
            ("hit", "hits"), ("miss", "misses"), ("stale", "stale_serves"), ("error", "caller_errors"))}
        read_errors = totals["store_errors"] - totals["describe_errors"]
        requests: dict[tuple[str, ...], float] = {
            ("GetSecretValue", "success"): totals["store_calls"] - read_errors - totals["store_not_found"],
            ("GetSecretValue", "not_found"): totals["store_not_found"],
            ("GetSecretValue", "error"): read_errors,
            ("DescribeSecret", "success"): totals["describe_calls"] - totals["describe_errors"],
            ("DescribeSecret", "error"): totals["describe_errors"],
        }
        rejected: Counter[tuple[str, ...]] = Counter()
        recovered: Counter[tuple[str, ...]] = Counter()
        watched = {id(c) for c in clients}
        for connector in live_connectors():
            if id(connector.client) in watched:
                for (field, stage), count in connector.stage_stats().items():
                    (rejected if field == "rejected" else recovered)[(connector.secret, stage)] += count
        return [
            Family("secretclient_cache_reads", "counter", "Reads of SecretClient by result.", ("result",), reads),
            Family("secretclient_store_requests", "counter", "Store calls by SecretClient.",
                   ("action", "outcome"), requests),
            Family("secretclient_secret_version_info", "gauge",
                   "1 for the version a client holds for a secret's stage.", ("secret", "stage", "version_id"), held),
            Family("secretclient_secret_age_seconds", "gauge",
                   "Seconds since the CURRENT version held was created.", ("secret",), oldest),
            Family("secretclient_db_logins_rejected", "counter",
                   "Logins the database rejected, by the secret and stage whose credentials were sent.",
                   ("secret", "stage"), dict(rejected)),
            Family("secretclient_db_credential_recoveries", "counter",
                   "Connects that succeeded with another stage's credentials after a rejection.",
                   ("secret", "stage"), dict(recovered)),
            Family("rotation_runs", "counter", "Rotations by outcome.", ("secret", "outcome"),
                   {k: float(n) for k, n in runs.items()}),
            Family("rotation_last_success_timestamp_seconds", "gauge", "Unix time of the last successful rotation.",
                   ("secret",), {(name,): at for name, at in last.items()}),
            Family("rotation_account_sessions", "gauge", "Sessions logged in as a secret's account, by stage.",
                   ("secret", "account", "stage"), {k: float(n) for k, n in sessions.items()}),
        ]

    def durations(self) -> tuple[list[int], float]:
        """``rotation_duration_seconds``: counts per bucket of :data:`DURATION_BUCKETS` (+Inf last,
        not cumulative) and their sum."""
        with self._lock:
            return list(self._buckets), self._duration_sum

    def collect(self) -> Iterator[Any]:
        """The Prometheus collector protocol."""
        p = _prometheus()
        kinds = {"counter": p.CounterMetricFamily, "gauge": p.GaugeMetricFamily}
        for family in self.families():
            metric = kinds[family.kind](family.name, family.doc, labels=list(family.labels))
            for key, value in sorted(family.values.items()):
                metric.add_metric(list(key), value)
            yield metric
        buckets, total_sum = self.durations()
        cumulative, running = [], 0
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), buckets, strict=True):
            running += count
            cumulative.append((_bucket_label(bound), running))
        yield p.HistogramMetricFamily("rotation_duration_seconds", "Duration of successful rotations.",
                                      buckets=cumulative, sum_value=total_sum)

    def describe(self) -> list[Any]:
        """No samples at registration (the client may not have read anything yet)."""
        return []


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def instrument(client: SecretClient | None = None, rotator: Any = None, registry: Any = None) -> Metrics:
    """Publish ``client``'s and ``rotator``'s metrics in ``registry`` (default: prometheus_client's
    global ``REGISTRY``). Call it once per client and rotator; every call for one registry
    shares one collector, which is returned."""
    prometheus = _prometheus()
    registry = prometheus.REGISTRY if registry is None else registry
    with _LOCK:
        metrics = _BY_REGISTRY.get(registry)
        if metrics is None:
            metrics = _BY_REGISTRY[registry] = Metrics()
            registry.register(metrics)
    return _watch(metrics, client, rotator)


def instrument_opentelemetry(client: SecretClient | None = None, rotator: Any = None,
                             meter_provider: Any = None) -> Metrics:
    """The same metrics as OpenTelemetry instruments (``pip install
    'secretclient-rotation[opentelemetry]'``) of ``meter_provider`` (default: the global one):
    observable counters and gauges read at collection time, and ``rotation_duration_seconds``
    recorded as each rotation is promoted. Counters are named without ``_total`` (OpenTelemetry's
    Prometheus exporter adds it). Call it once per client and rotator; calls for one provider
    share the returned :class:`Metrics`."""
    try:
        from opentelemetry import metrics as otel
    except ImportError:  # pragma: no cover - depends on the environment
        raise InvalidParameter(
            "OpenTelemetry metrics need the 'opentelemetry-api' package: "
            "pip install 'secretclient-rotation[opentelemetry]'"
        ) from None
    provider = otel.get_meter_provider() if meter_provider is None else meter_provider
    with _LOCK:
        metrics = _BY_REGISTRY.get(provider)
        if metrics is None:
            metrics = _BY_REGISTRY[provider] = Metrics()
            meter = provider.get_meter("secretclient")
            for family in metrics.families():
                create = meter.create_observable_counter if family.kind == "counter" else meter.create_observable_gauge
                create(family.name, callbacks=[_observer(metrics, family.name, family.labels, otel.Observation)],
                       description=family.doc)
            histogram = meter.create_histogram(
                "rotation_duration_seconds", description="Duration of successful rotations.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))

            def record(event: Any) -> None:
                if event.kind == "promoted" and event.duration is not None:
                    histogram.record(event.duration)

            metrics.duration_sink = record
    return _watch(metrics, client, rotator)


def _watch(metrics: Metrics, client: SecretClient | None, rotator: Any) -> Metrics:
    if client is not None:
        if not callable(getattr(client, "cached_versions", None)):
            raise InvalidParameter("client must be a SecretClient")
        metrics.watch_client(client)
    if rotator is not None:
        add = getattr(rotator, "add_listener", None)
        if not callable(add):
            raise InvalidParameter("rotator must be a rotation.Rotator (it has no add_listener method)")
        add(metrics.on_rotation_event)
    return metrics


def _observer(metrics: Metrics, name: str, labels: tuple[str, ...], observation: Any) -> Callable[[Any], Any]:
    """An OpenTelemetry callback yielding family ``name``'s samples (computed at collection)."""

    def observe(_options: Any) -> Iterator[Any]:
        for family in metrics.families():
            if family.name == name:
                for key, value in family.values.items():
                    yield observation(value, dict(zip(labels, key, strict=True)))

    return observe
