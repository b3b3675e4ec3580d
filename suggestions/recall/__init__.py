"""Recall backends, configured like Django's ``CACHES``::

    SUGGESTIONS_RECALL_BACKENDS = {
        "default": {"BACKEND": "suggestions.recall.tantivy", "OPTIONS": {}},
        "es": {"BACKEND": "suggestions.recall.elasticsearch",
               "OPTIONS": {"HOSTS": ["http://localhost:9200"], "INDEX_PREFIX": "shop"}},
    }

``BACKEND`` is a module path (its ``backend_class`` attribute is used) or a
class path. Each alias is built once per process; :func:`reset_backends`
drops them (tests, settings changes).
"""

from __future__ import annotations

import threading
from importlib import import_module
from types import ModuleType

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..conf import app_settings
from .base import (
    BaseRecallBackend,
    RecallUnavailable,
    SearchBoosts,
    SearchFilters,
    SearchHit,
    SearchResult,
    SuggestionEntry,
    SuggestionHit,
    query_variants,
)

__all__ = [
    "BaseRecallBackend",
    "RecallUnavailable",
    "SearchBoosts",
    "SearchFilters",
    "SearchHit",
    "SearchResult",
    "SuggestionEntry",
    "SuggestionHit",
    "get_backend",
    "query_variants",
    "reset_backends",
]

_backends: dict[str, BaseRecallBackend] = {}
_lock = threading.Lock()


def _load_class(path: str) -> type[BaseRecallBackend]:
    """A module path (its ``backend_class``) or a class path."""
    try:
        obj = import_module(path)
    except ImportError:
        try:
            obj = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"Recall backend {path!r} cannot be imported: {exc}") from exc
    if isinstance(obj, ModuleType):
        obj = getattr(obj, "backend_class", None)
        if obj is None:
            raise ImproperlyConfigured(f"Module {path!r} defines no backend_class.")
    if not (isinstance(obj, type) and issubclass(obj, BaseRecallBackend)):
        raise ImproperlyConfigured(f"{path!r} is not a BaseRecallBackend subclass.")
    return obj


def get_backend(alias: str = "default") -> BaseRecallBackend:
    """The backend for ``alias``, built on first use and kept for the process."""
    backend = _backends.get(alias)
    if backend is not None:
        return backend
    with _lock:
        backend = _backends.get(alias)
        if backend is None:
            config = app_settings.RECALL_BACKENDS.get(alias)
            if config is None:
                raise ImproperlyConfigured(f"SUGGESTIONS_RECALL_BACKENDS has no alias {alias!r}.")
            cls = _load_class(config["BACKEND"])
            backend = cls(alias, config.get("OPTIONS", {}))
            _backends[alias] = backend
    return backend


def reset_backends() -> None:
    """Close and forget every built backend."""
    with _lock:
        for backend in _backends.values():
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - closing must not fail a reset
                pass
        _backends.clear()


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("SUGGESTIONS_"):
        reset_backends()


setting_changed.connect(_on_setting_changed, dispatch_uid="suggestions.recall.reset")
