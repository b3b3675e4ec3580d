"""The app's entry points. Views, tasks, admin actions and management commands
call these functions and nothing below them.

Contracts:
* Nothing here waits on a GPU or a model.
* Request-path functions (:func:`suggest`, :func:`search`) never raise because
  the recall backend or the cache is down: they answer from what they can and
  set ``degraded=True``.
* Writes of history go through signals (:mod:`suggestions.signals`), recorded
  by :mod:`suggestions.receivers`.
"""

from __future__ import annotations

# Indexing of the host's products (see suggestions/indexing.py).
from .indexing import (  # noqa: F401
    enqueue_product_change,
    index_products,
    rebuild_index,
    remove_products,
)

# Moderation of suggestions and blocked terms (see suggestions/moderation.py).
from .moderation import (  # noqa: F401
    block_suggestions,
    pin_suggestions,
    set_suggestion_status,
    unpin_suggestions,
)
