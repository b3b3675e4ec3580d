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
