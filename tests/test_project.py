"""Project-level guarantees: migrations match models, checks pass, web processes stay light."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits non-zero when a migration is missing
        pytest.fail(f"Models and migrations disagree:\n{out.getvalue()} (exit {exc.code})")


def test_app_identity():
    from django.apps import apps

    config = apps.get_app_config("shop_suggestions")
    assert config.name == "suggestions"
    assert config.default_auto_field == "django.db.models.BigAutoField"


def test_system_checks_pass_for_the_demo():
    call_command("check", "--fail-level", "WARNING")


def test_checks_report_bad_configuration(settings):
    from suggestions.checks import check_settings

    settings.SUGGESTIONS_ADAPTER = "nope.Missing"
    settings.SUGGESTIONS_RECALL_BACKENDS = {"other": {}}
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 0
    ids = {m.id for m in check_settings()}
    assert {"shop_suggestions.E001", "shop_suggestions.E002", "shop_suggestions.E004"} <= ids


def test_web_process_does_not_import_heavy_ml_modules():
    code = (
        "import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE']='shop_search.settings'; django.setup();"
        "import shop_search.urls, suggestions.services, suggestions.api.views;"
        "heavy=[m for m in ('torch','transformers','elasticsearch') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
