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
        parser.add_argument("--options", default="{}",
                            help='The kind\'s run options as JSON, e.g. \'{"base": "en", "max_train": 2000}\'.')
        parser.add_argument("--in-worker", action="store_true",
                            help="Send the retrain to the workers (task suggestions.ml.retrain) instead of "
                                 "running it here.")

    def handle(self, *args, kind: str, **opts):
        import json

        if kind not in services.KINDS:
            raise CommandError(f"Unknown model kind {kind!r}; choose one of: {', '.join(sorted(services.KINDS))}.")
        try:
            options = json.loads(opts["options"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--options is not JSON: {exc}") from exc
        if not isinstance(options, dict):
            raise CommandError("--options must be a JSON object.")
        if opts["in_worker"]:
            services.request_retrain(kind, options)
            self.stdout.write(self.style.SUCCESS(f"Sent the {kind} retrain to the workers; follow it in the admin "
                                                 "(Retrain runs)."))
            return
        try:
            report = services.retrain(kind, options=options, log=lambda line: self.stdout.write(f"  {line}"))
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
