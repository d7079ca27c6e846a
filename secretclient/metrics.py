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
"""

from __future__ import annotations

import bisect
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .db.connector import live_connectors
from .errors import InvalidParameter
from .model import stage_labels

if TYPE_CHECKING:
    from .client import SecretClient

__all__ = ["DURATION_BUCKETS", "Metrics", "instrument"]

#: ``rotation_duration_seconds`` buckets: a rotation takes from tens of milliseconds to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Rotation event kind -> rotation_runs_total outcome.
_OUTCOMES = {"promoted": "success", "failed": "failure", "skipped": "skipped", "aborted": "aborted"}
# One collector per registry: series of several clients are summed, never registered twice.
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


class Metrics:
    """The collector :func:`instrument` registers: clients and rotators it watches, and the
    counts pushed to it. Thread-safe."""

    def __init__(self, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._lock = threading.Lock()
        self._clients: weakref.WeakSet[SecretClient] = weakref.WeakSet()
        self._wall_clock = wall_clock
        self._runs: Counter[tuple[str, str]] = Counter()
        self._last_success: dict[str, float] = {}
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self._duration_sum = 0.0
        self._sessions: dict[tuple[str, str, str], int] = {}

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

    # -- what Prometheus reads -----------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        p = _prometheus()
        with self._lock:
            clients = list(self._clients)
            runs, last = dict(self._runs), dict(self._last_success)
            buckets, total_sum = list(self._buckets), self._duration_sum
            sessions = dict(self._sessions)

        reads = p.CounterMetricFamily("secretclient_cache_reads", "Reads of SecretClient by result.",
                                      labels=["result"])
        requests = p.CounterMetricFamily("secretclient_store_requests", "Store calls by SecretClient.",
                                         labels=["action", "outcome"])
        versions = p.GaugeMetricFamily("secretclient_secret_version_info",
                                       "1 for the version a client holds for a secret's stage.",
                                       labels=["secret", "stage", "version_id"])
        age = p.GaugeMetricFamily("secretclient_secret_age_seconds",
                                  "Seconds since the CURRENT version held was created.", labels=["secret"])
        totals: Counter[str] = Counter()
        held: dict[tuple[str, str, str], int] = {}
        oldest: dict[str, float] = {}
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
                    oldest[v.name] = max(oldest.get(v.name, 0.0), (now - created).total_seconds())
        for result, field in (("hit", "hits"), ("miss", "misses"), ("stale", "stale_serves"),
                              ("error", "caller_errors")):
            reads.add_metric([result], totals[field])
        read_errors = totals["store_errors"] - totals["describe_errors"]
        requests.add_metric(["GetSecretValue", "success"],
                            totals["store_calls"] - read_errors - totals["store_not_found"])
        requests.add_metric(["GetSecretValue", "not_found"], totals["store_not_found"])
        requests.add_metric(["GetSecretValue", "error"], read_errors)
        requests.add_metric(["DescribeSecret", "success"], totals["describe_calls"] - totals["describe_errors"])
        requests.add_metric(["DescribeSecret", "error"], totals["describe_errors"])
        for labels, one in sorted(held.items()):
            versions.add_metric(list(labels), one)
        for name, seconds in sorted(oldest.items()):
            age.add_metric([name], seconds)
        yield from (reads, requests, versions, age)

        rejected: Counter[tuple[str, str]] = Counter()
        recovered: Counter[tuple[str, str]] = Counter()
        watched = {id(c) for c in clients}
        for connector in live_connectors():
            if id(connector.client) not in watched:
                continue
            for (field, stage), count in connector.stage_stats().items():
                (rejected if field == "rejected" else recovered)[(connector.secret, stage)] += count

        yield _labelled(p.CounterMetricFamily, "secretclient_db_logins_rejected",
                        "Logins the database rejected, by the secret and stage whose credentials were sent.",
                        ["secret", "stage"], rejected)
        yield _labelled(p.CounterMetricFamily, "secretclient_db_credential_recoveries",
                        "Connects that succeeded with another stage's credentials after a rejection.",
                        ["secret", "stage"], recovered)
        yield _labelled(p.CounterMetricFamily, "rotation_runs", "Rotations by outcome.",
                        ["secret", "outcome"], runs)
        yield _labelled(p.GaugeMetricFamily, "rotation_last_success_timestamp_seconds",
                        "Unix time of the last successful rotation.", ["secret"],
                        {(name,): at for name, at in last.items()})
        yield _labelled(p.GaugeMetricFamily, "rotation_account_sessions",
                        "Sessions logged in as a secret's account, by stage.",
                        ["secret", "account", "stage"], sessions)
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


def _labelled(family: Any, name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> Any:
    metric = family(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        metric.add_metric(list(key), value)
    return metric


def instrument(client: SecretClient | None = None, rotator: Any = None, registry: Any = None) -> Metrics:
    """Publish ``client``'s and ``rotator``'s metrics in ``registry`` (default: prometheus_client's
    global ``REGISTRY``). Call it once per client and rotator; every call for one registry
    shares one collector, which is returned (it also takes counts from the connection layer)."""
    prometheus = _prometheus()
    registry = prometheus.REGISTRY if registry is None else registry
    with _LOCK:
        metrics = _BY_REGISTRY.get(registry)
        if metrics is None:
            metrics = _BY_REGISTRY[registry] = Metrics()
            registry.register(metrics)
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
