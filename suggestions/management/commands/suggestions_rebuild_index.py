"""``manage.py suggestions_rebuild_index``: rebuild the product index.

Every searchable product (``SUGGESTIONS_ADAPTER``) is indexed into a new
version behind the backend alias; searches keep using the old version until
the new one is complete. Run it after bulk imports, after changing the
adapter, or with ``SUGGESTIONS_INDEX_ON_SAVE`` off.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from suggestions import services
from suggestions.adapter import get_adapter
from suggestions.conf import app_settings
from suggestions.recall import RecallUnavailable, get_backend


class Command(BaseCommand):
    help = "Rebuild the product search index from the catalog into a new version and swap it in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", default="default", metavar="ALIAS", help="Recall backend alias (default: 'default').")
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, backend: str, no_progress: bool, **options: Any) -> None:
        if not app_settings.ADAPTER:
            raise CommandError("SUGGESTIONS_ADAPTER is not set: there is no catalog to index.")
        if backend not in app_settings.RECALL_BACKENDS:
            raise CommandError(f"SUGGESTIONS_RECALL_BACKENDS has no alias {backend!r}.")
        try:
            total = get_adapter().count()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc

        # tqdm needs the raw stream: Django's OutputWrapper appends a newline
        # to every write, which breaks the bar's carriage-return redraws.
        stream = getattr(self.stderr, "_out", self.stderr)
        bar = tqdm(total=total, desc=f"Indexing ({backend})", unit="product", file=stream, disable=no_progress)
        try:
            version = services.rebuild_index(progress=bar.update, alias=backend)
            count = get_backend(backend).count_products()
        except RecallUnavailable as exc:
            raise CommandError(f"The recall backend {backend!r} is unavailable: {exc}") from exc
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(f"Rebuilt product index {backend!r}: version {version}, {count} products indexed."))
