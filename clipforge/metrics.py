"""The one metrics module: every clipforge Prometheus metric lives in :data:`REGISTRY`.

``REGISTRY`` is a private :class:`CollectorRegistry` (not prometheus-client's global
default), so what we expose or push is exactly clipforge's metrics. Paid-call metrics are
only ever written by :mod:`clipforge.cost`.

A long-lived worker exposes them with :func:`serve`; a short run pushes them with
:func:`push`, grouped by deployment name (never by run id: one group per run would grow
the Pushgateway without bound).
"""

from __future__ import annotations

import contextlib
import math
import threading
import urllib.request
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import pushadd_to_gateway
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry()

PAID_CALL_COST = Counter(
    "clipforge_paid_call_cost_usd_total", "USD charged for paid calls (LLM, APIs).",
    ["provider", "model"], registry=REGISTRY,
)
PAID_CALLS = Counter(
    "clipforge_paid_calls_total",
    "Paid calls by outcome: ok, over_budget (charged, then stopped), error (no reply).",
    ["provider", "model", "outcome"], registry=REGISTRY,
)
PAID_CALL_TOKENS = Counter(
    "clipforge_paid_call_tokens_total", "Tokens charged for paid calls.",
    ["provider", "model", "direction"], registry=REGISTRY,
)
BUDGET_STOPS = Counter(
    "clipforge_budget_stops_total", "Jobs stopped because they exceeded their cost budget.",
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "clipforge_jobs_finished_total", "Finished jobs by final status and error code.",
    ["status", "error_code"], registry=REGISTRY,
)
STAGE_DURATION = Histogram(
    "clipforge_stage_duration_seconds", "Wall time of one pipeline stage.", ["stage"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
    registry=REGISTRY,
)
PROCESSING_RATIO = Histogram(
    "clipforge_processing_time_vs_source_duration",
    "Job processing seconds divided by source duration seconds.",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
    registry=REGISTRY,
)
QUEUE_LENGTH = Gauge(
    "clipforge_queue_length", "Jobs queued and not yet started.", registry=REGISTRY,
)

# Pushgateway grouping labels we accept: stable names only, never a run or job id.
GROUPING_KEYS = frozenset({"deployment", "instance"})


def observe_stage(stage: str, seconds: float) -> None:
    """Record how long one stage (``probe``, ``analyse``, ``render``, ...) took."""
    if math.isfinite(seconds) and seconds >= 0:
        STAGE_DURATION.labels(stage=stage).observe(seconds)


def job_finished(status: str, error_code: str | None, processing_s: float | None,
                 source_s: float | None) -> None:
    """Count a finished job (``error_code`` None -> label ``none``) and, when both
    durations are known and positive, observe processing time / source duration."""
    JOBS_FINISHED.labels(status=status, error_code=error_code or "none").inc()
    if (processing_s is not None and source_s is not None and math.isfinite(processing_s)
            and math.isfinite(source_s) and processing_s >= 0 and source_s > 0):
        PROCESSING_RATIO.observe(processing_s / source_s)


def set_queue_length(n: int) -> None:
    QUEUE_LENGTH.set(max(0, n))


def push(gateway_url: str, job: str = "clipforge",
         grouping: Mapping[str, str] | None = None, *, timeout: float = 10.0,
         accumulate: bool = True, lock: AbstractContextManager[Any] | None = None) -> None:
    """``pushadd_to_gateway`` of :data:`REGISTRY`, grouped by deployment name.

    ``grouping`` defaults to ``{"deployment": "default"}``; only the keys in
    :data:`GROUPING_KEYS` are accepted, so a run id can never become a group.

    Every run is a new process whose counters start at 0, and a push replaces the group's
    previous values; so with ``accumulate`` (the default) the group's current counter and
    histogram samples are read from the gateway first and this run's counts are added to
    them: the pushed counters keep growing across runs, as counters must, and a series
    seen in an earlier run is carried over. ``lock`` (e.g. a Redis lock) serialises
    concurrent read-add-push cycles of the same group.
    """
    key: dict[str, Any] = dict(grouping or {"deployment": "default"})
    bad = sorted(set(key) - GROUPING_KEYS)
    if bad or "deployment" not in key:
        raise ValueError(
            f"Pushgateway grouping must be by deployment name (keys {sorted(GROUPING_KEYS)}), "
            f"got keys {sorted(key)}"
        )
    with lock if lock is not None else contextlib.nullcontext():
        registry: Any = REGISTRY
        if accumulate:
            previous = _group_samples(gateway_url, {"job": job, **key}, timeout)
            registry = _Accumulated(previous)
        pushadd_to_gateway(gateway_url, job=job, registry=registry, grouping_key=key,
                           timeout=timeout)


_CUMULATIVE = ("counter", "histogram")


def _group_samples(gateway_url: str, group: Mapping[str, str], timeout: float
                   ) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The group's current counter/histogram samples on the gateway, by family name."""
    url = gateway_url.rstrip("/") + "/metrics"
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        text = reply.read().decode("utf-8", "replace")
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in _CUMULATIVE or not family.name.startswith("clipforge_"):
            continue
        for sample in family.samples:
            labels = dict(sample.labels)
            if any(labels.get(k) != v for k, v in group.items()) or \
                    sample.name.endswith("_created"):
                continue
            if "le" in labels:  # the gateway may spell bucket bounds differently
                labels["le"] = floatToGoString(float(labels["le"]))
            own = tuple(sorted((k, v) for k, v in labels.items()
                               if k not in group and k != "instance"))
            out.setdefault(family.name, {})[(sample.name, own)] = float(sample.value)
    return out


class _Accumulated:
    """A collector: :data:`REGISTRY` with the gateway's previous counts added (counters
    and histograms), previous-only series carried over, ``_created`` samples dropped."""

    def __init__(self, previous: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]],
                                             float]]) -> None:
        self.previous = previous

    def collect(self) -> Any:
        for family in REGISTRY.collect():
            if family.type not in _CUMULATIVE:
                yield family
                continue
            prev = dict(self.previous.get(family.name, {}))
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = tuple(sorted(sample.labels.items()))
                value = sample.value + prev.pop((sample.name, labels), 0.0)
                out.add_sample(sample.name, dict(labels), value)
            for (name, labels), value in sorted(prev.items()):
                out.add_sample(name, dict(labels), value)
            yield out


