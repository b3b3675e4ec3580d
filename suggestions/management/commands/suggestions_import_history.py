"""Import past searches from a CSV file into search history.

The file needs a user column, a query column and a time column; their names
are options, and common names are recognised on their own (``user``/``user_id``,
``query``/``search``, ``time``/``query_time``/``timestamp``), so the Best Buy
search log imports as it is. Re-importing the same file stores nothing twice.

``--product-column`` names a column with the id of the product clicked after
the search (as the shop's adapter names products); each is stored as a product
click without a position (``--click-time-column``: when it was clicked), which
the rankers learn from. Ids the catalog does not know are left out and counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from suggestions import services

USER_COLUMNS = ("user", "user_id", "userid", "visitor", "session")
QUERY_COLUMNS = ("query", "search", "search_query", "q", "term")
TIME_COLUMNS = ("time", "query_time", "timestamp", "searched_at", "created_at", "date")


def _pick(header: list[str], wanted: str | None, known: tuple[str, ...], what: str) -> str:
    lower = {h.strip().lower(): h for h in header}
    if wanted:
        if wanted in header:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise CommandError(f"Column {wanted!r} ({what}) is not in the file; columns are: {', '.join(header)}.")
    for name in known:
        if name in lower:
            return lower[name]
    raise CommandError(f"No {what} column found (tried {', '.join(known)}); name it with --{what}-column. "
                       f"Columns are: {', '.join(header)}.")


class Command(BaseCommand):
    help = "Import a CSV of past searches (user, query, time) into search history."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file with a header row.")
        parser.add_argument("--user-column", help="Column with the user/session id (default: auto).")
        parser.add_argument("--query-column", help="Column with the query text (default: auto).")
        parser.add_argument("--time-column", help="Column with the search time (default: auto).")
        parser.add_argument("--product-column",
                            help="Column with the id of the product clicked after the search (default: none).")
        parser.add_argument("--click-time-column", help="Column with the click time (default: the search time).")
        parser.add_argument("--time-format", help="strptime format of the time column (default: ISO 8601).")
        parser.add_argument("--delimiter", default=",", help="Field delimiter (default ',').")
        parser.add_argument("--encoding", default="utf-8", help="File encoding (default utf-8).")
        parser.add_argument("--limit", type=int, help="Import at most this many rows.")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        skipped: dict[str, int] = {"empty query": 0, "bad time": 0, "bad click time": 0}
        time_format = opts["time_format"]

        def parse_time(value: str) -> datetime:
            value = value.strip()
            return datetime.strptime(value, time_format) if time_format else datetime.fromisoformat(value)

        try:
            handle = path.open(newline="", encoding=opts["encoding"])
        except (OSError, LookupError) as exc:
            raise CommandError(f"Cannot open {path}: {exc}") from exc
        with handle:
            reader = csv.DictReader(handle, delimiter=opts["delimiter"])
            header = reader.fieldnames or []
            if not header:
                raise CommandError(f"{path} is empty or has no header row.")
            user_col = _pick(header, opts["user_column"], USER_COLUMNS, "user")
            query_col = _pick(header, opts["query_column"], QUERY_COLUMNS, "query")
            time_col = _pick(header, opts["time_column"], TIME_COLUMNS, "time")
            product_col = (_pick(header, opts["product_column"], (), "product") if opts["product_column"] else None)
            click_col = (_pick(header, opts["click_time_column"], (), "click-time")
                         if opts["click_time_column"] else None)
            if click_col and not product_col:
                raise CommandError("--click-time-column needs --product-column.")
            bar = tqdm(desc="import", unit="row", disable=opts["no_progress"], file=self.stderr._out)

            def rows() -> Iterator[services.ImportedSearch]:
                for n, row in enumerate(reader):
                    if opts["limit"] is not None and n >= opts["limit"]:
                        return
                    query = (row.get(query_col) or "").strip()
                    if not query:
                        skipped["empty query"] += 1
                        continue
                    try:
                        when = parse_time(row.get(time_col) or "")
                    except ValueError:
                        skipped["bad time"] += 1
                        continue
                    product = (row.get(product_col) or "").strip() if product_col else ""
                    clicked = None
                    if product and click_col:
                        try:
                            clicked = parse_time(row.get(click_col) or "")
                        except ValueError:
                            skipped["bad click time"] += 1
                    yield services.ImportedSearch(user=(row.get(user_col) or "").strip(), query=query, time=when,
                                                  product=product, clicked_at=clicked)

            try:
                report = services.import_search_history(rows(), progress=bar.update)
            except UnicodeDecodeError as exc:
                raise CommandError(f"{path} is not {opts['encoding']}: {exc}; use --encoding.") from exc
            finally:
                bar.close()
        skipped_text = ", ".join(f"{n} with {why}" for why, n in skipped.items() if n) or "none"
        clicks_text = ""
        if product_col:
            clicks_text = f" and {report.clicks} product clicks"
            if report.unknown_products:
                clicks_text += f" ({report.unknown_products} clicks on products the catalog does not have left out)"
        self.stdout.write(self.style.SUCCESS(
            f"Imported {report.imported} searches{clicks_text} ({report.duplicates} already present; "
            f"skipped: {skipped_text}). Run `manage.py suggestions_build` to mine suggestions from them."))
