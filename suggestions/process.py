"""A web process made ready for traffic: what its first requests would load, loaded,
and the garbage collector told that it is permanent.

Why (``bench/RESULTS.md``, "Garbage-collector pauses"): a web process holds a
few hundred thousand long-lived objects (Django, the app's matchers, the recall
index's readers, ranked orders, the answer cache), and CPython's full (oldest
generation) collection walks all of them: 109-129 ms on a 2-core machine
(``python -m bench.latency.gc_pauses``), every few ten thousand requests. Under
load every request queued behind such a pause waits for it, and those waits set
the suggest endpoint's p99 (1.42 and 3.22 times the trivial endpoint's before,
1.01-1.27 times after, ``python -m bench.latency``). :func:`gc.freeze` moves
every object alive into a permanent generation that collections skip; objects
are still freed when their last reference goes, so nothing leaks that would
not leak anyway (a frozen cycle that becomes garbage stays until the process
ends).

Contracts:

* :func:`prepare_web_process` answers :data:`WARM_UP_PREFIXES` through
  :func:`~suggestions.serving.suggest` and one understanding call (the rules
  fallback: no model, no worker), loads jieba, then runs one full collection
  and :func:`gc.freeze`. Nothing is recorded (suggest and understand write no
  history) and nothing is cached that a real request would not cache; the
  answers computed count in the answer-cache metrics like any other.
* It never raises: a step that fails (no database yet, no index) is logged and
  skipped, and the freeze still happens. It returns what it did, with timings.
* Call it once per web process, after the application is loaded: the demo's
  ``shop_search/wsgi.py`` runs it in a thread at start; a host can do the same
  or call it from gunicorn's ``post_worker_init`` hook.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable

logger = logging.getLogger(__name__)

#: Prefixes answered at start: one per letter and digit loads every structure a
#: keystroke touches (recall readers, ranked orders, blocked-term matcher, variants).
WARM_UP_PREFIXES: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz0123456789")


def prepare_web_process(prefixes: Iterable[str] = WARM_UP_PREFIXES, *, freeze: bool = True,
                        close_connections: bool = True) -> dict:
    """Warm the request path up and freeze the objects alive into the permanent generation.

    Args:
        prefixes: What to answer through ``suggest`` first.
        freeze: Run :func:`gc.freeze` at the end (default True).
        close_connections: Close the calling thread's database connections at
            the end (default True: a warm-up thread's connection would otherwise
            stay open and idle; Django reopens one when the thread needs it).

    Returns:
        ``{"answered": n, "failed": [step, ...], "seconds": s, "frozen": objects}``.
    """
    started = time.perf_counter()
    failed: list[str] = []
    answered = 0
    try:
        from .nlp.segment import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - a warm-up must never stop a process from serving
        logger.warning("suggestions: warm-up could not load jieba", exc_info=True)
        failed.append("jieba")
    try:
        from .conf import app_settings
        from .serving import suggest

        for prefix in prefixes:
            suggest(prefix, limit=app_settings.DEFAULT_SUGGESTION_LIMIT)
            answered += 1
    except Exception:  # noqa: BLE001
        logger.warning("suggestions: warm-up could not answer suggestions", exc_info=True)
        failed.append("suggest")
    try:
        from .understanding import understand

        understand("warm up", schedule=False)
    except Exception:  # noqa: BLE001
        logger.warning("suggestions: warm-up could not understand a query", exc_info=True)
        failed.append("understand")
    if close_connections:
        from django.db import connections

        connections.close_all()  # this thread's connections: a request thread opens its own
    frozen = 0
    if freeze:
        gc.collect()
        gc.freeze()
        frozen = gc.get_freeze_count()
    seconds = time.perf_counter() - started
    logger.info("suggestions: web process ready in %.1f s (%d prefixes answered, %d objects frozen%s)",
                seconds, answered, frozen, f", failed: {', '.join(failed)}" if failed else "")
    return {"answered": answered, "failed": failed, "seconds": seconds, "frozen": frozen}
