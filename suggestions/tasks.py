"""Celery tasks of the app: thin wrappers over :mod:`suggestions.services`.

Names are stable (``suggestions.<area>.<verb>``), arguments are JSON primitives,
bodies are idempotent. The host project routes them (``CELERY_TASK_ROUTES``)
and schedules the periodic ones (``CELERY_BEAT_SCHEDULE``).
"""

from __future__ import annotations

from celery import shared_task

#: Time limits of every task (seconds); long rebuilds run from the command line.
LIMITS = {"time_limit": 600, "soft_time_limit": 540}

# Tasks are added below, grouped by area.
