"""Propose synonyms from co-clicks: pending pairs a merchandiser approves in the admin."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from tqdm import tqdm

from suggestions import services


class Command(BaseCommand):
    help = ("Propose synonyms from co-clicks (queries that pass the k-anonymity gate whose clicked products "
            "overlap); they wait in the admin as pending until approved.")

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, no_progress: bool, **options):
        bar = tqdm(desc="clicked products", unit="product", disable=no_progress, file=self.stderr._out)
        try:
            report = services.mine_synonyms(progress=bar.update)
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"Synonyms: {report['pairs']} pairs found; {report['created']} new pending, "
            f"{report['updated']} existing refreshed (their decisions kept)."))
