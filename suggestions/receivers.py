"""Signal receivers: record what the request path announced, publish changed
suggestions, follow product changes. Connected once in
:meth:`SuggestionsConfig.ready`, each with a ``dispatch_uid``.

This is the one module that sends the app's Celery tasks (from
``transaction.on_commit``, with ``.delay()`` on the task objects, so eager mode runs
them in tests; the request path's catch-up task through :func:`suggestions.broker.send`,
which never waits long on a dead broker). Nothing imports it but the app config: the tasks call
:mod:`suggestions.services`, whose modules announce signals instead of importing the
tasks, so there is no import cycle between tasks and the code they run."""

from __future__ import annotations

from django.db import transaction

from . import history, signals


def _publish_on_commit(**_: object) -> None:
    from . import serving, tasks

    # New answers at once in every process sharing the cache (blocked terms,
    # pins and statuses are read per cache version); the worker's publish then
    # updates the engine and gives them a new version again.
    transaction.on_commit(serving.invalidate_cache, robust=True)
    transaction.on_commit(tasks.publish_suggestions.delay)


def _understand_later(**_: object) -> None:
    from . import understanding

    understanding.schedule_understanding()


def _reunderstand_on_model_change(*, kind: str, **_: object) -> None:
    if kind == "understanding":
        from . import tasks

        transaction.on_commit(tasks.reunderstand.delay, robust=True)
    elif kind == "suggestion_ranker":
        # Promotion (by the gate or in the admin) and rollback: the workers
        # precompute the new version's order of every prefix.
        from . import tasks

        transaction.on_commit(tasks.rank_prefixes.delay, robust=True)
    elif kind == "search_ranker":
        # The new active version serves click statistics of the whole history.
        from . import tasks

        transaction.on_commit(tasks.refresh_search_clicks.delay, robust=True)
    elif kind == "generator":
        # A new generator proposes refinements for review at once (stored texts are skipped).
        from . import tasks

        transaction.on_commit(tasks.generate_refinements.delay, robust=True)


def _rank_prefixes_after_build(**_: object) -> None:
    from .models import ModelVersion, ModelVersionStatus

    if ModelVersion.objects.filter(kind="suggestion_ranker", status=ModelVersionStatus.ACTIVE).exists():
        from . import tasks

        transaction.on_commit(tasks.rank_prefixes.delay, robust=True)


def _retrain_on_commit(*, kind: str, options: dict, **_: object) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.retrain.delay(kind, options), robust=True)


def _understand_pending_on_commit(**_: object) -> None:
    from . import broker, tasks

    # Sent from the search path: through the breaker, so a dead broker costs
    # at most SUGGESTIONS_ENQUEUE_TIMEOUT once, then nothing (see broker.py).
    # A skipped send loses nothing: the task catches up on every pending query.
    transaction.on_commit(lambda: broker.send(tasks.understand_pending), robust=True)


def _index_on_commit(*, ids: list[str], deleted: bool, using: str | None, **_: object) -> None:
    from . import tasks

    task = tasks.delete_products if deleted else tasks.update_products

    def send() -> None:
        task.delay(ids)

    # robust: the change is committed whatever happens here; a broker outage
    # must not turn a successful save into an error page. The index catches
    # up on the next save or rebuild.
    transaction.on_commit(send, using=using, robust=True)


def _embed_on_commit(*, ids: list[str] | None, alias: str = "default", **_: object) -> None:
    from . import indexing, tasks

    try:
        if not indexing.dense_active(alias):
            return
    except Exception:  # noqa: BLE001 - a misconfigured backend is reported by search, not here
        return
    # robust: like indexing, a broker outage must not fail the save; the next
    # full embedding run (suggestions_embed_products) catches up.
    transaction.on_commit(lambda: tasks.embed_products.delay(ids, alias), robust=True)


def _prepare_experiment_on_commit(*, experiment_id: int, **_: object) -> None:
    from . import tasks

    transaction.on_commit(lambda: tasks.prepare_experiment.delay(experiment_id), robust=True)


def _prepare_experiments_after_build(**_: object) -> None:
    from . import experiments, tasks

    for pk in experiments.prepare_running_experiments():
        transaction.on_commit(lambda pk=pk: tasks.prepare_experiment.delay(pk), robust=True)


def connect() -> None:
    from . import indexing

    signals.query_submitted.connect(history.record_search, dispatch_uid="shop_suggestions.record_search")
    signals.suggestions_shown.connect(history.record_impression, dispatch_uid="shop_suggestions.record_impression")
    signals.suggestion_clicked.connect(history.record_suggestion_click, dispatch_uid="shop_suggestions.record_suggestion_click")
    signals.product_clicked.connect(history.record_product_click, dispatch_uid="shop_suggestions.record_product_click")
    # Personal re-ranking: the shopper's profile follows their searches and clicks.
    from django.conf import settings
    from django.db.models.signals import post_delete

    from . import personal

    signals.query_submitted.connect(personal.record_search, dispatch_uid="shop_suggestions.profile_search")
    signals.product_clicked.connect(personal.record_click, dispatch_uid="shop_suggestions.profile_click")
    post_delete.connect(personal.delete_user_profile, sender=settings.AUTH_USER_MODEL,
                        dispatch_uid="shop_suggestions.delete_user_profile")
    signals.suggestions_changed.connect(_publish_on_commit, dispatch_uid="shop_suggestions.publish_on_commit")
    signals.query_submitted.connect(_understand_later, dispatch_uid="shop_suggestions.understand_later")
    signals.active_model_changed.connect(_reunderstand_on_model_change,
                                         dispatch_uid="shop_suggestions.reunderstand_on_model_change")
    signals.retrain_requested.connect(_retrain_on_commit, dispatch_uid="shop_suggestions.retrain_on_commit")
    signals.suggestions_built.connect(_rank_prefixes_after_build, dispatch_uid="shop_suggestions.rank_after_build")
    signals.understanding_requested.connect(_understand_pending_on_commit,
                                            dispatch_uid="shop_suggestions.understand_pending_on_commit")
    signals.product_index_requested.connect(_index_on_commit, dispatch_uid="shop_suggestions.index_on_commit")
    signals.products_indexed.connect(_embed_on_commit, dispatch_uid="shop_suggestions.embed_on_commit")
    indexing.connect_product_signals()
    # Experiments: the arm of each impression and click; both versions' orders precomputed.
    from . import experiments

    signals.suggestions_shown.connect(experiments.record_impression, dispatch_uid="shop_suggestions.experiment_impression")
    signals.suggestion_clicked.connect(experiments.record_click, dispatch_uid="shop_suggestions.experiment_click")
    signals.experiment_changed.connect(_prepare_experiment_on_commit, dispatch_uid="shop_suggestions.prepare_experiment")
    signals.suggestions_built.connect(_prepare_experiments_after_build,
                                      dispatch_uid="shop_suggestions.prepare_experiments_after_build")
    # Refinement chips: stored as suggestion impressions and clicks of the "refinements" surface.
    from . import refinements

    signals.refinements_shown.connect(refinements.record_impression,
                                      dispatch_uid="shop_suggestions.record_refinement_impression")
    signals.refinement_clicked.connect(refinements.record_click, dispatch_uid="shop_suggestions.record_refinement_click")
