"""JSON rendering of the API's answers with orjson.

DRF's :class:`~rest_framework.renderers.JSONRenderer` runs the standard
library's encoder, about 16 µs for a suggest answer of eight completions; orjson
writes the same bytes in about 1.3 µs (timeit figures in bench/RESULTS.md,
"Suggest with orjson rendering"). :class:`FastJSONRenderer` is DRF's
renderer and answers with orjson only where the two give the same JSON:

* compact, unescaped output (DRF's defaults ``COMPACT_JSON`` and
  ``UNICODE_JSON``) and no ``indent`` asked for (``Accept:
  application/json; indent=4`` or the browsable API);
* only the types orjson writes as DRF does: str, int, float, bool, None, dict
  with str keys, list, tuple. Anything else (datetimes, Decimals, UUIDs, lazy
  strings, str subclasses, dataclasses, integers past 64 bits, ``NaN``) goes to
  DRF's encoder, which renders the whole answer as it always did;
* ``U+2028``/``U+2029`` escaped as DRF does (they end a line in older
  JavaScript).
"""

from __future__ import annotations

import math

import orjson
from rest_framework.renderers import JSONRenderer

#: Types orjson would write its own way (or DRF would reject): handed to ``default``, which refuses them.
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


class _NotPlain(Exception):
    """The data holds something only DRF's encoder renders as DRF does."""


def _refuse(obj):
    raise _NotPlain


def _has_special_float(data) -> bool:
    if isinstance(data, float):
        return not math.isfinite(data)
    if isinstance(data, dict):
        return any(_has_special_float(v) for v in data.values())
    if isinstance(data, (list, tuple)):
        return any(_has_special_float(v) for v in data)
    return False


class FastJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, encoding with orjson where the output is the same (see the module)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None or self.ensure_ascii or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        context = renderer_context or {}
        # The plain media type asks for no indent: skip DRF's parse of its parameters.
        maybe_indented = accepted_media_type not in (None, "application/json") or "indent" in context
        if maybe_indented and self.get_indent(accepted_media_type or "", context) is not None:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            out = orjson.dumps(data, default=_refuse, option=_PASSTHROUGH)
        except (_NotPlain, TypeError):  # orjson.JSONEncodeError is a TypeError
            return super().render(data, accepted_media_type, renderer_context)
        if b"null" in out and _has_special_float(data):
            # orjson writes NaN and infinities as null; DRF (STRICT_JSON) refuses them.
            return super().render(data, accepted_media_type, renderer_context)
        if b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out:
            out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return out


def api_renderer_classes() -> list[type]:
    """The host's renderers (``REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"]``), with DRF's
    own JSON renderer, where the host uses it, replaced by :class:`FastJSONRenderer`
    in the same place. A host with a JSON renderer of its own keeps it."""
    from rest_framework.settings import api_settings

    return [FastJSONRenderer if cls is JSONRenderer else cls for cls in api_settings.DEFAULT_RENDERER_CLASSES]
