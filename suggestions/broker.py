"""Sending tasks from the request path without waiting on a dead broker.

Celery's default publish retries a failed connection for about a second, and a
black-holed broker can hold a connect for seconds more: every search waited on
a down Redis to enqueue understanding.

Contracts of :func:`send`, used for the request path's sends:

* it uses its own connection with short connect and socket timeouts
  (``SUGGESTIONS_ENQUEUE_TIMEOUT``) and no publish retries;
* after a failure, opens a per-process circuit breaker: for
  ``SUGGESTIONS_ENQUEUE_RETRY_AFTER`` seconds sends are skipped without
  touching the broker, and :func:`unavailable` is true, so answers say
  ``degraded`` (reason :data:`REASON`);
* never raises because of the broker, and loses no work *as long as the task
  is a catch-up task*: only such tasks are sent through here
  (``suggestions.ml.understand_pending`` understands every search event still
  without an understanding, so the first send after the outage, or the
  workers' next run, covers every query searched during it);
* in eager mode (``CELERY_TASK_ALWAYS_EAGER``) the task runs as usual: there is
  no broker, and the task's own errors propagate.

Nothing here imports the tasks: :mod:`suggestions.receivers` passes them in.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .conf import app_settings

logger = logging.getLogger(__name__)

#: The cause reported with ``degraded`` when the breaker is open.
REASON = "task_queue"

_lock = threading.Lock()
_open_until = 0.0


def unavailable() -> bool:
    """True while the breaker is open: a send failed less than
    ``SUGGESTIONS_ENQUEUE_RETRY_AFTER`` seconds ago in this process."""
    return time.monotonic() < _open_until


def reset() -> None:
    """Close the breaker (tests; a host that knows the broker is back)."""
    global _open_until
    with _lock:
        _open_until = 0.0


def _trip() -> None:
    global _open_until
    with _lock:
        _open_until = time.monotonic() + app_settings.ENQUEUE_RETRY_AFTER


def send(task: Any, *args: Any) -> bool:
    """Send ``task`` with ``args``, within the timeouts above.

    Args:
        task: a Celery task object (catch-up tasks only: see the contract).
        *args: the task's JSON-primitive arguments.

    Returns:
        True when the task was sent (or ran eagerly); False when it was skipped
        because the breaker is open or the send failed (logged, breaker opened).
    """
    app = task.app
    if app.conf.task_always_eager:
        task.apply_async(args)
        return True
    if unavailable():
        return False
    timeout = app_settings.ENQUEUE_TIMEOUT
    started = time.monotonic()
    try:
        with app.connection_for_write(
            connect_timeout=timeout,
            # One connection attempt (kombu retries a refused connect for
            # seconds by default), and redis-py's socket timeouts (other
            # transports ignore them).
            transport_options={"max_retries": 0, "socket_timeout": timeout, "socket_connect_timeout": timeout},
        ) as connection:
            task.apply_async(args, connection=connection, retry=False)
    except Exception:  # noqa: BLE001 - any broker error: skip, never fail the request
        _trip()
        logger.warning(
            "suggestions: broker unavailable (%.2fs), %s not sent; skipping sends for %.0fs",
            time.monotonic() - started, task.name, app_settings.ENQUEUE_RETRY_AFTER, exc_info=True,
        )
        return False
    return True
