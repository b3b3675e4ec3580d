"""The search box typeahead in headless Chromium, against a live demo shop.

Drives suggestions/static/suggestions/typeahead.js through the storefront
(shop_search/views.py): suggestions appear as the shopper types, keyboard and
mouse choose them, the results page and product clicks follow, and the events
land in the database. Also: suggestion text is never parsed as HTML, a broken
API leaves a working plain search box, the widget's options and ``destroy()``.
Tests wait on conditions (the widget's events, the DOM), never on a fixed
delay; speed is measured in ``bench/``, not gated here.

Needs Chromium (Debian's ``chromium`` package, or ``CHROMIUM_PATH``) and the
``playwright`` Python package; without them the tests skip locally and fail
under ``CI=true``. No browser is ever downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from suggestions import services
from suggestions.models import (
    ProductClick,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
)
from tests.conftest import wait_until_server_idle
from tests.factories import ProductFactory
from tests.plugins.services import require_module, require_service

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),  # the live server must see the test's rows
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Collects the widget's events in the page, before any script of it runs, and
# logs beacons in sessionStorage (it survives the navigation they precede).
RECORD_WIDGET_EVENTS = """
window.__ssEvents = [];
for (const name of ["rendered", "error", "select"]) {
  document.addEventListener("shop-suggestions:" + name, (e) => {
    window.__ssEvents.push({
      type: name, value: e.target.value, at: performance.now(), detail: {...e.detail, error: String(e.detail.error || "")},
    });
  });
}
const realBeacon = navigator.sendBeacon.bind(navigator);
navigator.sendBeacon = (url, data) => {
  const ok = realBeacon(url, data);
  const log = JSON.parse(sessionStorage.getItem("beacons") || "[]");
  log.push({url: String(url), type: data && data.type, ok});
  sessionStorage.setItem("beacons", JSON.stringify(log));
  return ok;
};
"""

SHOWN_FOR_HP_LA = ["hp laserjet", "hp laserjet toner", "hp laptop"]


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    require_service(bool(path), "headless Chromium (apt-get install chromium)")
    sync_playwright = require_module("playwright.sync_api", "playwright").sync_playwright
    # Playwright's sync API runs an event loop in this thread, which Django
    # would take for an async context; the ORM calls here are plain sync code.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()


@pytest.fixture
def page(browser, server) -> Iterator[Any]:
    live_server = server
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
    # Nothing leaves the live server: Icecat images and the like fail at once
    # (the storefront shows its placeholder), whatever the network allows.
    context.route(
        re.compile(r"^(?!" + re.escape(live_server.url) + r")https?://"),
        lambda route: route.abort(),
    )
    context.add_init_script(RECORD_WIDGET_EVENTS)
    in_flight: set = set()
    context.on("request", lambda r: in_flight.add(r))
    context.on("requestfinished", lambda r: in_flight.discard(r))
    context.on("requestfailed", lambda r: in_flight.discard(r))
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on(
        "console",
        lambda msg: (
            page.errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    yield page
    # Leaving a page sends its pending events (a beacon on pagehide). Drop
    # them and let the server finish what it has: the database is flushed
    # next, and SQLite's shared in-memory database can't be flushed mid-request.
    context.route("**/api/suggestions/events/**", lambda route: route.abort())
    page.goto("about:blank")
    deadline = time.monotonic() + 5
    while in_flight and time.monotonic() < deadline:  # every answer is back: the server is done
        page.evaluate("() => new Promise(r => setTimeout(r, 20))")  # lets playwright deliver events
    context.close()
    # Requests the browser gave up on when it left the page may still be answered.
    wait_until_server_idle(live_server)


@pytest.fixture
def shop() -> None:
    """A few products (indexed on save) and approved suggestions, published."""
    for title, brand, product_type in [
        ("HP LaserJet Pro M404dn laser printer", "HP", "laser printer"),
        ("HP LaserJet 59A black toner cartridge", "HP", "toner cartridge"),
        ("HP LaserJet 26X black toner cartridge", "HP", "toner cartridge"),
        ("HP 305 tri-colour ink cartridge", "HP", "ink cartridge"),
        ("Brother TN-2420 black toner", "Brother", "toner cartridge"),
        ("StarTech USB-C multiport adapter", "StarTech.com", "adapter"),
    ]:
        ProductFactory(title=title, brand=brand, product_type=product_type, description="")
    for text, weight in [
        ("hp laserjet", 90),
        ("hp laserjet toner", 80),
        ("hp laptop", 70),
        ("hp ink", 60),
        ("toner black", 50),
        ("brother toner", 40),
    ]:
        Suggestion.objects.create(text=text, source="history", status="approved", weight=weight)
    services.publish_suggestions()


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (beacons are async)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def type_in_search(page, text: str, delay: int = 150) -> Any:
    box = page.get_by_role("combobox")
    box.click()
    page.keyboard.type(text, delay=delay)
    return box


def wait_for_list(page, query: str) -> None:
    """Wait until the list for ``query`` is on screen (lists for shorter
    prefixes may show while typing; stale ones never replace it)."""
    page.wait_for_function(
        """q => window.__ssEvents.some(
               e => e.type === "rendered" && e.detail.query === q && e.detail.count > 0)""",
        arg=query,
    )


def options(page) -> Any:
    return page.locator("[role=listbox] [role=option]")


def option_texts(page) -> list[str]:
    return [t.strip() for t in options(page).all_text_contents()]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# -- the whole journey -------------------------------------------------------------------


def test_type_choose_search_click_and_every_event_is_recorded(page, shop):
    page.goto("/")
    box = type_in_search(page, "hp la")

    wait_for_list(page, "hp la")
    assert option_texts(page) == SHOWN_FOR_HP_LA
    # ARIA combobox wiring.
    listbox = page.get_by_role("listbox")
    assert box.get_attribute("aria-expanded") == "true"
    assert box.get_attribute("aria-autocomplete") == "list"
    assert box.get_attribute("aria-controls") == listbox.get_attribute("id")
    assert box.get_attribute("aria-activedescendant") is None
    assert page.locator("[role=group] [role=presentation]").all_text_contents() == ["Suggestions"]
    # The typed part is highlighted, as text.
    assert page.locator("[role=option] mark").all_text_contents() == ["hp la"] * 3

    def active() -> tuple[list[str], str | None]:
        selected = [o.get_attribute("aria-selected") for o in options(page).all()]
        return selected, box.get_attribute("aria-activedescendant")

    ids = [o.get_attribute("id") for o in options(page).all()]
    page.keyboard.press("ArrowDown")
    assert active() == (["true", "false", "false"], ids[0])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert active() == (["false", "false", "true"], ids[2])
    page.keyboard.press("ArrowUp")
    assert active() == (["false", "true", "false"], ids[1])
    assert box.input_value() == "hp la"  # moving does not change the text

    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == ["hp laserjet toner"]
    # `origin` is dropped from the address bar once recorded.
    page.wait_for_function("!location.search.includes('origin=')")
    assert "hp laserjet toner" in page.locator("h1").inner_text()
    link = page.locator("a[data-product-id]").nth(1)
    product_id = link.get_attribute("data-product-id")
    link.click()
    page.wait_for_url(f"**/product/{product_id}/")
    assert page.errors == []
    # Both clicks left with the page, as beacons: impressions + suggestion
    # click on submit, then the product click.
    beacons = page.evaluate("JSON.parse(sessionStorage.getItem('beacons') || '[]')")
    assert len(beacons) == 2
    assert all(
        b == {"url": "/api/suggestions/events/", "type": "application/json", "ok": True}
        for b in beacons
    )

    search = SearchEvent.objects.get(normalized_query="hp laserjet toner")
    assert search.origin == "suggestion"
    click = eventually(lambda: SuggestionClick.objects.first())
    assert (click.prefix, click.suggestion, click.position) == ("hp la", "hp laserjet toner", 1)
    shown = SuggestionImpression.objects.get(request_id=click.request_id)
    assert (shown.prefix, shown.suggestions) == ("hp la", SHOWN_FOR_HP_LA)
    product_click = eventually(lambda: ProductClick.objects.first())
    assert (product_click.object_id, product_click.position) == (product_id, 1)
    assert product_click.request_id == search.request_id
    assert product_click.query == "hp laserjet toner"
    # One impression per answer, and all of it is one (session) shopper.
    impressions = list(SuggestionImpression.objects.values_list("request_id", flat=True))
    assert len(impressions) == len(set(impressions))
    actors = {search.actor_hash, click.actor_hash, shown.actor_hash, product_click.actor_hash}
    assert len(actors) == 1 and "" not in actors


def test_recent_searches_lead_and_choosing_one_with_the_mouse_is_a_history_search(page, shop):
    page.goto("/")  # the first visit hands out the shopper cookie (a cookie-less request is nobody's)
    page.goto("/search/?q=hp+laserjet+toner")  # typed earlier by this shopper
    page.goto("/")
    type_in_search(page, "hp l")

    recent = page.locator("[role=option][data-kind=recent]")
    wait_for_list(page, "hp l")
    assert page.locator("[role=group] [role=presentation]").all_text_contents() == [
        "Your recent searches",
        "Suggestions",
    ]
    assert option_texts(page)[0] == "hp laserjet toner"
    assert recent.count() == 1

    recent.first.hover()
    assert recent.first.get_attribute("aria-selected") == "true"
    recent.first.click()

    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == ["hp laserjet toner"]
    assert list(SearchEvent.objects.order_by("created_at").values_list("origin", flat=True)) == [
        "typed",
        "history",
    ]
    click = eventually(lambda: SuggestionClick.objects.first())
    assert (click.suggestion, click.position) == ("hp laserjet toner", 0)
    assert page.errors == []


def test_signed_in_shoppers_send_events_with_the_csrf_header(page, shop, server, client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("shopper", password="pw-123456")
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}]
    )
    page.goto("/")
    type_in_search(page, "hp la")
    wait_for_list(page, "hp la")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?"))

    # A beacon would be refused (403: no CSRF header); keepalive fetch it is.
    click = eventually(lambda: SuggestionClick.objects.first())
    assert click.user == user and click.suggestion == "hp laserjet"
    assert SuggestionImpression.objects.filter(user=user).exists()
    assert SearchEvent.objects.get().user == user
    assert page.evaluate("sessionStorage.getItem('beacons')") is None
    assert page.errors == []


# -- safety ----------------------------------------------------------------------------


def test_markup_in_a_suggestion_is_shown_as_text(page, shop):
    # Saving normalises punctuation away; a row written another way (a bulk
    # import, another tool) still reaches the engine raw, so the widget must
    # never trust suggestion text.
    text = 'xss <script>window.__xss=1</script> <img src=x onerror="window.__xss=2">'
    Suggestion.objects.bulk_create(
        [Suggestion(text=text, source="manual", status="approved", weight=5)]
    )
    services.publish_suggestions()
    page.goto("/")
    type_in_search(page, "xss")

    wait_for_list(page, "xss")
    assert option_texts(page) == [text]
    listbox = page.get_by_role("listbox")
    assert listbox.locator("script, img").count() == 0
    assert page.locator("[role=option] mark").inner_text() == "xss"

    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == [text]
    # The results page has loaded (images failed or not): an injected handler
    # would have run by now.
    page.wait_for_load_state("load")

    assert page.evaluate("window.__xss") is None
    assert page.errors == []


# -- failures of the API --------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda route: route.abort(), id="network-error"),
        pytest.param(lambda route: route.fulfill(status=500, body="boom"), id="http-500"),
        pytest.param(
            lambda route: route.fulfill(
                status=200, content_type="application/json", body="{not json"
            ),
            id="bad-json",
        ),
        pytest.param(
            lambda route: route.fulfill(
                status=200, content_type="application/json", body='{"x": 1}'
            ),
            id="wrong-shape",
        ),
    ],
)
def test_broken_api_leaves_a_working_plain_search_box(page, shop, failure):
    page.route("**/api/suggestions/suggest/**", failure)
    page.goto("/")
    box = type_in_search(page, "toner")

    # The request for the whole text failed (stale ones are dropped silently).
    page.wait_for_function(
        "window.__ssEvents.some(e => e.type === 'error' && e.value === 'toner')"
    )
    assert options(page).count() == 0
    assert page.locator(".ss-listbox").is_hidden()
    assert box.get_attribute("aria-expanded") == "false"
    assert box.input_value() == "toner"

    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == ["toner"]
    assert SearchEvent.objects.get().origin == "typed"
    assert page.errors == []


def test_stale_answers_never_replace_newer_ones(page, shop):
    # The answer for "hp" is held until the test releases it, after the list
    # for "hp la" is on screen, and ignores the abort, as a response already on
    # the wire would. __lateHandled is set once the widget has had it.
    page.add_init_script(
        """
        const realFetch = window.fetch;
        let release;
        const gate = new Promise((r) => { release = r; });
        window.__releaseLate = () => release();
        window.__lateHandled = false;
        window.fetch = (url, init) => {
          const u = new URL(url, location.href);
          if (u.pathname.endsWith("/suggest/") && u.searchParams.get("q") === "hp") {
            const {signal, ...rest} = init || {};
            return gate.then(() => realFetch(url, rest)).then((response) => {
              const json = response.json.bind(response);
              // A task queued after the body is parsed runs after the
              // widget's handlers of it (microtasks).
              response.json = () => json().then((data) => {
                setTimeout(() => { window.__lateHandled = true; }, 0);
                return data;
              });
              return response;
            });
          }
          return realFetch(url, init);
        };
        """
    )
    page.goto("/")
    type_in_search(page, "hp", delay=200)
    page.keyboard.type(" la", delay=200)
    wait_for_list(page, "hp la")

    page.evaluate("window.__releaseLate()")
    page.wait_for_function("window.__lateHandled")

    rendered = page.evaluate(
        "window.__ssEvents.filter(e => e.type === 'rendered').map(e => e.detail.query)"
    )
    assert "hp" not in rendered
    assert rendered[-1] == "hp la"
    assert option_texts(page) == SHOWN_FOR_HP_LA
    assert page.errors == []


def test_fast_typing_is_debounced(page, shop):
    asked: list[str] = []
    page.on(
        "request",
        lambda r: asked.append(query_of(r.url)["q"][0]) if "/suggest/" in r.url else None,
    )
    page.goto("/")
    page.get_by_role("combobox").focus()
    # A burst of keystrokes, faster than any typing robot could be relied on.
    page.evaluate(
        """text => {
             const box = document.querySelector("[role=combobox]");
             for (let i = 1; i <= text.length; i++) {
               box.value = text.slice(0, i);
               box.dispatchEvent(new InputEvent("input", {bubbles: true}));
             }
           }""",
        "hp laserjet",
    )

    wait_for_list(page, "hp laserjet")
    # The first keystroke asks at once; the rest of the burst asks once, after
    # it (the list on screen is that answer: nothing is left to ask).
    assert asked == ["h", "hp laserjet"]
    assert option_texts(page) == ["hp laserjet", "hp laserjet toner"]


# -- keyboard --------------------------------------------------------------------------


def test_escape_closes_then_clears(page, shop):
    page.goto("/")
    box = type_in_search(page, "hp la")
    wait_for_list(page, "hp la")

    page.keyboard.press("Escape")

    assert not page.get_by_role("listbox").is_visible()
    assert box.get_attribute("aria-expanded") == "false"
    assert box.input_value() == "hp la"

    page.keyboard.press("Escape")

    assert box.input_value() == ""
    assert page.errors == []


def test_tab_accepts_the_active_suggestion(page, shop):
    page.goto("/")
    box = type_in_search(page, "hp la")
    wait_for_list(page, "hp la")
    page.keyboard.press("ArrowDown")

    page.keyboard.press("Tab")

    assert box.input_value() == "hp laserjet"
    assert not page.get_by_role("listbox").is_visible()
    assert page.locator("input[type=hidden][name=origin]").input_value() == "suggestion"
    # Focus moved on to the button; submitting reports the accepted suggestion.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == ["hp laserjet"]
    assert SearchEvent.objects.get().origin == "suggestion"
    click = eventually(lambda: SuggestionClick.objects.first())
    assert (click.suggestion, click.position) == ("hp laserjet", 0)


def test_typing_after_accepting_makes_it_a_typed_search(page, shop):
    page.goto("/")
    box = type_in_search(page, "hp la")
    wait_for_list(page, "hp la")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    box.click()
    box.press("End")
    page.keyboard.type(" toner", delay=50)

    page.keyboard.press("Escape")  # close whatever list the new text opened
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/search/\?"))
    assert SearchEvent.objects.get().origin == "typed"
    assert page.locator("input[type=hidden][name=origin]").count() == 0


# -- options and destroy() ---------------------------------------------------------------

# A second search box, added by the page's own script: its widget is attached
# by hand with non-default options. Every fetch the page makes is logged.
OWN_BOX = """
(options) => {
  window.__fetched = [];
  const realFetch = window.fetch;
  window.fetch = (url, init) => {
    window.__fetched.push(String(url));
    return realFetch(url, init);
  };
  const form = document.createElement("form");
  form.action = "/search/";
  form.id = "own-form";
  const box = document.createElement("input");
  box.type = "text";  // not "search": Escape must not clear it natively
  box.name = "q";
  box.id = "own-box";
  const holder = document.createElement("div");
  holder.id = "own-holder";
  const container = document.createElement("div");
  container.id = "own-container";
  holder.appendChild(box);
  form.appendChild(holder);
  form.appendChild(container);
  document.body.appendChild(form);
  window.__selected = [];
  window.__widget = ShopSuggestions.attach(box, {
    ...options,
    container,
    onSelect: (choice, input) => {
      window.__selected.push({...choice, inputValue: input.value});
      return false;  // the host takes over: no submit
    },
  });
}
"""


def suggest_fetches(page) -> list[dict[str, list[str]]]:
    return [query_of(u) for u in page.evaluate("window.__fetched") if "suggest" in u]


def test_widget_options_change_what_it_asks_shows_and_does(page, shop):
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    # A custom endpoint, answered by the real one.
    page.route(
        "**/custom-suggest/**",
        lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace("/custom-suggest/", "/api/suggestions/suggest/"))
        ),
    )
    page.goto("/")
    page.evaluate(
        OWN_BOX,
        {
            "endpoint": "/custom-suggest/",
            "eventsEndpoint": "",  # send no events
            "limit": 2,
            "minChars": 4,
            "debounceMs": 0,  # every keystroke asks at once
            "labels": {"suggestions": "Ideas", "listbox": "Ideas for you"},
            "submitOnSelect": False,
            "originField": "",  # add no hidden field
        },
    )
    box = page.locator("#own-box")
    box.focus()
    # A burst: with debounceMs 0 none of it is merged; minChars 4 keeps
    # "h", "hp" and "hp " (two characters once trimmed) from asking at all.
    page.evaluate(
        """text => {
             const box = document.getElementById("own-box");
             for (let i = 1; i <= text.length; i++) {
               box.value = text.slice(0, i);
               box.dispatchEvent(new InputEvent("input", {bubbles: true}));
             }
           }""",
        "hp la",
    )
    wait_for_list(page, "hp la")
    asked = suggest_fetches(page)
    assert [q["q"][0] for q in asked] == ["hp l", "hp la"]
    assert all(q["limit"] == ["2"] for q in asked)
    assert all("/custom-suggest/" in u for u in page.evaluate("window.__fetched") if "suggest" in u)

    # The list: two options, under the custom container, with the custom labels.
    listbox = page.locator("#own-container > [role=listbox]")
    assert listbox.is_visible()
    assert listbox.get_attribute("aria-label") == "Ideas for you"
    assert [t.strip() for t in listbox.locator("[role=option]").all_text_contents()] == SHOWN_FOR_HP_LA[:2]
    assert listbox.locator("[role=presentation]").all_text_contents() == ["Ideas"]
    assert page.locator("#own-container").get_attribute("class") == "ss-host"
    assert page.locator("#own-holder [role=listbox]").count() == 0

    # Choosing: onSelect gets the choice, returning false keeps the page; no
    # origin field, no events.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    selected = page.evaluate("window.__selected")
    assert len(selected) == 1
    request_id = selected[0].pop("requestId")
    assert request_id and selected == [
        {"text": "hp laserjet toner", "kind": "suggestion", "position": 1, "query": "hp la",
         "inputValue": "hp laserjet toner"}
    ]
    assert box.input_value() == "hp laserjet toner"
    assert urlsplit(page.url).path == "/"
    assert page.locator("#own-form input[type=hidden]").count() == 0
    page.evaluate("document.getElementById('own-form').requestSubmit()")
    page.wait_for_url(re.compile(r"/search/\?"))
    assert query_of(page.url)["q"] == ["hp laserjet toner"]
    assert not any("/events/" in u for u in posted)
    assert page.errors == []


def test_a_slow_answer_is_given_up_after_timeout_ms(page, shop):
    held: list = []
    page.route("**/api/suggestions/suggest/**", lambda route: held.append(route))  # never answered
    page.goto("/")
    page.evaluate(OWN_BOX, {"timeoutMs": 300})
    page.locator("#own-box").focus()
    page.evaluate("window.__asked = performance.now()")
    page.keyboard.type("t")
    page.wait_for_function("window.__ssEvents.some(e => e.type === 'error' && e.value === 't')")
    waited = page.evaluate("window.__ssEvents.find(e => e.type === 'error').at - window.__asked")
    # Given up near its own 300 ms, well before the default 2000 ms.
    assert 300 <= waited < 1500
    assert page.locator("#own-container [role=listbox]").is_hidden()
    assert len(held) == 1


def test_destroy_detaches_the_widget_and_removes_what_it_added(page, shop):
    page.goto("/")
    page.evaluate(OWN_BOX, {"debounceMs": 0, "eventsEndpoint": ""})
    box = page.locator("#own-box")
    box.focus()
    page.keyboard.type("hp la", delay=30)
    wait_for_list(page, "hp la")
    assert page.locator("#own-container [role=listbox]").count() == 1

    page.evaluate("window.__widget.destroy(); window.__fetched = []; window.__ssEvents = []")

    # Its DOM is gone and the input is a plain input again.
    assert page.locator("#own-container").evaluate("c => c.children.length") == 0
    assert page.locator("#own-container [role=listbox], #own-container [role=status]").count() == 0
    for attribute in ("role", "aria-autocomplete", "aria-expanded", "aria-controls",
                      "aria-activedescendant"):
        assert box.get_attribute(attribute) is None, attribute
    assert page.evaluate("document.getElementById('own-box').shopSuggestions") is None
    # Its listeners are gone: typing asks nothing, keys do what an input does.
    box.focus()
    page.keyboard.type("ser", delay=30)
    page.keyboard.press("Escape")  # the widget would clear a closed box
    page.keyboard.press("ArrowDown")  # the widget would ask again
    assert box.input_value() == "hp laser"
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide'))")
    assert page.evaluate("window.__fetched") == []
    assert page.evaluate("window.__ssEvents") == []
    # The page's own widget is untouched, and the box can be attached again.
    assert page.get_by_role("combobox").count() == 1
    page.evaluate("ShopSuggestions.attach(document.getElementById('own-box'), {debounceMs: 0})")
    assert box.get_attribute("role") == "combobox"
    assert page.locator("#own-holder [role=listbox]").count() == 1
    assert page.errors == []
