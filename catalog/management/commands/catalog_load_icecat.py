"""``manage.py catalog_load_icecat``: load the Open Icecat sample products.

Contracts:
* Reads ``icecat_products_*.json.zip`` (JSON arrays, possibly zipped) from
  ``catalog/data/icecat/`` unless ``--path`` names another folder or file.
* Idempotent: products are upserted by ``source_id`` (the Icecat id) with
  ``bulk_create(update_conflicts=True)``; re-running updates, never
  duplicates. The whole load is one transaction.
* Bulk inserts send no ``post_save``, so the search index is not touched
  product by product: ``--index`` rebuilds it once at the end (else run
  ``manage.py suggestions_rebuild_index`` afterwards).
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from catalog.icecat import product_fields
from catalog.models import Product

#: Fields refreshed when a product is loaded again.
UPDATE_FIELDS = [
    "title",
    "brand",
    "model_number",
    "product_type",
    "price",
    "description",
    "attributes",
    "ean",
    "image_url",
    "updated",
]


def default_data_dir() -> Path:
    """The Icecat files shipped with the demo catalog."""
    return Path(apps.get_app_config("catalog").path) / "data" / "icecat"


def _natural_key(path: Path) -> list[Any]:
    # icecat_products_10 sorts after icecat_products_9.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def find_data_files(path: Path) -> list[Path]:
    """The ``.json.zip`` / ``.json`` files at ``path`` (a folder or one file).

    Args:
        path: Folder or file.

    Returns:
        Files in natural name order.

    Raises:
        CommandError: When ``path`` does not exist or holds no data file.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CommandError(f"{path} does not exist.")
    files = [p for p in path.iterdir() if p.is_file() and p.name.endswith((".json.zip", ".json"))]
    if not files:
        raise CommandError(f"No .json.zip or .json files in {path}.")
    return sorted(files, key=_natural_key)


def read_records(path: Path) -> Iterator[list[dict[str, Any]]]:
    """Yield the product array of each JSON document in ``path`` (zip or plain JSON).

    Raises:
        CommandError: When a file is not valid JSON or not an array.
    """
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for member in sorted(n for n in archive.namelist() if n.endswith(".json")):
                    with archive.open(member) as fh:
                        yield _as_array(json.load(fh), f"{path.name}:{member}")
        else:
            with path.open("rb") as fh:
                yield _as_array(json.load(fh), path.name)
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise CommandError(f"Cannot read {path}: {exc}") from exc


def _as_array(data: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise CommandError(f"{where} is not a JSON array of products.")
    return data


class Command(BaseCommand):
    help = (
        "Load the Open Icecat sample products into the catalog (upsert by Icecat id). "
        "With --index, also rebuilds the search index; else run suggestions_rebuild_index afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", type=Path, help="Folder with icecat_products_*.json.zip files, or one file (default: the shipped data).")
        parser.add_argument("--limit", type=int, default=None, help="Load at most this many products.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Products per bulk insert (default 1000).")
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")
        parser.add_argument("--index", action="store_true",
                            help="Rebuild the search index once loaded (what suggestions_rebuild_index does).")

    def handle(self, *args: Any, **options: Any) -> None:
        limit: int | None = options["limit"]
        batch_size: int = options["batch_size"]
        if limit is not None and limit < 0:
            raise CommandError("--limit must not be negative.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        files = find_data_files(options["path"] or default_data_dir())

        started = time.monotonic()
        stats = {"loaded": 0, "created": 0, "skipped": 0}
        # tqdm needs the raw stream: Django's OutputWrapper appends a newline
        # to every write, which breaks the bar's carriage-return redraws.
        stream = getattr(self.stderr, "_out", self.stderr)
        # disable=None: tqdm turns itself off when the stream is not a tty.
        bar = tqdm(total=0, unit="product", desc="Loading", file=stream, disable=True if options["no_progress"] else None)
        try:
            with transaction.atomic():
                for path in files:
                    for records in read_records(path):
                        if limit is not None:
                            records = records[: max(limit - stats["loaded"] - stats["skipped"], 0)]
                        bar.total += len(records)
                        bar.refresh()
                        for start in range(0, len(records), batch_size):
                            self._load_batch(records[start : start + batch_size], stats)
                            bar.update(min(batch_size, len(records) - start))
                    if limit is not None and stats["loaded"] + stats["skipped"] >= limit:
                        break
        finally:
            bar.close()

        elapsed = time.monotonic() - started
        updated = stats["loaded"] - stats["created"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {stats['loaded']} Icecat products from {len(files)} file(s) in {elapsed:.1f}s: "
                f"{stats['created']} created, {updated} updated, {stats['skipped']} skipped."
            )
        )
        if options["index"]:
            call_command("suggestions_rebuild_index", no_progress=options["no_progress"], stdout=self.stdout._out,
                         stderr=stream)
        else:
            self.stdout.write("Now run `manage.py suggestions_rebuild_index` to make them searchable.")

    def _load_batch(self, records: list[dict[str, Any]], stats: dict[str, int]) -> None:
        # Keyed by source id: the same id twice in one INSERT ... ON CONFLICT
        # is an error on PostgreSQL; the last record wins.
        products: dict[str, Product] = {}
        for record in records:
            try:
                fields = product_fields(record)
            except (KeyError, TypeError, AttributeError):
                stats["skipped"] += 1
                continue
            if not fields["title"] or not fields["source_id"]:
                stats["skipped"] += 1
                continue
            products[fields["source_id"]] = Product(**fields)
        if not products:
            return
        existing = Product.objects.filter(source_id__in=list(products)).count()
        Product.objects.bulk_create(
            list(products.values()),
            update_conflicts=True,
            unique_fields=["source_id"],
            update_fields=UPDATE_FIELDS,
        )
        stats["loaded"] += len(products)
        stats["created"] += len(products) - existing