def serve(port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
    """Expose :data:`REGISTRY` over HTTP on ``addr:port`` (``/metrics``); returns the
    ``(server, thread)`` pair from ``start_http_server`` (``port=0``: any free port)."""
    return start_http_server(port, addr=addr, registry=REGISTRY)


# Appended for deployments/prometheus/alerts.yml (ClipforgeBacklogStalled): when the
# backlog last made progress, read from PostgreSQL by the long-lived `clipforge metrics`
# process (flows/cli_metrics.py), so the alert does not depend on any flow pushing.
LAST_JOB_FINISHED = Gauge(
    "clipforge_last_job_finished_timestamp_seconds",
    "Unix time the most recently finished job finished (video_job.finished_at); "
    "0 if no job has finished.",
    registry=REGISTRY,
)
OLDEST_QUEUED_JOB = Gauge(
    "clipforge_oldest_queued_job_timestamp_seconds",
    "Unix time the oldest still-queued job was created (video_job.created_at); "
    "0 if the queue is empty.",
    registry=REGISTRY,
)


def set_backlog_times(last_finished: float | None, oldest_queued: float | None) -> None:
    """Set the two backlog timestamps (Unix seconds; None -> 0, meaning "none")."""
    LAST_JOB_FINISHED.set(last_finished if last_finished and math.isfinite(last_finished)
                          else 0)
    OLDEST_QUEUED_JOB.set(oldest_queued if oldest_queued and math.isfinite(oldest_queued)
                          else 0)


# Appended for the feedback loop (clipforge.feedback.learn): set after each retrain and by
# the long-lived `clipforge metrics` process from scoring_weights.
SCORING_WEIGHTS_VERSION = Gauge(
    "clipforge_scoring_weights_version",
    "Version of the score weights in force (0: the shipped defaults).", registry=REGISTRY,
)
SCORING_HELDOUT_SPEARMAN = Gauge(
    "clipforge_scoring_heldout_spearman",
    "Held-out Spearman rank correlation of the newest weight candidate with the "
    "normalised outcomes, by which weights: candidate or baseline (the weights it had to "
    "beat).",
    ["weights"], registry=REGISTRY,
)
SCORING_SAMPLES = Gauge(
    "clipforge_scoring_samples", "Clips with an imported outcome (learning samples).",
    registry=REGISTRY,
)


def set_feedback(version: int, samples: int, heldout: float | None,
                 baseline: float | None) -> None:
    """Record the feedback loop's state (None correlations are left unset)."""
    SCORING_WEIGHTS_VERSION.set(max(0, version))
    SCORING_SAMPLES.set(max(0, samples))
    for label, value in (("candidate", heldout), ("baseline", baseline)):
        if value is not None and math.isfinite(value):
            SCORING_HELDOUT_SPEARMAN.labels(weights=label).set(value)
