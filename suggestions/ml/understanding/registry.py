"""One loaded understanding model per process, following the active ModelVersion.

Imported only by Celery workers and commands (loading a model imports torch;
this module itself imports torch lazily, so importing it is cheap).

Contracts:

* :func:`load_model` loads a saved model folder once per process, device and
  quantisation (keyed by the resolved path); later calls return the same
  object. On the CPU it quantises the model as ``SUGGESTIONS_UNDERSTANDING_QUANTIZE``
  says (``off``, the default, ``int8`` or ``onnx-int8``, see
  :meth:`UnderstandingModel.quantize`).
* :func:`active_model` returns the loaded model of the active
  ``ModelVersion(kind="understanding")``, or None when there is none (or its
  artefact cannot be loaded: logged, and retried at the next check). It asks
  the database at most once every ``SUGGESTIONS_MODEL_CHECK_SECONDS`` seconds
  (default 30): a promotion or rollback is picked up within that time without
  a worker restart. The model of a version that stops being active is dropped
  from the cache, so a worker holds at most the active model.
* Thread-safe: loading happens under a lock; concurrent callers get the same
  object.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .model import UnderstandingModel

logger = logging.getLogger(__name__)

KIND = "understanding"

_lock = threading.RLock()
_models: dict[tuple[str, str, str], UnderstandingModel] = {}
# What active_model() last saw: (version pk, version label, artefact path) or None.
_active: dict[str, Any] = {"checked_at": float("-inf"), "key": None, "model": None}


def artefact_path(uri: str) -> str:
    """A ``ModelVersion.artefact_uri`` as a local path (``file://`` accepted)."""
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return os.path.realpath(os.path.expanduser(uri))


def check_seconds() -> float:
    """Seconds between two database checks of the active version."""
    from ...conf import app_settings

    return app_settings.MODEL_CHECK_SECONDS


def quantize_setting() -> str:
    """``SUGGESTIONS_UNDERSTANDING_QUANTIZE``, checked."""
    from ...conf import app_settings
    from .model import QUANTIZE_MODES

    mode = app_settings.UNDERSTANDING_QUANTIZE
    if mode not in QUANTIZE_MODES:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"SUGGESTIONS_UNDERSTANDING_QUANTIZE={mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    return mode


def load_model(uri: str, *, device: str | None = None, quantize: str | None = None) -> UnderstandingModel:
    """Load (once per process) the model saved at ``uri``.

    Args:
        uri: Folder written by :meth:`UnderstandingModel.save` (or ``file://`` URI).
        device: ``cpu`` / ``cuda``; default: CUDA when available.
        quantize: ``off`` / ``int8`` / ``onnx-int8``; default ``SUGGESTIONS_UNDERSTANDING_QUANTIZE``.
            Applied on the CPU only (:meth:`UnderstandingModel.quantize`).

    Returns:
        The shared model object.
    """
    from ..encoders import require_ml

    require_ml()
    path = artefact_path(uri)
    mode = quantize if quantize is not None else quantize_setting()
    key = (path, device or "", mode)
    with _lock:
        model = _models.get(key)
        if model is None:
            from .model import UnderstandingModel

            started = time.perf_counter()
            model = UnderstandingModel.load(path, device=device)
            model.quantize(mode)
            model.gazetteer = _gazetteer()
            _models[key] = model
            logger.info("suggestions: loaded understanding model %s from %s (quantisation %s) in %.1f s",
                        model.version, path, model.quantized, time.perf_counter() - started)
        return model


class _LiveGazetteer:
    """The process's current gazetteer at each call: :func:`get_gazetteer`
    reloads it when a worker rebuilds the file, and a model loaded once per
    process must see the new catalog spellings too."""

    def current(self) -> Any:
        """The gazetteer as it is now (what a batch of predictions uses)."""
        from ...nlp.gazetteer import get_gazetteer

        return get_gazetteer()

    def tag(self, text: str) -> list[Any]:
        return self.current().tag(text)


def _gazetteer() -> Any:
    """Entity value normalisation through the catalog gazetteer."""
    return _LiveGazetteer()


def active_model(*, device: str | None = None, force_check: bool = False) -> UnderstandingModel | None:
    """The loaded model of the active understanding version, or None.

    Args:
        device: Passed to :func:`load_model`.
        force_check: Ask the database now instead of waiting for the interval.
    """
    now = time.monotonic()
    with _lock:
        if not force_check and now - _active["checked_at"] < check_seconds():
            return _active["model"]
        from ...models import ModelVersion, ModelVersionStatus

        row = (ModelVersion.objects.filter(kind=KIND, status=ModelVersionStatus.ACTIVE)
               .values_list("pk", "version", "artefact_uri").first())
        _active["checked_at"] = now
        mode = quantize_setting() if row else None  # (imports torch: only when there is a model to load)
        key = (row[0], row[1], artefact_path(row[2]), device or "", mode) if row else None
        if key == _active["key"] and _active["model"] is not None:
            return _active["model"]
        previous = _active["model"]
        model = None
        if row is not None:
            try:
                model = load_model(row[2], device=device, quantize=mode)
                model.meta["version"] = row[1]
            except Exception:  # noqa: BLE001 - a broken artefact must not stop the workers
                logger.exception("suggestions: cannot load understanding model %s (%s)", row[1], row[2])
                # Retried at the next check, not at every call.
                _active.update(key=None, model=None)
                return None
        if previous is not None and previous is not model:
            _forget(previous)
        _active.update(key=key, model=model)
        return model


def _forget(model: UnderstandingModel) -> None:
    for key, value in list(_models.items()):
        if value is model:
            del _models[key]


def reset() -> None:
    """Forget every loaded model and the last check (tests, or to free memory)."""
    with _lock:
        _models.clear()
        _active.update(checked_at=float("-inf"), key=None, model=None)
