"""Celery tasks of the app: thin wrappers over :mod:`suggestions.services`.

Names are stable (``suggestions.<area>.<verb>``), arguments are JSON primitives,
bodies are idempotent. The host project routes them (``CELERY_TASK_ROUTES``)
and schedules the periodic ones (``CELERY_BEAT_SCHEDULE``).
"""

from __future__ import annotations

from celery import shared_task

from .recall import RecallUnavailable

#: Time limits of every task (seconds); long rebuilds run from the command line.
LIMITS = {"time_limit": 600, "soft_time_limit": 540}

# Tasks are added below, grouped by area.

# --- suggestions and history ---


@shared_task(name="suggestions.suggestions.publish", **LIMITS, autoretry_for=(RecallUnavailable,),
             retry_backoff=True, max_retries=5)
def publish_suggestions() -> int:
    """Push approved suggestions to the recall backend; returns how many are served."""
    from . import services

    return services.publish_suggestions()


@shared_task(name="suggestions.suggestions.build", **LIMITS)
def build_suggestions() -> dict:
    """Mine history and catalog into suggestions and publish them."""
    from . import services

    report = services.build_suggestions()
    return report.__dict__


@shared_task(name="suggestions.history.garbage_collect", **LIMITS)
def garbage_collect() -> dict:
    """Delete history older than the retention period."""
    from . import services

    return services.garbage_collect()

# --- indexing ---


@shared_task(name="suggestions.index.update_products", **LIMITS, autoretry_for=(RecallUnavailable,),
             retry_backoff=True, max_retries=5)
def update_products(ids: list[str]) -> int:
    """Re-index the given products (gone or hidden ones are removed); returns documents written."""
    from . import services

    return services.index_products(ids)


@shared_task(name="suggestions.index.delete_products", **LIMITS, autoretry_for=(RecallUnavailable,),
             retry_backoff=True, max_retries=5)
def delete_products(ids: list[str]) -> int:
    """Remove the given products from the index; returns how many ids were removed."""
    from . import services

    return services.remove_products(ids)


@shared_task(name="suggestions.index.rebuild", **LIMITS, autoretry_for=(RecallUnavailable,),
             retry_backoff=True, max_retries=3)
def rebuild_index(alias: str = "default") -> str:
    """Rebuild the product index into a new version; returns the version name."""
    from . import services

    return services.rebuild_index(alias=alias)


#: Products one ``suggestions.ml.embed_products`` run embeds when asked for the
#: whole catalog; it then sends itself again, so other ``gpu`` tasks interleave
#: and no run nears the time limit.
EMBED_SLICE = 2000


@shared_task(name="suggestions.ml.embed_products", **LIMITS, autoretry_for=(RecallUnavailable,),
             retry_backoff=True, max_retries=5)
def embed_products(ids: list[str] | None = None, alias: str = "default") -> dict:
    """Embed products for dense recall (``ids``; ``None``: every product without a
    vector, in slices) and store their vectors in the backend."""
    from . import services

    report = services.embed_products(ids, alias=alias, limit=None if ids else EMBED_SLICE)
    if report.more:
        embed_products.delay(None, alias)
    return report.__dict__


# --- understanding (routed to the GPU queue by the host: "suggestions.ml.*") ---


@shared_task(name="suggestions.ml.understand_pending", **LIMITS)
def understand_pending() -> int:
    """Understand the queries of new search events, in batches, with the active model."""
    from . import services

    return services.understand_pending()


@shared_task(name="suggestions.ml.reunderstand", **LIMITS)
def reunderstand() -> int:
    """Re-run every stored understanding after the active model changed."""
    from . import services

    return services.reunderstand()


# --- the learning loop (GPU queue: "suggestions.ml.*") ---

#: A retrain may take longer than the other tasks (training a model on a
#: large log); the loop's own lock expires after SUGGESTIONS_RETRAIN_TIME_LIMIT.
RETRAIN_LIMITS = {"time_limit": 3 * 3600, "soft_time_limit": 3 * 3600 - 60}


@shared_task(name="suggestions.ml.retrain", **RETRAIN_LIMITS)
def retrain(kind: str, options: dict | None = None) -> dict:
    """Snapshot, train a challenger of ``kind``, gate it against the active
    version on the held-out window, promote it only when better.

    ``options`` are the kind's run options (JSON primitives, e.g.
    ``{"max_groups": 40000}``). A retrain of the same kind already running makes
    this one a no-op (the beat schedule simply tries again next time).
    """
    from . import services

    try:
        report = services.retrain(kind, options=options)
    except services.RetrainBusy as exc:
        return {"kind": kind, "skipped": str(exc)}
    return {"kind": kind, "run": report.run.pk, "version": report.version.version if report.version else None,
            "promoted": report.promoted, "decision": report.gate.reason if report.gate else ""}


@shared_task(name="suggestions.ml.rank_prefixes", **LIMITS)
def rank_prefixes() -> int:
    """Precompute the active suggestion ranker's order of every prefix (after a
    promotion, a rollback or a build)."""
    from . import services

    return services.refresh_rankings()


@shared_task(name="suggestions.ml.refresh_search_clicks", **LIMITS)
def refresh_search_clicks() -> int:
    """Recompute the active search ranker's click statistics from the whole
    history (after a promotion or a rollback, and nightly); returns the gated
    queries kept."""
    from . import services

    return services.refresh_search_clicks()


# --- experiments (loads the rankers: GPU queue, "suggestions.ml.*") ---


@shared_task(name="suggestions.ml.prepare_experiment", **LIMITS)
def prepare_experiment(experiment_id: int) -> int:
    """Precompute both versions' order of every prefix for a running experiment
    (after it starts and after each build); returns the rows stored."""
    from . import services

    return services.prepare_experiment(experiment_id)


# --- analytics ---


@shared_task(name="suggestions.analytics.rollup", **LIMITS)
def rollup_analytics(days_back: int = 1) -> dict:
    """Rebuild the analytics rollups of today and ``days_back`` days before it
    (default: yesterday and today); re-running a day replaces it."""
    from . import services

    return services.rollup_analytics(days_back=days_back).as_dict()


# --- synonyms ---


@shared_task(name="suggestions.synonyms.mine", **LIMITS)
def mine_synonyms() -> dict:
    """Propose pending synonyms from co-clicks of gated queries (idempotent:
    decisions are kept, evidence refreshed)."""
    from . import services

    return services.mine_synonyms()


# --- generated refinements (loads the generator: GPU queue, "suggestions.ml.*") ---


@shared_task(name="suggestions.ml.generate_refinements", **LIMITS)
def generate_refinements(seeds: dict | None = None, limit: int | None = None) -> dict:
    """Generate refinements of head, zero-result, new-type and thin-prefix seeds
    (or of ``seeds``: text → reason) with the active generator, gate them and
    store the survivors for review (idempotent: stored texts are not added again)."""
    from . import services

    return services.generate_refinements(seeds, limit=limit).as_dict()
