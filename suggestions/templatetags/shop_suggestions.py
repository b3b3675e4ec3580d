"""Template tags of the search box typeahead.

``{% load shop_suggestions %}``, then ``{% suggestions_assets %}`` once per page
(in ``<head>``) and ``{% suggestions_input %}`` inside a search ``<form>``::

    <form action="/search/" method="get" role="search">
      {% suggestions_input name="q" placeholder="Search products" %}
      <button>Search</button>
    </form>

Without the tags, the two lines are a ``<link>``/``<script>`` pair for
``suggestions/typeahead.css`` and ``.js`` and an ``<input data-shop-suggestions>``;
the options are documented in ``docs/typeahead.md``.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

register = template.Library()


@register.simple_tag
def suggestions_assets() -> str:
    """The widget's stylesheet and (deferred) script."""
    return format_html(
        '<link rel="stylesheet" href="{}">\n<script src="{}" defer></script>',
        static("suggestions/typeahead.css"),
        static("suggestions/typeahead.js"),
    )


def _url(name: str) -> str | None:
    # The API may be mounted under any prefix, or (in a host that proxies it)
    # not at all: then the widget's defaults or explicit options apply.
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


@register.simple_tag(takes_context=True)
def suggestions_input(
    context: template.Context,
    name: str = "q",
    value: str | None = None,
    placeholder: str = "Search products",
    label: str = "Search",
    css_class: str = "",
    input_id: str = "",
    **options: Any,
) -> str:
    """A search ``<input>`` the typeahead attaches to.

    ``value`` defaults to the request's ``GET[name]`` (so a results page shows
    the query). Other keyword arguments become widget options as data-
    attributes, with underscores turned into dashes: ``limit=5``,
    ``debounce_ms=80``, ``label_recent="Recent"``, ``submit_on_select=False``.
    """
    request = context.get("request")
    if value is None:
        value = request.GET.get(name, "") if request is not None else ""
    attrs: dict[str, Any] = {
        "type": "search",
        "name": name,
        "value": value,
        "placeholder": placeholder,
        "aria-label": label,
        "autocomplete": "off",
        "spellcheck": "false",
        "enterkeyhint": "search",
        "data-shop-suggestions": "",
        "data-endpoint": _url("suggestions:suggest"),
        "data-events-endpoint": _url("suggestions:events"),
    }
    if css_class:
        attrs["class"] = css_class
    if input_id:
        attrs["id"] = input_id
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        # Signed-in event posts need the CSRF header, which beacons cannot
        # send; get_token makes sure the csrftoken cookie is set.
        get_token(request)
        attrs["data-use-beacon"] = "false"
    for key, option in options.items():
        if isinstance(option, bool):
            option = "true" if option else "false"
        attrs["data-" + key.replace("_", "-")] = option
    shown = ((key, "" if val is None else val) for key, val in attrs.items() if val is not None)
    return format_html("<input{}>", format_html_join("", ' {}="{}"', shown))
