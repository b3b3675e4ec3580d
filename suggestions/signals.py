"""Public signals. The request path announces; receivers record.

Every signal is sent with ``sender`` set to the class or module that announced
it, and keyword arguments as documented below. Host projects may connect their
own receivers (analytics, logging) with a ``dispatch_uid``.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A shopper submitted a search. kwargs: ``query`` (raw text), ``normalized_query``,
#: ``results_count`` (int or None), ``origin`` (typed/suggestion/history),
#: ``request_id`` (str uuid), ``user`` (User or None), ``session_key`` (str or None),
#: ``filters`` (dict), ``understanding`` (the search's
#: :class:`~suggestions.nlp.types.Understanding`, or None).
query_submitted = Signal()

#: A suggestion list was shown (reported by the client). kwargs: ``request_id``,
#: ``prefix``, ``suggestions`` (list of str), ``user``, ``session_key``.
suggestions_shown = Signal()

#: A suggestion was chosen. kwargs: ``request_id``, ``prefix``, ``suggestion``,
#: ``position`` (0-based), ``user``, ``session_key``.
suggestion_clicked = Signal()

#: A search result was clicked. kwargs: ``request_id``, ``query``, ``product_id``
#: (text id), ``position`` (0-based), ``user``, ``session_key``.
product_clicked = Signal()

#: Served suggestions changed (build, moderation, blocked terms). kwargs: none.
suggestions_changed = Signal()

#: The active model version of a kind changed (promotion, roll-back, retirement).
#: kwargs: ``kind``.
active_model_changed = Signal()

#: A merchandiser confirmed or corrected a query's intent/entities. kwargs: ``label``
#: (the QueryLabel).
query_labelled = Signal()

#: A product of the host's catalog was saved or deleted, so its index entry must follow
#: (the app's receiver sends the indexing task once the transaction commits). kwargs:
#: ``ids`` (list of text ids), ``deleted`` (bool), ``using`` (database alias of the
#: transaction).
product_index_requested = Signal()

#: Products were written to the index (``sender``: the indexing function): their
#: embeddings must follow (the app's receiver sends ``suggestions.ml.embed_products``
#: once the transaction commits, when dense recall is on). kwargs: ``ids`` (list of
#: text ids, or ``None`` after a rebuild: every product), ``alias`` (recall backend).
products_indexed = Signal()

#: Queries wait for the workers to understand them (the app's receiver sends the
#: ``suggestions.ml.understand_pending`` task once the transaction commits; at most one
#: request every 2 seconds). kwargs: none.
understanding_requested = Signal()

#: Sent when a build stored a new set of suggestions (``sender``: the caller):
#: the active suggestion ranker's order of every prefix is then recomputed.
suggestions_built = Signal()

#: A retrain was asked for from outside a worker (a command, the demo): the app's
#: receiver sends ``suggestions.ml.retrain`` once the transaction commits.
#: kwargs: ``kind`` (str), ``options`` (dict of JSON primitives).
retrain_requested = Signal()

#: An experiment was started (``sender``: :class:`~suggestions.models.Experiment`): the
#: app's receiver sends ``suggestions.ml.prepare_experiment`` once the transaction commits.
#: kwargs: ``experiment_id`` (int).
experiment_changed = Signal()

#: Refinement chips were shown with a search answer (reported by the client). kwargs:
#: ``request_id`` (of the search answer), ``query``, ``refinements`` (list of str),
#: ``user``, ``session_key``.
refinements_shown = Signal()

#: A refinement chip was chosen. kwargs: ``request_id`` (of the search answer),
#: ``query``, ``refinement``, ``position`` (0-based), ``user``, ``session_key``.
refinement_clicked = Signal()
