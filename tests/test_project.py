"""Project-level guarantees: migrations match models, checks pass, web processes stay light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[1]


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


def test_system_checks_pass_for_the_demo(tmp_path):
    """The demo's own settings (embedded defaults), in a process of their own."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop_search.settings", "SHOP_VAR_DIR": str(tmp_path)}
    for name in ("REDIS_URL", "DATABASE_URL", "ELASTICSEARCH_URL"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "manage.py", "check", "--fail-level", "WARNING"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_per_process_cache_is_reported(settings):
    from suggestions.checks import check_settings

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "shop_suggestions.W002" in {m.id for m in check_settings()}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": "/nonexistent-never-written"}}
    assert "shop_suggestions.W002" not in {m.id for m in check_settings()}
    settings.SUGGESTIONS_CACHE_ALIAS = "suggestions"
    assert "shop_suggestions.E006" in {m.id for m in check_settings()}


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
        "import shop_search.urls, suggestions.services, suggestions.api.views, suggestions.admin;"
        "heavy=[m for m in ('torch','transformers','elasticsearch') if m in sys.modules];"
        # The worker-only model code, even its pure-Python parts, stays out of web processes.
        "heavy+=sorted(m for m in sys.modules if m.startswith('suggestions.ml.'));"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_the_receivers_import_the_tasks():
    """The tasks call services; the modules behind services announce signals instead of
    importing the tasks (suggestions/receivers.py sends them), so there is no import cycle."""
    app = Path(__file__).resolve().parents[1] / "suggestions"
    importers = []
    for path in sorted(app.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}" if node.module else "", *(a.name for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n in ("tasks", "suggestions.tasks") for n in names):
                importers.append(path.relative_to(app).as_posix())
    assert sorted(set(importers)) == ["receivers.py"]
