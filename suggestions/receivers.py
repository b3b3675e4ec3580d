"""Signal receivers: record what the request path announced, publish changed
suggestions, follow product changes. Connected once in
:meth:`SuggestionsConfig.ready`, each with a ``dispatch_uid``."""

from __future__ import annotations

from django.db import transaction

from . import history, signals


def _publish_on_commit(**_: object) -> None:
    from . import tasks

    transaction.on_commit(tasks.publish_suggestions.delay)


def connect() -> None:
    from . import indexing

    signals.query_submitted.connect(history.record_search, dispatch_uid="shop_suggestions.record_search")
    signals.suggestions_shown.connect(history.record_impression, dispatch_uid="shop_suggestions.record_impression")
    signals.suggestion_clicked.connect(history.record_suggestion_click, dispatch_uid="shop_suggestions.record_suggestion_click")
    signals.product_clicked.connect(history.record_product_click, dispatch_uid="shop_suggestions.record_product_click")
    signals.suggestions_changed.connect(_publish_on_commit, dispatch_uid="shop_suggestions.publish_on_commit")
    indexing.connect_product_signals()
