"""Celery application of the demo project.

The host project owns routing and the beat schedule (see settings:
``CELERY_TASK_ROUTES`` and ``CELERY_BEAT_SCHEDULE``); the app only names its tasks.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init

from . import filesystem_broker  # noqa: F401 - registers the atomicfs:// transport of the embedded default

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_search.settings")

app = Celery("shop_search")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    # Each worker process loads jieba's dictionary before its first task.
    from suggestions.nlp.segment import warm_up

    warm_up()
