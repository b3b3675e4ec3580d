"""Storefront of the demo shop: a home page with the search box, a results
page and a product page. Thin on purpose: the search itself, its history and
its events are the ``suggestions`` app's job (:func:`suggestions.services.search`).
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from catalog.icecat import format_attribute, format_attribute_name
from catalog.models import Product
from suggestions import services
from suggestions.api.serializers import MAX_SEARCH_RESULT_WINDOW, SearchQuerySerializer
from suggestions.models import SearchOrigin
from suggestions.recall import SearchFilters

#: Results per page: fills a grid of 2, 3 or 4 columns.
PAGE_SIZE = 12
#: Brands listed before "More brands".
TOP_BRANDS = 12
#: Parameters that describe a search (kept in facet and page links).
_SEARCH_PARAMS = ("q", "brand", "product_type", "min_price", "max_price", "exact")


def _actor(request: HttpRequest) -> dict:
    """The signed-in user, else the anonymous shopper of the cookie the request
    carried (``suggestions.middleware.ShopperCookieMiddleware`` hands it out on
    the first page, without a session row), so their searches come back as
    "Your recent searches"."""
    return services.request_actor(request)


def _link(params: list[tuple[str, str]], **changes: str) -> str:
    items = [(k, v) for k, v in params if k not in changes] + [
        (k, v) for k, v in changes.items() if v
    ]
    return "?" + urlencode(items)


def home(request: HttpRequest) -> HttpResponse:
    # The shopper cookie set on this page makes the typeahead's impressions and
    # clicks, and the first search, this shopper's.
    trending = [item.text for item in services.trending(limit=8)]
    return render(
        request,
        "storefront/home.html",
        {
            "trending": trending,
            "examples": ["hp la", "toner", "startech usb", "canon ink", "intel xeon"],
            "product_count": Product.objects.count(),
        },
    )


def results(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    data["page_size"] = str(PAGE_SIZE)
    # The widget's hidden field says how the search started; anything else
    # (a stale bookmark, a hand-edited URL) counts as typed.
    if data.get("origin") not in SearchOrigin.values:
        data["origin"] = SearchOrigin.TYPED
    params = SearchQuerySerializer(data=data)
    if not params.is_valid():
        errors = params.errors
        if set(errors) == {"q"} and not data.get("q", "").strip():
            return redirect("home")  # an empty search box
        messages = [str(m) for field_errors in errors.values() for m in field_errors]
        return render(
            request,
            "storefront/results.html",
            {"query": data.get("q", ""), "errors": messages},
            status=400,
        )
    v = params.validated_data
    actor = _actor(request)
    page = services.search(
        v["q"],
        filters=SearchFilters(
            brands=tuple(v["brand"]),
            product_types=tuple(v["product_type"]),
            min_price=v["min_price"],
            max_price=v["max_price"],
        ),
        page=v["page"],
        page_size=PAGE_SIZE,
        origin=v["origin"],
        exact=v["exact"],
        **actor,
    )
    # Links keep the search and its filters; they never carry `origin`
    # (paging or filtering is not a new way of starting a search).
    kept = [(k, val) for k in _SEARCH_PARAMS for val in request.GET.getlist(k) if val]
    selected = {b.lower() for b in v["brand"]}

    def toggle(brand: str) -> str:
        others = [
            (k, val) for k, val in kept if not (k == "brand" and val.lower() == brand.lower())
        ]
        if brand.lower() not in selected:
            others.append(("brand", brand))
        return _link(others, page="")

    counts = dict(page.brand_counts)
    for brand in v["brand"]:  # a chosen brand stays listed (and unchecked-able)
        counts.setdefault(brand, 0)
    facets = [
        {"value": b, "count": n, "selected": b.lower() in selected, "url": toggle(b)}
        for b, n in sorted(counts.items(), key=lambda item: (-item[1], item[0].lower()))
    ]
    last_page = max(
        1, min(math.ceil(page.total / PAGE_SIZE), MAX_SEARCH_RESULT_WINDOW // PAGE_SIZE)
    )
    response = render(
        request,
        "storefront/results.html",
        {
            "query": v["q"],
            "search": page,
            "first": (page.page - 1) * PAGE_SIZE + 1,
            "last": (page.page - 1) * PAGE_SIZE + len(page.results),
            "facets": facets[:TOP_BRANDS],
            "more_facets": facets[TOP_BRANDS:],
            "selected_brands": v["brand"],
            "clear_brands_url": _link([(k, val) for k, val in kept if k != "brand"]),
            "pages": _pages(page.page, last_page, kept),
            "prev_url": _link(kept, page=str(page.page - 1)) if page.page > 1 else "",
            "next_url": _link(kept, page=str(page.page + 1)) if page.page < last_page else "",
            # Did-you-mean: the same search of the text as typed, never corrected.
            "exact_url": _link(kept, page="", exact="1") if page.corrected_query else "",
            # Refinement chips (with results) or rewrites (without): plain links
            # that search the text anew; the widget reports them as events.
            "refinements": [
                {"text": r.text, "kind": r.kind, "source": r.source, "position": i,
                 "url": _link([], q=r.text, origin=SearchOrigin.REFINEMENT)}
                for i, r in enumerate(page.refinements)
            ],
        },
    )
    # The typeahead offers it back as one of "your recent searches".
    services.remember_recent(request, response, page.query, **actor)
    return response


def _pages(current: int, last: int, kept: list[tuple[str, str]]) -> list[dict]:
    """Page links: the first, the last and two either side of the current one,
    with a gap marker where numbers are skipped."""
    if last <= 1:
        return []
    wanted = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[dict] = []
    previous = 0
    for number in wanted:
        if number - previous > 1:
            out.append({"gap": True})
        out.append(
            {"number": number, "url": _link(kept, page=str(number)), "current": number == current}
        )
        previous = number
    return out


def product(request: HttpRequest, pk: int) -> HttpResponse:
    obj = get_object_or_404(Product, pk=pk)
    # The product type has its own row; Icecat's "type" spec (e.g. "Original")
    # is another thing, shown as a spec.
    attributes = [
        (format_attribute_name(name), format_attribute(name, value))
        for name, value in sorted((obj.attributes or {}).items())
        if value not in ("", None) and name != "product_type"
    ]
    return render(request, "storefront/product.html", {"product": obj, "attributes": attributes})
