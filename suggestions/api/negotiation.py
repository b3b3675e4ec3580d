"""Content negotiation for the endpoints a storefront calls on every keystroke.

DRF's :class:`~rest_framework.negotiation.DefaultContentNegotiation` parses the
``Accept`` header and orders its media types on every request. What a
typeahead sends is one of three values (none, ``*/*`` from ``fetch``, or
``application/json``), and for each of them DRF picks the first renderer, JSON.
:class:`JSONFirstNegotiation` gives that answer without the parsing and hands
every other request (another ``Accept``, ``?format=``, a format suffix) to DRF.
The ``?format=`` check reads :func:`~.querystring.plain_query`, so a plain
keystroke request never builds Django's ``QueryDict``.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

from .querystring import plain_query

#: ``Accept`` values answered with the first renderer when it is JSON.
PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})


class JSONFirstNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, short-circuited for the plain ``Accept`` values (see the module)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        first = renderers[0] if renderers else None
        if (
            first is not None
            and first.media_type == "application/json"
            and format_suffix is None
            and request.META.get("HTTP_ACCEPT", "") in PLAIN_ACCEPT
            and self.settings.URL_FORMAT_OVERRIDE not in _query(request)
        ):
            return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)


def _query(request):
    params = plain_query(request)
    return request.query_params if params is None else params
