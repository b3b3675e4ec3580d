"""Celery application of the demo project.

The host project owns routing and the beat schedule (see settings:
``CELERY_TASK_ROUTES`` and ``CELERY_BEAT_SCHEDULE``); the app only names its tasks.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_search.settings")

app = Celery("shop_search")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
