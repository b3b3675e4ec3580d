"""``manage.py suggestions_retrain KIND``: one run of the learning loop from the shell.

The same as the ``suggestions.ml.retrain`` task (which the beat schedule runs
nightly): snapshot, train a challenger, evaluate it and the active version on
the same held-out window, promote only when better. Progress lines are
printed as the run goes; the run and its log are also in the admin.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from suggestions import services


class Command(BaseCommand):
    help = ("Retrain a model kind through the learning loop and promote the new version only when it beats "
            "the active one on the held-out newest days.")

    def add_arguments(self, parser):
        parser.add_argument("kind", help=f"Model kind ({', '.join(sorted(services.KINDS))}).")

    def handle(self, *args, kind: str, **options):
        if kind not in services.KINDS:
            raise CommandError(f"Unknown model kind {kind!r}; choose one of: {', '.join(sorted(services.KINDS))}.")
        try:
            report = services.retrain(kind, log=lambda line: self.stdout.write(f"  {line}"))
        except services.RetrainBusy as exc:
            raise CommandError(f"{exc}; wait for it to finish (see Retrain runs in the admin).") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        version = report.version
        if report.promoted:
            self.stdout.write(self.style.SUCCESS(f"Promoted {kind} {version.version}: {version.decision}"))
        else:
            self.stdout.write(self.style.WARNING(f"Kept the active {kind}; {version.version} was rejected: "
                                                 f"{version.decision}"))
