"""Prometheus metrics for a shop's operators.

Contracts:
* Counters and histograms live in ``prometheus_client``'s default registry and
  are updated on the request path at a cost of about a microsecond each
  (``python -m bench.observability`` measures it); nothing here touches the database,
  the cache or the broker while a request is served.
* What lives elsewhere (the understanding backlog, Celery queue depths, the
  active version of each model kind, retrain outcomes) is read when the
  metrics endpoint is scraped, by :class:`StateCollector`: a scrape costs a few
  database queries and one broker round trip, however busy the shop is.
* Several processes (gunicorn workers): set ``PROMETHEUS_MULTIPROC_DIR`` as
  ``prometheus_client`` documents; :func:`exposition` then merges every
  process's counters.
* ``SUGGESTIONS_METRICS = False`` turns the request-path updates off.

Metric names (all prefixed ``shop_suggestions_``) and a sample dashboard are in
``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from functools import wraps

from django.core.signals import setting_changed
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from .conf import app_settings

logger = logging.getLogger(__name__)

PREFIX = "shop_suggestions"

#: Latency buckets for per-keystroke answers: most land in the first few.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_SECONDS = Histogram(
    f"{PREFIX}_request_seconds", "Time to answer an API request, by endpoint (view code, serialisation included).",
    ["endpoint"], buckets=LATENCY_BUCKETS)
SUGGEST_ANSWERS = Counter(
    f"{PREFIX}_suggest_answers", "Suggest answers by where the shared part came from: this process's memory "
    "(local), the shared cache (shared) or computed from the engine (computed).", ["source"])
DEGRADED = Counter(
    f"{PREFIX}_degraded_answers", "Answers given while something was down, by endpoint and cause "
    "(cache, recall, task_queue, dense).", ["endpoint", "reason"])
EVENTS = Counter(
    f"{PREFIX}_events", "Client events received by POST events/: accepted (announced to the history "
    "receivers, stored in the same transaction) or ignored (clicks on products the catalog does not have).",
    ["outcome"])

# Bound once: a labelled child lookup per observation costs more than the observation.
_SUGGEST_SOURCES = {name: SUGGEST_ANSWERS.labels(source=name) for name in ("local", "shared", "computed")}
_TIMERS: dict[str, object] = {}


# SUGGESTIONS_METRICS, read on first use and again after a settings change: a
# settings lookup costs more than the counter it guards.
_enabled: bool | None = None


def enabled() -> bool:
    global _enabled
    if _enabled is None:
        _enabled = app_settings.METRICS
    return _enabled


def _on_setting_changed(*, setting: str, **_: object) -> None:
    global _enabled
    if setting == "SUGGESTIONS_METRICS":
        _enabled = None


setting_changed.connect(_on_setting_changed, dispatch_uid="shop_suggestions.metrics_setting_changed")


def count_suggest_answer(source: str) -> None:
    """One suggest answer whose shared part came from ``source``."""
    if _enabled if _enabled is not None else enabled():
        _SUGGEST_SOURCES[source].inc()


def count_degraded(endpoint: str, reasons) -> None:
    if reasons and enabled():
        for reason in reasons:
            DEGRADED.labels(endpoint=endpoint, reason=reason).inc()


def count_events(accepted: int, ignored: int) -> None:
    if enabled():
        if accepted:
            EVENTS.labels(outcome="accepted").inc(accepted)
        if ignored:
            EVENTS.labels(outcome="ignored").inc(ignored)


def observed(endpoint: str):
    """Decorator: time the wrapped view method into ``request_seconds{endpoint}``."""
    def decorate(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            if not (_enabled if _enabled is not None else enabled()):
                return func(*args, **kwargs)
            timer = _TIMERS.get(endpoint)
            if timer is None:
                timer = _TIMERS[endpoint] = REQUEST_SECONDS.labels(endpoint=endpoint)
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                timer.observe(time.perf_counter() - start)
        return wrapper
    return decorate


# -- read at scrape time -------------------------------------------------------------


def _queues() -> list[str]:
    configured = app_settings.METRICS_QUEUES
    if configured is not None:
        return list(configured)
    from celery import current_app

    conf = current_app.conf
    names = {conf.task_default_queue or "celery"}
    routes = conf.task_routes or {}
    if isinstance(routes, dict):
        names.update(r["queue"] for r in routes.values() if isinstance(r, dict) and r.get("queue"))
    return sorted(names)


def queue_depths(queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in each Celery queue; ``None`` when the broker cannot be reached."""
    from celery import current_app

    try:
        with current_app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=app_settings.ENQUEUE_TIMEOUT)
            channel = connection.default_channel
            depths = {}
            for name in queues:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # noqa: BLE001 - a queue no worker declared yet holds nothing
                    depths[name] = 0
                    channel = connection.channel()
            return depths
    except Exception:  # noqa: BLE001 - the broker is down: say so, do not fail the scrape
        logger.warning("suggestions: metrics could not read the broker's queues", exc_info=True)
        return None


class StateCollector(Collector):
    """Gauges read from the database and the broker at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count

        from .models import ModelVersion, ModelVersionStatus, RetrainRun, SearchEvent

        backlog = GaugeMetricFamily(f"{PREFIX}_understanding_backlog",
                                    "Searches whose query the workers have not understood yet.")
        backlog.add_metric([], SearchEvent.objects.filter(understanding__isnull=True)
                           .exclude(normalized_query="").count())
        yield backlog

        active = GaugeMetricFamily(f"{PREFIX}_active_model", "1 for the active version of each model kind.",
                                   labels=["kind", "version"])
        for kind, version in (ModelVersion.objects.filter(status=ModelVersionStatus.ACTIVE)
                              .values_list("kind", "version")):
            active.add_metric([kind, version], 1)
        yield active

        runs = GaugeMetricFamily(f"{PREFIX}_retrain_runs", "Learning-loop runs kept in the database, by kind and "
                                 "outcome (promoted, kept, failed, running).", labels=["kind", "outcome"])
        for row in RetrainRun.objects.values("kind", "status").annotate(n=Count("id")).order_by():
            runs.add_metric([row["kind"], row["status"]], row["n"])
        yield runs

        queues = _queues()
        depths = queue_depths(queues)
        up = GaugeMetricFamily(f"{PREFIX}_broker_up", "1 when the task broker answered this scrape.")
        up.add_metric([], 0 if depths is None else 1)
        yield up
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"])
        for name, count in (depths or {}).items():
            depth.add_metric([name], count)
        yield depth


def exposition() -> tuple[bytes, str]:
    """The metrics page (body, content type): this process's (or, in
    multiprocess mode, every process's) counters and the scrape-time gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(StateCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _DefaultRegistry(Collector):
    """The default registry's metrics (ours, the process and platform ones), inside a fresh registry."""

    def collect(self):
        return REGISTRY.collect()
