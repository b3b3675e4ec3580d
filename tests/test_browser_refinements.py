"""Refinement chips in headless Chromium, on the demo storefront: a generated
refinement approved by a merchandiser in the admin appears at once as a chip above the
results (saved as ``docs/screenshots/refinement-chips.png``) and as a
completion in the typeahead; choosing the chip searches it with
``origin=refinement`` and reports the impression and the click through
``events/``. Needs what tests/test_browser.py needs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from suggestions import services
from suggestions.models import SearchEvent, Suggestion, SuggestionClick, SuggestionImpression
from tests.factories import ProductFactory
from tests.test_browser import (  # noqa: F401  (fixtures)
    browser,
    eventually,
    option_texts,
    page,
    query_of,
    type_in_search,
    wait_for_list,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "refinement-chips.png"


@pytest.fixture
def shop() -> None:
    for title, brand in [("Nike Pegasus 40 running shoes men", "Nike"), ("Nike Vomero 17 running shoes women", "Nike"),
                         ("Asics Gel-Kayano waterproof running shoes", "Asics"),
                         ("Asics Trabuco trail running shoes", "Asics"), ("Falke RU4 running socks", "Falke")]:
        ProductFactory(title=title, brand=brand, product_type="running shoes", description="")
    services.rebuild_index()
    for text, source, weight in [("running shoes", "history", 90), ("running shoes men", "history", 60),
                                 ("nike running shoes", "catalog", 70), ("running socks", "history", 80)]:
        Suggestion.objects.create(text=text, source=source, status="approved", weight=weight)
    # What the generator stores for review (suggestions.ml.generate_refinements).
    Suggestion.objects.create(text="running shoes waterproof", source="generated", status="pending", weight=75,
                              provenance={"seed_query": "running shoes", "results": 3, "score": 0.91,
                                          "model_version": "generator-test"})
    services.publish_suggestions()


def chips(tab) -> list[str]:
    return [t.strip() for t in tab.locator(".refinements .refinement-chip").all_text_contents()]


def approve_in_the_admin(browser, base_url: str, text: str) -> None:  # noqa: F811
    """A merchandiser signs in, ticks the pending suggestion and runs "Approve"."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("merchandiser", "m@example.com", "review-password")
    context = browser.new_context(base_url=base_url)
    try:
        admin = context.new_page()
        admin.goto("/admin/login/")
        admin.fill("input[name=username]", "merchandiser")
        admin.fill("input[name=password]", "review-password")
        admin.locator("input[type=submit], button[type=submit]").first.click()
        admin.wait_for_url(re.compile(r"/admin/$"))
        admin.goto(f"/admin/shop_suggestions/suggestion/?q={quote(text)}")
        admin.locator("#result_list tr", has_text=text).locator("input.action-select").check()
        admin.select_option("select[name=action]", "approve")
        admin.locator("button[name=index], input[name=index]").first.click()
        assert "approved" in admin.locator(".messagelist").inner_text()
        # Every request of the admin answered before the database is flushed (SQLite's shared connection).
        admin.wait_for_load_state("networkidle")
    finally:
        context.close()


def test_an_approved_generated_refinement_is_a_chip_and_a_completion_at_once(browser, server, page, shop):  # noqa: F811
    page.goto("/search/?q=running+shoes")
    assert chips(page) == ["nike running shoes", "running shoes men"]

    approve_in_the_admin(browser, server.url, "running shoes waterproof")
    assert Suggestion.objects.get(text="running shoes waterproof").status == "approved"

    page.goto("/search/?q=running+shoes")
    assert chips(page) == ["running shoes waterproof", "nike running shoes", "running shoes men"]
    assert page.locator('.refinement-chip[data-generated="true"]').inner_text() == "running shoes waterproof"
    # The chips were reported as one impression, with this answer's request id.
    shown = ["running shoes waterproof", "nike running shoes", "running shoes men"]
    impression = eventually(lambda: SuggestionImpression.objects.filter(surface="refinements", prefix="running shoes")
                            .order_by("-created_at").first() if SuggestionImpression.objects.filter(
                                surface="refinements").count() == 2 else None)
    assert impression.suggestions == shown
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_navigation():
        page.locator(".refinement-chip", has_text="running shoes waterproof").click()
    assert query_of(page.url)["q"] == ["running shoes waterproof"]
    click = eventually(lambda: SuggestionClick.objects.filter(surface="refinements").first())
    assert (click.prefix, click.suggestion, click.position) == ("running shoes", "running shoes waterproof", 0)
    assert str(click.request_id).replace("-", "") == str(impression.request_id).replace("-", "")
    search = SearchEvent.objects.filter(normalized_query="running shoes waterproof").get()
    assert search.origin == "refinement"

    # And it completes what a shopper types.
    page.goto("/")
    type_in_search(page, "running shoes w", delay=40)
    wait_for_list(page, "running shoes w")
    assert "running shoes waterproof" in option_texts(page)
    assert page.errors == []


def test_a_search_that_finds_nothing_offers_rewrites_that_work_without_script(browser, server, shop):  # noqa: F811
    services.build_suggestions()  # the spelling dictionary
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.goto("/search/?q=runing+shoez&exact=1")
        line = " ".join(tab.locator(".rewrites").inner_text().split())
        assert line.startswith("No results for runing shoez; try ")
        assert "running shoes" in [t.strip() for t in tab.locator(".rewrites a").all_text_contents()]
        with tab.expect_navigation():
            tab.locator(".rewrites a", has_text="running shoes").first.click()
        assert query_of(tab.url)["origin"] == ["refinement"]
        assert tab.locator(".product-card").count() > 0
        tab.wait_for_load_state("networkidle")
    finally:
        context.close()
