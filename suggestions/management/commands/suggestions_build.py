"""Mine suggestions from search history and the catalog, then publish them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from suggestions import services
from suggestions.adapter import get_adapter
from suggestions.conf import app_settings


class Command(BaseCommand):
    help = "Build suggestions from search history (k-anonymous, time-decayed) and the catalog, and publish them."

    def add_arguments(self, parser):
        parser.add_argument("--no-catalog", action="store_true", help="Mine history only.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, no_catalog: bool, no_progress: bool, **options):
        include_catalog = not no_catalog and bool(app_settings.ADAPTER)
        total = get_adapter().count() if include_catalog else 0
        bar = tqdm(total=total, desc="catalog", unit="doc", disable=no_progress or not include_catalog,
                   file=self.stderr._out)
        try:
            report = services.build_suggestions(progress=bar.update, include_catalog=include_catalog)
        except services.RecallUnavailable as exc:
            raise CommandError(f"Suggestions were stored but the recall backend is unavailable: {exc}. "
                               "They will be served after the next successful publish.") from exc
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"Built suggestions: {report.history} from history, {report.catalog} from the catalog; "
            f"{report.created} created, {report.updated} updated, {report.removed} stale removed; "
            f"understanding gazetteer: {report.gazetteer_phrases} catalog phrases; "
            f"spelling dictionary: {report.spelling_words} words."))
