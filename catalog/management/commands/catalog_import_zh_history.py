"""Import real Taobao queries as the search history of a Chinese demo shop.

``zh/multicpr/train.query.txt`` (100,000 distinct queries, ``id<TAB>query``)
has no shoppers, times or counts. Each query is imported as searched once by
each of ``--shoppers`` synthetic shoppers (default: the k-anonymity gate,
``SUGGESTIONS_MIN_DISTINCT_USERS``, so that ``suggestions_build`` can mine
them) at noon today, so every query weighs the same. Re-importing on the
same day stores nothing twice. Then ``suggestions_build`` publishes them, and the suggest API
completes pinyin ("paoxie", "pao x"), initials ("px") and mixed input.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from suggestions import services

QUERY_FILE = Path("zh") / "multicpr" / "train.query.txt"


class Command(BaseCommand):
    help = "Import the Taobao queries of zh/multicpr as a Chinese shop's search history (demo)."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", required=True, type=Path,
                            help="Folder of the shared data (the one holding zh/multicpr/).")
        parser.add_argument("--shoppers", type=int, default=None,
                            help="Synthetic shoppers per query (default: SUGGESTIONS_MIN_DISTINCT_USERS).")
        parser.add_argument("--limit", type=int, default=None, help="Import only the first N queries.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, **opts):
        path = opts["data_dir"] / QUERY_FILE
        if not path.is_file():
            raise CommandError(f"{path} not found: point --data-dir at the folder holding zh/multicpr/.")
        shoppers = opts["shoppers"] or services.app_settings.MIN_DISTINCT_USERS
        if shoppers < 1:
            raise CommandError("--shoppers must be at least 1.")
        today = timezone.make_aware(datetime.combine(timezone.localdate(), time(12)))
        bar = tqdm(desc="import", unit="search", disable=opts["no_progress"], file=self.stderr._out)

        def rows() -> Iterator[services.ImportedSearch]:
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh):
                    if opts["limit"] is not None and n >= opts["limit"]:
                        return
                    query = line.rstrip("\n").split("\t", 1)[-1].strip()
                    if not query:
                        continue
                    for shopper in range(shoppers):
                        yield services.ImportedSearch(user=f"zh-demo-{shopper}", query=query, time=today)

        try:
            report = services.import_search_history(rows(), progress=bar.update)
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(
            f"Imported {report.imported} searches ({report.duplicates} already present) from {path.name}, "
            f"{shoppers} synthetic shoppers per query. Run `manage.py suggestions_build` to publish them."))
