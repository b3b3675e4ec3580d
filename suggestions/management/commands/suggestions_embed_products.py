"""``manage.py suggestions_embed_products``: embed the catalog for dense recall.

What the ``suggestions.ml.embed_products`` task does after indexing, from the
shell and with a progress bar: every searchable product without a vector of
``SUGGESTIONS_DENSE_ENCODER`` is embedded and its vector stored in the recall
backend (``--refresh``: every product again); vectors of products gone from
the catalog are dropped. ``--status`` only reports. Search starts fusing BM25
with dense recall as soon as the backend holds vectors.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from suggestions import services
from suggestions.conf import app_settings
from suggestions.recall import RecallUnavailable


class Command(BaseCommand):
    help = "Embed the catalog's products for dense recall and store their vectors in the recall backend."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Recall backend alias (default: 'default').")
        parser.add_argument("--refresh", action="store_true", help="Re-embed products that already have a vector.")
        parser.add_argument("--status", action="store_true", help="Only say how many products have a vector.")
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, backend: str, refresh: bool, status: bool, no_progress: bool, **options: Any) -> None:
        if not app_settings.ADAPTER:
            raise CommandError("SUGGESTIONS_ADAPTER is not set: there is no catalog to embed.")
        if backend not in app_settings.RECALL_BACKENDS:
            raise CommandError(f"SUGGESTIONS_RECALL_BACKENDS has no alias {backend!r}.")
        try:
            before = services.dense_status(backend)
            if not before["supported"]:
                raise CommandError(f"The recall backend {backend!r} does not store vectors.")
            if status:
                self._report(before)
                return
            todo = before["products"] if refresh else max(0, before["products"] - before["vectors"])
            stream = getattr(self.stderr, "_out", self.stderr)
            with tqdm(total=todo, desc=f"Embedding ({backend})", unit="product", file=stream, disable=no_progress) as bar:
                report = services.embed_products(alias=backend, progress=bar.update, refresh=refresh)
            after = services.dense_status(backend)
        except RecallUnavailable as exc:
            raise CommandError(f"The recall backend {backend!r} is unavailable: {exc}") from exc
        except (ImproperlyConfigured, ImportError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Embedded {report.embedded} products, stored {report.stored} vectors."))
        self._report(after)

    def _report(self, status: dict) -> None:
        state = "on" if status["enabled"] else "off (SUGGESTIONS_DENSE = False)"
        self.stdout.write(f"{status['vectors']} of {status['products']} indexed products have a vector of "
                          f"{status['encoder']!r}; dense recall is {state}.")
