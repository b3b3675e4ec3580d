"""A JSON parser for public write endpoints: bounded in size and in depth.

Contracts:
* The body is refused with HTTP 413 *before* it is parsed when its
  ``Content-Length`` is over the view's limit, and while it is read when the
  bytes actually read go over it (a wrong or missing ``Content-Length`` does
  not get a larger body through). The limit is the view's
  ``max_body_bytes()`` (``POST events/``: ``SUGGESTIONS_MAX_EVENTS_PER_BATCH``
  times ``SUGGESTIONS_MAX_EVENT_BYTES``), else Django's
  ``DATA_UPLOAD_MAX_MEMORY_SIZE``.
* Arrays and objects nested deeper than :data:`MAX_JSON_DEPTH` are a parse
  error (HTTP 400), and so is nesting deep enough to exhaust the decoder's
  recursion: no ``RecursionError`` escapes as a 500.
* Malformed JSON and bad UTF-8 are parse errors (HTTP 400), as with DRF's
  :class:`~rest_framework.parsers.JSONParser`.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

#: Deepest nesting of arrays and objects a body may have. An event batch needs
#: four levels (``{"events": [{"suggestions": [...]}]}``).
MAX_JSON_DEPTH = 8


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def _max_bytes(parser_context: dict[str, Any] | None) -> int | None:
    view = (parser_context or {}).get("view")
    limit = getattr(view, "max_body_bytes", None)
    if callable(limit):
        return int(limit())
    fallback = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return None if fallback is None else int(fallback)


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"Request body too large: at most {limit} bytes are accepted.")


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative, so a deep value cannot exhaust the stack here either.
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class BoundedJSONParser(JSONParser):
    """:class:`~rest_framework.parsers.JSONParser` with the limits of the module docstring."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = _max_bytes(parser_context)
        request = (parser_context or {}).get("request")
        if limit is not None and request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise _too_large(limit)
        if stream is None:
            raise exceptions.ParseError("JSON parse error - empty body.")
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise _too_large(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=self._reject_constant) if self.strict else json.loads(text)
        except RecursionError as exc:
            raise exceptions.ParseError(
                f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels."
            ) from exc
        except (ValueError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return data

    @staticmethod
    def _reject_constant(value: str):
        # As DRF's strict mode: NaN and Infinity are not JSON.
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
