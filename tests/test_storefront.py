"""The demo storefront (home, results, product pages) and the widget's
template tags, through Django's test client. The widget's behaviour in a
browser is covered by tests/test_browser.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse

from catalog.models import Product
from suggestions import services
from suggestions.models import SearchEvent
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

HOME = reverse("home")
SEARCH = reverse("search")


def reindex() -> None:
    # Saves are indexed after commit, which these (rolled back) tests never reach.
    services.rebuild_index()


@pytest.fixture
def toners():
    """Toner cartridges of three brands (indexed on save)."""
    made = []
    for brand, count in [("Acme", 3), ("Brother", 2), ("Canon", 1)]:
        made += ProductFactory.create_batch(count, brand=brand, product_type="toner cartridge")
    ProductFactory(
        brand="Acme",
        product_type="keyboard",
        title="Acme Silent Keyboard",
        description="Quiet keys",
    )
    reindex()
    return made


def titles(response) -> list[str]:
    return [r.document.title for r in response.context["search"].results]


# -- home -------------------------------------------------------------------------------


def test_home_renders_the_search_box_with_the_widget(client):
    response = client.get(HOME)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-shop-suggestions=""' in html
    assert 'action="/search/"' in html
    assert "/static/suggestions/typeahead.js" in html
    assert "/static/suggestions/typeahead.css" in html
    assert 'data-endpoint="/api/suggestions/suggest/"' in html
    assert 'data-events-endpoint="/api/suggestions/events/"' in html
    assert 'href="/api/suggestions/docs/"' in html and 'href="/admin/"' in html


def test_home_gives_a_shopper_cookie_without_a_session_row(client):
    from django.contrib.sessions.models import Session

    client.get(HOME)

    # The cookie makes the typeahead's events and the first search this shopper's.
    assert client.cookies.get("shop_suggestions_shopper")
    assert Session.objects.count() == 0


# -- results ----------------------------------------------------------------------------


def test_results_show_products_count_and_brand_facets(client, toners):
    response = client.get(SEARCH, {"q": "toner"})

    assert response.status_code == 200
    search = response.context["search"]
    assert search.total == 6
    assert len(titles(response)) == 6
    html = response.content.decode()
    assert "6 results for <q>toner</q>" in html
    for product in toners:
        assert product.title in html
        assert reverse("product", args=[product.pk]) in html
    facets = {f["value"]: f["count"] for f in response.context["facets"]}
    assert facets == {"Acme": 3, "Brother": 2, "Canon": 1}
    assert "€49.95" in html
    # What the product_click events need: request id, query, ids and positions.
    assert f'data-request-id="{search.request_id}"' in html
    assert 'data-query="toner"' in html
    assert 'data-position="0"' in html and 'data-position="5"' in html


def test_brand_filter_narrows_results_and_marks_the_facet(client, toners):
    response = client.get(SEARCH, {"q": "toner", "brand": ["Brother"]})

    assert response.status_code == 200
    assert {r.document.brand for r in response.context["search"].results} == {"Brother"}
    selected = [f for f in response.context["facets"] if f["selected"]]
    assert [f["value"] for f in selected] == ["Brother"]
    # Its link removes the filter again; the others add themselves to it.
    assert selected[0]["url"] == "?q=toner"
    assert response.context["clear_brands_url"] == "?q=toner"


def test_several_brands_filter_together(client, toners):
    response = client.get(SEARCH, {"q": "toner", "brand": ["Brother", "Canon"]})

    assert {r.document.brand for r in response.context["search"].results} == {"Brother", "Canon"}
    assert SearchEvent.objects.get().filters == {"brands": ["Brother", "Canon"]}


def test_brand_only_search_needs_no_text(client, toners):
    response = client.get(SEARCH, {"brand": "Canon"})

    assert response.status_code == 200
    assert response.context["search"].total == 1


def test_pagination(client):
    ProductFactory.create_batch(15, brand="Acme", product_type="toner cartridge")
    reindex()

    first = client.get(SEARCH, {"q": "toner"})
    second = client.get(SEARCH, {"q": "toner", "page": 2})

    assert len(titles(first)) == 12 and len(titles(second)) == 3
    assert set(titles(first)).isdisjoint(titles(second))
    assert first.context["next_url"] == "?q=toner&page=2" and first.context["prev_url"] == ""
    assert second.context["prev_url"] == "?q=toner&page=1" and second.context["next_url"] == ""
    assert [p.get("number") for p in second.context["pages"]] == [1, 2]
    assert [r.position for r in second.context["search"].results] == [12, 13, 14]
    assert "Showing 13–15" in second.content.decode()


def test_page_links_keep_filters_but_never_origin(client):
    ProductFactory.create_batch(13, brand="Acme", product_type="toner cartridge")
    reindex()

    response = client.get(SEARCH, {"q": "toner", "brand": "Acme", "origin": "suggestion"})

    assert response.context["next_url"] == "?q=toner&brand=Acme&page=2"


def test_page_numbers_elide_the_middle():
    from shop_search.views import _pages

    numbers = [p.get("number", "…") for p in _pages(10, 40, [("q", "x")])]

    assert numbers == [1, "…", 8, 9, 10, 11, 12, "…", 40]


def test_page_past_the_end_shows_the_empty_state(client, toners):
    response = client.get(SEARCH, {"q": "toner", "page": 5})

    assert response.status_code == 200
    assert "Nothing matches" in response.content.decode()


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [("suggestion", "suggestion"), ("history", "history"), (None, "typed"), ("bogus", "typed")],
)
def test_origin_field_is_recorded(client, toners, sent, recorded):
    params = {"q": "toner"} | ({"origin": sent} if sent else {})

    assert client.get(SEARCH, params).status_code == 200

    assert SearchEvent.objects.get().origin == recorded


def test_search_after_the_home_page_shows_up_in_history(client, toners):
    from django.contrib.sessions.models import Session

    client.get(HOME)
    client.get(SEARCH, {"q": "toner"})

    event = SearchEvent.objects.get()
    assert event.actor_hash and event.identified
    assert Session.objects.count() == 0
    # The same shopper's next suggest call sees it as a recent search.
    body = client.get(reverse("suggestions:suggest"), {"q": "ton"}).json()
    assert body["suggestions"][0] == {
        "text": "toner",
        "kind": "recent",
        "source": "recent",
        "fuzzy": False,
    }


def test_signed_in_search_is_recorded_for_the_user(client, toners, django_user_model):
    user = django_user_model.objects.create_user("shopper", password="pw-123456")
    client.force_login(user)

    response = client.get(SEARCH, {"q": "toner"})

    assert SearchEvent.objects.get().user == user
    html = response.content.decode()
    # Beacons can't carry the CSRF header that signed-in posts need.
    assert 'data-use-beacon="false"' in html
    assert 'data-use-beacon="true"' not in html
    assert "csrftoken" in response.cookies


def test_empty_search_goes_home(client):
    response = client.get(SEARCH, {"q": "  "})

    assert response.status_code == 302 and response.url == HOME
    assert not SearchEvent.objects.exists()


def test_invalid_parameters_show_a_message_and_record_nothing(client):
    response = client.get(SEARCH, {"q": "toner", "page": "0"})

    assert response.status_code == 400
    assert "greater than or equal to 1" in response.content.decode()
    assert not SearchEvent.objects.exists()


def test_product_titles_are_escaped(client):
    ProductFactory(
        title='<script>alert("x")</script> Toner <img src=x onerror=alert(1)>', brand="<b>Evil</b>"
    )
    reindex()

    response = client.get(SEARCH, {"q": "toner"})

    html = response.content.decode()
    assert response.context["search"].total == 1
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>Evil" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Toner" in html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in html


def test_query_is_escaped_in_the_page_and_the_search_box(client):
    response = client.get(SEARCH, {"q": '"><script>alert(1)</script>'})

    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_degraded_search_shows_a_notice(client, settings):
    ProductFactory(title="Acme Toner Black", brand="Acme")
    reindex()
    settings.SUGGESTIONS_RECALL_BACKENDS = {
        "default": {
            "BACKEND": "suggestions.recall.elasticsearch",
            "OPTIONS": {"HOSTS": ["http://127.0.0.1:1"], "TIMEOUT": 0.5},
        }
    }

    response = client.get(SEARCH, {"q": "toner"})

    assert response.status_code == 200
    assert response.context["search"].degraded
    html = response.content.decode()
    assert "reduced mode" in html
    assert "Acme Toner Black" in html  # from the database fallback


# -- product page -----------------------------------------------------------------------


def test_product_page(client):
    product = ProductFactory(
        title="Acme AC1 toner", price=Decimal("1234.5"), attributes={"printing_colours": "Black"}
    )

    response = client.get(reverse("product", args=[product.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme AC1 toner" in html and "€1,234.50" in html
    assert "Printing colours" in html and product.ean in html
    assert "data-fallback" in html  # the image gets the placeholder when it fails


def test_missing_product_is_404(client):
    assert client.get(reverse("product", args=[999999])).status_code == 404


def test_results_link_to_product_pages(client):
    product = ProductFactory(title="Acme Toner")
    reindex()

    html = client.get(SEARCH, {"q": "toner"}).content.decode()

    assert f'href="/product/{product.pk}/"' in html
    assert Product.objects.count() == 1


# -- template tags and static files ------------------------------------------------------


def render(source: str, **context) -> str:
    return Template("{% load shop_suggestions %}" + source).render(Context(context))


def test_assets_tag_renders_stylesheet_and_deferred_script():
    html = render("{% suggestions_assets %}")

    assert '<link rel="stylesheet" href="/static/suggestions/typeahead.css">' in html
    assert '<script src="/static/suggestions/typeahead.js" defer></script>' in html


def test_input_tag_renders_options_as_data_attributes():
    request = RequestFactory().get("/search/", {"term": 'a "quoted" <b>'})
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()

    html = render(
        '{% suggestions_input name="term" limit=5 debounce_ms=80 submit_on_select=False label_recent="Recent" %}',
        request=request,
    )

    assert html.startswith("<input ") and 'name="term"' in html
    assert 'value="a &quot;quoted&quot; &lt;b&gt;"' in html
    assert 'data-shop-suggestions=""' in html
    assert 'data-limit="5"' in html and 'data-debounce-ms="80"' in html
    assert 'data-submit-on-select="false"' in html and 'data-label-recent="Recent"' in html
    assert 'data-endpoint="/api/suggestions/suggest/"' in html
    assert 'autocomplete="off"' in html
    assert "data-use-beacon" not in html


def test_input_tag_without_a_request():
    html = render('{% suggestions_input placeholder="Find" %}')

    assert 'name="q"' in html and 'value=""' in html and 'placeholder="Find"' in html


def test_static_files_are_shipped_and_never_parse_suggestions_as_html():
    js_path = finders.find("suggestions/typeahead.js")
    assert js_path and finders.find("suggestions/typeahead.css")
    assert finders.find("catalog/storefront.js") and finders.find("catalog/placeholder.svg")
    with open(js_path, encoding="utf-8") as f:
        source = f.read()
    # Suggestion text is shoppers' input: it may only reach the DOM as text.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in source


def test_product_page_shows_specs_as_a_shopper_reads_them(client):
    product = ProductFactory(
        title="APC rack", product_type="rack accessory",
        attributes={"pallet_weight": 326000.0, "cable_length": 1.8, "width": 33.6, "quantity_per_pack": 10.0,
                    "type": "Original", "product_type": "rack accessory", "dimensions__wxdxh_": "1 x 2 x 3 cm"},
    )
    html = client.get(reverse("product", args=[product.pk])).content.decode()
    assert "326 kg" in html and "326000" not in html
    assert "1.8 m" in html and "33.6 mm" in html and ">10<" in html
    assert "Dimensions (wxdxh)" in html
    # One row for the product type, another for Icecat's own "type" spec.
    assert html.count("<dt>Product type</dt>") == 1 and html.count("<dt>Type</dt>") == 1
