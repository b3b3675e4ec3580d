"""Signal receivers: record what the request path announced, publish changed
suggestions, follow product changes. Connected once in
:meth:`SuggestionsConfig.ready`, each with a ``dispatch_uid``."""

from __future__ import annotations

from django.db import transaction

from . import history, signals


def _publish_on_commit(**_: object) -> None:
    from . import tasks

    transaction.on_commit(tasks.publish_suggestions.delay)


def _understand_later(**_: object) -> None:
    from . import understanding

    understanding.schedule_understanding()


def _reunderstand_on_model_change(*, kind: str, **_: object) -> None:
    if kind == "understanding":
        from . import tasks

        transaction.on_commit(tasks.reunderstand.delay, robust=True)


def connect() -> None:
    from . import indexing

    signals.query_submitted.connect(history.record_search, dispatch_uid="shop_suggestions.record_search")
    signals.suggestions_shown.connect(history.record_impression, dispatch_uid="shop_suggestions.record_impression")
    signals.suggestion_clicked.connect(history.record_suggestion_click, dispatch_uid="shop_suggestions.record_suggestion_click")
    signals.product_clicked.connect(history.record_product_click, dispatch_uid="shop_suggestions.record_product_click")
    signals.suggestions_changed.connect(_publish_on_commit, dispatch_uid="shop_suggestions.publish_on_commit")
    signals.query_submitted.connect(_understand_later, dispatch_uid="shop_suggestions.understand_later")
    signals.active_model_changed.connect(_reunderstand_on_model_change,
                                         dispatch_uid="shop_suggestions.reunderstand_on_model_change")
    indexing.connect_product_signals()
