"""The admin's analytics page in headless Chromium, on a month of synthetic
events: it renders its figures and charts with nothing from outside the site
(no CDN, no script library), the CSV download works, a zero-result query can be
blocked from the page, and a screenshot is saved for the docs
(``docs/screenshots/analytics.png``).

Needs Chromium and the ``playwright`` package, as ``tests/test_browser.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from suggestions import services
from suggestions.models import BlockedTerm
from tests.test_browser import browser  # noqa: F401  (the module's browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "analytics.png"


@pytest.fixture
def month_of_events():
    from bench.analytics.events import generate

    made = generate(12_000, days=30, shoppers=800, seed=3)
    services.rollup_analytics(days_back=29)
    return made


def test_analytics_page_renders_offline_exports_and_blocks(browser, server, month_of_events, django_user_model):  # noqa: F811
    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(admin)
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])
    outside: list[str] = []
    context.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
                  if not route.request.url.startswith(server.url) else route.continue_())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto("/admin/shop_suggestions/analyticsday/?period=30")
        page.wait_for_selector("#zero-result-queries table")
        figures = page.locator(".analytics-figure")
        assert figures.count() == 6
        searches_shown = figures.nth(0).locator(".value").inner_text()
        assert searches_shown == f"{month_of_events.searches:,}"
        assert page.locator("svg.analytics-chart").count() == 3
        assert page.locator("#searches-per-day svg rect").count() == 30
        assert page.locator("#top-queries tbody tr").count() == 20
        assert "Share of searches that started from a clicked suggestion" in page.content()

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        with page.expect_download() as download:
            page.locator("#top-queries a", has_text="Download CSV").click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0].startswith("query,searches") and len(lines) > 20

        first = page.locator("#zero-result-queries tbody tr").first
        query = first.locator("td").first.inner_text()
        first.locator("input[value=Block]").click()
        page.wait_for_selector(".messagelist .success")
        assert BlockedTerm.objects.filter(pattern=query).exists()
        assert page.locator("#zero-result-queries tbody tr").first.locator("td").nth(3).inner_text() == "blocked"
        assert errors == [] and outside == []
    finally:
        context.close()


CHIPS_SCREENSHOT = SCREENSHOT.with_name("analytics-chips.png")


@pytest.fixture
def chip_events():
    """A week of refinement chips: three searches, their chips shown on result
    pages, some chosen (more often the first), from a seeded generator."""
    import random
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from suggestions.models import (
        EventSurface,
        Suggestion,
        SuggestionClick,
        SuggestionImpression,
        SuggestionStatus,
    )

    chips = {"running shoes": ["running shoes men", "nike running shoes", "running shoes waterproof"],
             "laptop bag": ["laptop bag black", "urban factory laptop bag"],
             "red runnin shoes": ["runnin shoes"]}
    sources = {"running shoes men": "generated", "running shoes waterproof": "generated",
               "nike running shoes": "catalog", "laptop bag black": "history", "urban factory laptop bag": "catalog"}
    Suggestion.objects.bulk_create([Suggestion(text=t, source=s, status=SuggestionStatus.APPROVED)
                                    for t, s in sources.items()], ignore_conflicts=True)
    rng = random.Random(5)
    shown, chosen = [], []
    for n in range(400):
        query = rng.choice(["running shoes"] * 5 + ["laptop bag"] * 3 + ["red runnin shoes"])
        when = timezone.now() - timedelta(days=rng.randrange(6), minutes=rng.randrange(600))  # within the 7 days shown
        rid = uuid.uuid4()
        shown.append(SuggestionImpression(created_at=when, request_id=rid, prefix=query, suggestions=chips[query],
                                          actor_hash=f"chip-shopper-{n}", surface=EventSurface.REFINEMENTS))
        for position, chip in enumerate(chips[query]):
            if rng.random() < 0.12 / (position + 1):
                chosen.append(SuggestionClick(created_at=when, request_id=rid, prefix=query, suggestion=chip,
                                              position=position, actor_hash=f"chip-shopper-{n}",
                                              surface=EventSurface.REFINEMENTS))
                break
    SuggestionImpression.objects.bulk_create(shown)
    SuggestionClick.objects.bulk_create(chosen)
    services.rollup_analytics(days_back=7)
    return sum(len(set(i.suggestions)) for i in shown), len(chosen)


def test_chip_click_through_section_reads_for_a_merchandiser(browser, server, chip_events, django_user_model):  # noqa: F811
    chips_shown, chosen = chip_events
    admin = django_user_model.objects.create_superuser("merch", "merch@example.com", "pw")
    client = Client()
    client.force_login(admin)
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])
    page = context.new_page()
    try:
        page.goto("/admin/shop_suggestions/analyticsday/?period=7")
        section = page.locator("#refinement-chips")
        section.wait_for()
        sources = section.locator("#chip-sources tbody tr")
        names = [sources.nth(i).locator("td").first.inner_text() for i in range(sources.count())]
        assert set(names) == {"Generated by the model", "Catalog phrases",
                              "Shoppers' own searches",
                              "Rewrite of the shopper's query (spelling fix, a word left out)"}
        counts = [int(sources.nth(i).locator("td").nth(1).inner_text()) for i in range(sources.count())]
        assert sum(counts) == chips_shown
        assert f"{chosen} chosen of {chips_shown} shown" in section.inner_text()
        first = section.locator("#chips tbody tr").first.locator("td")
        assert first.nth(0).inner_text() == "running shoes"
        assert first.nth(5).inner_text().endswith("%")
        CHIPS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        section.screenshot(path=str(CHIPS_SCREENSHOT))
    finally:
        context.close()
