"""Did-you-mean and synonyms in headless Chromium, on the demo storefront: a
misspelt search ("prnter") shows printers under "Showing results for printer;
search instead for prnter" (saved as ``docs/screenshots/did-you-mean.png``),
whose link searches the text as typed; an approved synonym makes "laptop" find
notebooks; with dense recall (products embedded by the multilingual encoder)
"打印机" (printer) finds the printers (``docs/screenshots/cross-lingual.png``).
Needs what tests/test_browser.py needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from suggestions import services
from tests.factories import ProductFactory
from tests.test_browser import browser, page, query_of  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "did-you-mean.png"
CROSS_LINGUAL_SCREENSHOT = SCREENSHOT.with_name("cross-lingual.png")


@pytest.fixture
def shop() -> None:
    for title, brand, product_type in [
        ("HP LaserJet Pro M404dn Laser Printer", "HP", "printer"),
        ("HP Color LaserJet Pro M255dw Printer", "HP", "printer"),
        ("Canon PIXMA TS6420a Inkjet Printer", "Canon", "printer"),
        ("Brother TN-2420 Black Toner", "Brother", "toner cartridge"),
        ("Lenovo ThinkPad X1 Carbon Notebook", "Lenovo", "notebook"),
        ("HP EliteBook 840 G10 Notebook", "HP", "notebook"),
    ]:
        ProductFactory(title=title, brand=brand, product_type=product_type, description="")
    services.rebuild_index()
    services.build_suggestions()  # writes the spelling dictionary


def cards(tab) -> list[str]:
    return [t.strip() for t in tab.locator(".product-title").all_text_contents()]


def test_misspelt_search_shows_printers_with_a_did_you_mean_line(page, shop):  # noqa: F811
    page.goto("/")
    box = page.get_by_role("combobox")
    box.fill("prnter")
    box.press("Enter")
    page.wait_for_url("**/search/**")
    line = page.locator(".did-you-mean").inner_text()
    assert " ".join(line.split()) == "Showing results for printer; search instead for prnter"
    assert sorted(cards(page)) == sorted([
        "HP LaserJet Pro M404dn Laser Printer", "HP Color LaserJet Pro M255dw Printer",
        "Canon PIXMA TS6420a Inkjet Printer"])
    assert "3 results for" in page.locator(".results-title").inner_text()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_navigation():
        page.locator(".did-you-mean-exact").click()
    assert query_of(page.url)["exact"] == ["1"]
    assert query_of(page.url)["q"] == ["prnter"]
    assert page.locator(".did-you-mean").count() == 0
    assert "Nothing matches" in page.locator(".empty").inner_text()
    assert page.errors == []


def test_approved_synonym_makes_laptop_find_notebooks(page, shop):  # noqa: F811
    page.goto("/search/?q=laptop")
    assert cards(page) == []
    services.add_synonym("laptop", "notebook")
    page.goto("/search/?q=laptop")
    assert sorted(cards(page)) == ["HP EliteBook 840 G10 Notebook", "Lenovo ThinkPad X1 Carbon Notebook"]
    assert page.locator(".did-you-mean").count() == 0


def test_a_chinese_search_finds_printers_through_dense_recall(page, shop, settings):  # noqa: F811
    page.goto("/search/?q=打印机")
    assert cards(page) == []  # BM25 alone: no title says 打印机
    settings.SUGGESTIONS_DENSE = True
    assert services.embed_products().stored == 6  # what the gpu worker does after indexing
    page.goto("/search/?q=打印机")
    printers = {"HP LaserJet Pro M404dn Laser Printer", "HP Color LaserJet Pro M255dw Printer",
                "Canon PIXMA TS6420a Inkjet Printer"}
    assert set(cards(page)[:3]) == printers, cards(page)
    CROSS_LINGUAL_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(CROSS_LINGUAL_SCREENSHOT), full_page=True)
    assert page.errors == []
