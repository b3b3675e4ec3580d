"""System checks: configuration mistakes surface at start-up, not on the first search."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import app_settings


@checks.register()
def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not app_settings.ADAPTER:
        errors.append(checks.Warning(
            "SUGGESTIONS_ADAPTER is not set: search and product indexing are disabled.",
            hint="Point it at your ProductAdapter subclass, e.g. 'shop.search.ProductAdapter'.",
            id="shop_suggestions.W001"))
    else:
        try:
            import_string(app_settings.ADAPTER)
        except ImportError as exc:
            errors.append(checks.Error(f"SUGGESTIONS_ADAPTER cannot be imported: {exc}", id="shop_suggestions.E001"))
    backends = app_settings.RECALL_BACKENDS
    if not isinstance(backends, dict) or "default" not in backends:
        errors.append(checks.Error("SUGGESTIONS_RECALL_BACKENDS must be a dict with a 'default' alias.",
                                   id="shop_suggestions.E002"))
    else:
        for alias, config in backends.items():
            if not isinstance(config, dict) or "BACKEND" not in config:
                errors.append(checks.Error(f"SUGGESTIONS_RECALL_BACKENDS[{alias!r}] needs a 'BACKEND' key.",
                                           id="shop_suggestions.E003"))
    for name, minimum in (("MIN_DISTINCT_USERS", 1), ("MAX_SUGGESTION_LIMIT", 1), ("MAX_EVENTS_PER_BATCH", 1),
                          ("HISTORY_RETENTION_DAYS", 1), ("FUZZY_MIN_PREFIX_LENGTH", 1)):
        value = getattr(app_settings, name)
        if value < minimum:
            errors.append(checks.Error(f"SUGGESTIONS_{name} must be at least {minimum} (got {value}).",
                                       id="shop_suggestions.E004"))
    if app_settings.DEFAULT_SUGGESTION_LIMIT > app_settings.MAX_SUGGESTION_LIMIT:
        errors.append(checks.Error("SUGGESTIONS_DEFAULT_SUGGESTION_LIMIT exceeds SUGGESTIONS_MAX_SUGGESTION_LIMIT.",
                                   id="shop_suggestions.E005"))
    errors += _check_cache()
    return errors


#: Cache backends whose entries live in one process only.
PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)


def _check_cache() -> list[checks.CheckMessage]:
    alias = app_settings.CACHE_ALIAS
    config = getattr(settings, "CACHES", {}).get(alias)
    if config is None:
        return [checks.Error(f"SUGGESTIONS_CACHE_ALIAS names {alias!r}, which is not in CACHES.",
                             id="shop_suggestions.E006")]
    if config.get("BACKEND") in PER_PROCESS_CACHES:
        # The cache holds the version that every process's answers are keyed
        # by: in local memory, a change made in the admin or published by a
        # worker only reaches the process that made it.
        return [checks.Warning(
            f"CACHES[{alias!r}] is a per-process local-memory cache: with more than one web process, or a "
            "Celery worker, a moderation change or a publish shows only in the process that made it.",
            hint="Use a cache every process shares (django-redis, Memcached, or FileBasedCache / DatabaseCache "
                 "on a single host), or set SUGGESTIONS_CACHE_ALIAS to one. Silence shop_suggestions.W002 only "
                 "when one process serves and no worker runs.",
            id="shop_suggestions.W002")]
    return []

@checks.register()
def check_pinyin(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``SUGGESTIONS_PINYIN``: a known value, and with ``"on"`` backends able to serve it."""
    mode = app_settings.PINYIN
    if mode not in ("auto", "on", "off"):
        return [checks.Error(f"SUGGESTIONS_PINYIN must be 'auto', 'on' or 'off' (got {mode!r}).",
                             id="shop_suggestions.E041")]
    if mode != "on" or not isinstance(app_settings.RECALL_BACKENDS, dict):
        return []
    from .recall import _load_class

    errors: list[checks.CheckMessage] = []
    for alias, config in app_settings.RECALL_BACKENDS.items():
        try:
            cls = _load_class(config["BACKEND"])
        except Exception:  # noqa: BLE001 - reported by check_settings / at first use
            continue
        if not getattr(cls, "supports_pinyin", False):
            errors.append(checks.Error(
                f"SUGGESTIONS_PINYIN is 'on' but recall backend {alias!r} ({cls.__name__}) cannot match pinyin.",
                hint="Use a backend with supports_pinyin (tantivy, Elasticsearch) or set SUGGESTIONS_PINYIN='auto'.",
                id="shop_suggestions.E040"))
    return errors
