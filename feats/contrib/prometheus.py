"""Prometheus metrics of a feats App, read from ``app.status`` when Prometheus scrapes.

``FeatsCollector(app)`` is a prometheus_client collector (the ``prometheus`` extra): nothing
runs between scrapes but two listeners that keep a propagation histogram and, if asked,
evaluation counts. Register it once per registry::

    prometheus_client.REGISTRY.register(FeatsCollector(app))

``exposition(registry, accept)`` renders a registry as the scrape's body and content type,
for any web framework to serve at a path.

Multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, gunicorn workers): prometheus_client
aggregates only its own metric objects there, never custom collectors, so a scrape shows the
figures of the one process that answered it. Every process's App has its own snapshot and
status, so give each worker its own scrape target (or registry on its own port) to see all
of them. Evaluation counts are plain per-process counters as well, not aggregated.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

import feats
import feats.aio
from feats import Evaluation, Status

__all__ = ["PROPAGATION_BUCKETS", "STATES", "FeatsCollector", "exposition"]

STATES = ("initializing", "live", "stale", "closed")
PROPAGATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds from a change being written to this App applying it."""


def _written_at(version: str) -> float | None:
    """A version is a stream id, ``<ms>-<seq>``: the time the store wrote it."""
    ms, _, _ = version.partition("-")
    try:
        return int(ms) / 1000
    except ValueError:
        return None


