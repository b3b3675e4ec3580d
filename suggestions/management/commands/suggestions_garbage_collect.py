"""Delete search history older than SUGGESTIONS_HISTORY_RETENTION_DAYS."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from suggestions import services
from suggestions.conf import app_settings


class Command(BaseCommand):
    help = "Delete search history events and daily statistics older than the retention period."

    def handle(self, *args, **options):
        counts = services.garbage_collect()
        summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        self.stdout.write(self.style.SUCCESS(
            f"Retention {app_settings.HISTORY_RETENTION_DAYS} days: deleted {summary}."))
