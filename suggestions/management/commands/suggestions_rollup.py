"""Rebuild the search analytics rollups of a range of days."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from suggestions import services


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"Not a date: {value!r}; write it as YYYY-MM-DD.") from exc


class Command(BaseCommand):
    help = ("Rebuild the search analytics rollups from the events: today and the day before by default. "
            "Re-running a day replaces it.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=1,
                            help="Rebuild today and this many days before it (default 1: yesterday and today).")
        parser.add_argument("--since", help="First day to rebuild (YYYY-MM-DD); overrides --days.")
        parser.add_argument("--until", help="Last day to rebuild (YYYY-MM-DD; default today).")

    def handle(self, *args, days: int, since: str | None, until: str | None, **options):
        def progress(day) -> None:
            self.stdout.write(
                f"{day.day}: {day.searches:,} searches, {day.impressions:,} suggestion lists, "
                f"{day.suggestion_clicks:,} suggestions chosen, {day.product_clicks:,} result clicks, "
                f"{day.queries:,} distinct queries ({day.seconds:.2f} s)")

        try:
            report = services.rollup_analytics(days_back=days, since=_day(since) if since else None,
                                               until=_day(until) if until else None, progress=progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if report.skipped:
            self.stdout.write(self.style.WARNING(
                f"Skipped {len(report.skipped)} day(s) older than the retention period "
                f"({report.skipped[0]} .. {report.skipped[-1]}): their events are gone, their totals are kept."))
        seconds = sum(d.seconds for d in report.days)
        self.stdout.write(self.style.SUCCESS(f"Rolled up {len(report.days)} day(s) in {seconds:.1f} s."))