class _Histogram:
    """Cumulative-on-read bucket counts, updated from the tail's thread."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.bounds, value)] += 1
            self.sum += value

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return cumulative, total


class FeatsCollector:
    """The App's configuration version and age, state, lag, outages, reloads, re-seeds,
    skipped records, exposures and propagation latency; evaluation counts if asked.

    ``evaluations=True`` adds ``feats_evaluations_total{feature, implementation}``: it
    registers an evaluation listener, so each evaluation also costs an ``explain()``.
    ``labels`` are added to every sample (e.g. ``{"namespace": "shop"}``); no label ever
    holds a user identifier. ``close()`` removes the listeners.
    """

    def __init__(
        self,
        app: feats.App | feats.aio.App,
        *,
        prefix: str = "feats",
        labels: Mapping[str, str] | None = None,
        evaluations: bool = False,
        propagation_buckets: Sequence[float] = PROPAGATION_BUCKETS,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.labels = dict(labels or {})
        self.evaluations = evaluations
        self._propagation = _Histogram(propagation_buckets)
        self._reloads = app.status.reloads
        self._last_version: str | None = None
        self._counts: dict[tuple[str, str], int] = {}
        self._counts_lock = threading.Lock()
        app.add_listener(self._changed)
        if evaluations:
            app.add_evaluation_listener(self._evaluated)

    def evaluation_counts(self) -> dict[tuple[str, str], int]:
        """Evaluations counted so far by (feature, implementation), with ``evaluations``."""
        with self._counts_lock:
            return dict(self._counts)

    def close(self) -> None:
        self.app.remove_listener(self._changed)
        if self.evaluations:
            self.app.remove_evaluation_listener(self._evaluated)

    # -- listeners (the App's threads) -------------------------------------------------

    def _changed(self, version: str, features: tuple[str, ...]) -> None:
        """One propagation sample per applied change; full loads are not changes arriving."""
        reloads = self.app.status.reloads
        reloaded, self._reloads = reloads != self._reloads, reloads
        # A writer's own change is announced when written and again when its tail reads it
        # back: the first is when this App applied it.
        repeated, self._last_version = version == self._last_version, version
        written = _written_at(version)
        if reloaded or repeated or written is None:
            return
        self._propagation.observe(max(0.0, time.time() - written))

    def _evaluated(self, evaluation: Evaluation) -> None:
        key = (evaluation.feature, evaluation.implementation)
        with self._counts_lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    # -- the scrape --------------------------------------------------------------------

    def _name(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def _gauge(self, name: str, documentation: str, value: float | None) -> Iterable[Metric]:
        metric = GaugeMetricFamily(self._name(name), documentation, labels=list(self.labels))
        if value is not None:
            metric.add_metric(list(self.labels.values()), value)
        yield metric

    def _counter(self, name: str, documentation: str, value: float | None) -> Iterable[Metric]:
        metric = CounterMetricFamily(self._name(name), documentation, labels=list(self.labels))
        if value is not None:
            metric.add_metric(list(self.labels.values()), value)
        yield metric

    def describe(self) -> Iterable[Metric]:
        """The metric names, so a registry can refuse a second collector that clashes."""
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self.app.status)

    def _families(self, status: Status | None) -> Iterable[Metric]:
        names, values = list(self.labels), list(self.labels.values())
        now = time.time()
        state = GaugeMetricFamily(
            self._name("state"),
            "1 for the App's state (initializing, live, stale, closed), 0 for the others",
            labels=[*names, "state"],
        )
        version = GaugeMetricFamily(
            self._name("configuration_version_info"),
            "The change-log version the App has applied everything up to (label version)",
            labels=[*names, "version"],
        )
        written = None
        if status is not None:
            for name in STATES:
                state.add_metric([*values, name], 1.0 if status.state == name else 0.0)
            if status.version is not None:
                version.add_metric([*values, status.version], 1.0)
                written = _written_at(status.version)
        yield state
        yield version
        yield from self._gauge(
            "configuration_timestamp_seconds",
            "When the store wrote the version the App applied last (Unix time)",
            written,
        )
        yield from self._gauge(
            "configuration_age_seconds",
            "Seconds since the store wrote the version the App applied last",
            None if written is None else max(0.0, now - written),
        )
        yield from self._gauge(
            "lag_seconds",
            "How far behind the stream head the App may be: 0 while live, else seconds "
            "since it last confirmed it held the head",
            None if status is None else status.lag,
        )
        yield from self._gauge(
            "confirmed_timestamp_seconds",
            "When the App last confirmed it held the stream head (Unix time)",
            None if status is None else status.confirmed_at,
        )
        counters = (
            ("outages", "Times the App went stale", "outages"),
            (
                "reloads",
                "Full loads applied: the first one, then one per gap or new store",
                "reloads",
            ),
            (
                "reseeds",
                "Times the App wrote its snapshot back into a store that lost it",
                "reseeds",
            ),
            (
                "skipped_records",
                "Records read from storage that were skipped as invalid",
                "skipped",
            ),
            ("exposures_written", "Experiment exposures written to storage", "exposures_written"),
            (
                "exposures_dropped",
                "Experiment exposures dropped: the buffer was full",
                "exposures_dropped",
            ),
        )
        for name, documentation, field in counters:
            value = None if status is None else float(getattr(status, field))
            yield from self._counter(name, documentation, value)
        yield from self._gauge(
            "exposures_buffered",
            "Experiment exposures recorded and not written yet",
            None if status is None else status.exposures_buffered,
        )
        yield from self._gauge(
            "exposure_capacity",
            "How many unwritten exposures the App buffers before it drops them",
            None if status is None else status.exposure_capacity,
        )
        yield from self._gauge(
            "diverged_features",
            "Features the App serves at a version its store lost",
            None if status is None else len(status.diverged),
        )
        propagation = HistogramMetricFamily(
            self._name("propagation_seconds"),
            "Seconds from a change being written to this App applying it",
            labels=names,
        )
        if status is not None:
            buckets, total = self._propagation.buckets()
            propagation.add_metric(values, buckets, total)
        yield propagation
        if self.evaluations:
            evaluations = CounterMetricFamily(
                self._name("evaluations"),
                "Evaluations (create, is_enabled, find_implementation) per implementation",
                labels=[*names, "feature", "implementation"],
            )
            if status is not None:
                counts = sorted(self.evaluation_counts().items())
                for (feature, implementation), count in counts:
                    evaluations.add_metric([*values, feature, implementation], float(count))
            yield evaluations


def exposition(
    registry: CollectorRegistry = REGISTRY, accept: str | None = None
) -> tuple[bytes, str]:
    """The scrape's body and ``Content-Type`` for a request's ``Accept`` header: the
    Prometheus text format, or OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
