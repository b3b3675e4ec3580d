"""An experiment in headless Chromium: a merchandiser starts it in the admin,
a shopper of the storefront is served their arm's order, and the results page
(saved as ``docs/screenshots/experiment.png``) shows both versions with their
intervals and the sentences. Needs what tests/test_browser.py needs."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from suggestions import experiments, services
from suggestions.conf import app_settings
from suggestions.models import Experiment, ExperimentEvent, ExperimentRanking
from tests.test_browser import (  # noqa: F401  (fixtures)
    RECORD_WIDGET_EVENTS,
    browser,
    eventually,
    option_texts,
    page,
    type_in_search,
    wait_for_list,
)
from tests.test_experiments import _history, _trained_version

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "experiment.png"


def _simulate_shoppers(experiment: Experiment, n: int = 600) -> None:
    """Shoppers shown the list for 'g'; the treatment's lists are chosen from
    a little more often and higher up."""
    rng = random.Random(4)
    for i in range(n):
        key = f"shopper:sim-{i}"
        arm = experiments.assign(experiment, session_key=key)
        order = [t for t, _s in ExperimentRanking.objects.get(experiment=experiment, arm=arm, prefix="g").texts][:8]
        rid = f"{i:032x}"
        events = [{"type": "impression", "request_id": rid, "prefix": "g", "suggestions": order}]
        if rng.random() < (0.42 if arm == "treatment" else 0.34):
            position = min(int(rng.expovariate(1.6 if arm == "treatment" else 1.1)), len(order) - 1)
            events.append({"type": "suggestion_click", "request_id": rid, "prefix": "g",
                           "suggestion": order[position], "position": position})
        services.record_events(events, session_key=key)


def test_start_an_experiment_serve_its_arm_and_read_the_results(page, server, client, tmp_path, settings):  # noqa: F811
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    _history()
    treatment = _trained_version(tmp_path, "20261201-treatment")
    experiment = Experiment.objects.create(name="Learned ranker against popularity", control=None, treatment=treatment)
    admin = get_user_model().objects.create_superuser("merch", "merch@example.com", "pw-123456")
    client.force_login(admin)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}])

    page.goto("/admin/shop_suggestions/experiment/")
    page.locator(f"input[name=_selected_action][value='{experiment.pk}']").check()
    page.select_option("select[name=action]", "start")
    page.get_by_role("button", name="Go").click()
    page.get_by_text("Started 1 experiment").wait_for()
    # The prepare task ran (eagerly, after the commit) in the server.
    assert eventually(lambda: Experiment.objects.get(pk=experiment.pk).prepared_at)

    # A shopper: the first visit hands out the shopper cookie, the typeahead
    # then serves that shopper's arm.
    shopper = page.context.browser.new_context(base_url=server.url)
    shopper.route(re.compile(r"^(?!" + re.escape(server.url) + r")https?://"), lambda route: route.abort())
    shopper.add_init_script(RECORD_WIDGET_EVENTS)
    try:
        shop = shopper.new_page()
        shop.goto("/")
        shop.goto("/")
        cookie = next(c for c in shopper.cookies() if c["name"] == app_settings.SHOPPER_COOKIE_NAME)
        key = f"shopper:{cookie['value'].strip(chr(34)).split(':')[0]}"
        arm = experiments.assign(experiment, session_key=key)
        order = [t for t, _s in ExperimentRanking.objects.get(experiment=experiment, arm=arm, prefix="g").texts]
        type_in_search(shop, "g")
        wait_for_list(shop, "g")
        shown = option_texts(shop)
        assert shown and shown == order[:len(shown)]
        shop.goto("about:blank")  # sends the impression
        assert eventually(lambda: ExperimentEvent.objects.filter(kind="impression", arm=arm).exists())
    finally:
        shopper.close()

    _simulate_shoppers(experiment)
    page.goto("/admin/shop_suggestions/experiment/")
    page.get_by_role("link", name="Results").click()
    page.get_by_role("heading", name="What this means").wait_for()
    rows = page.locator("table.arms tbody tr")
    assert rows.count() == 3  # control, treatment, difference
    assert "no model (popularity order)" in rows.nth(0).inner_text()
    assert "version 20261201-treatment" in rows.nth(1).inner_text()
    sentences = page.locator("ul.verdict li").all_inner_texts()
    assert any("led to a chosen suggestion" in s for s in sentences)
    assert page.get_by_text("Sample ratio mismatch").count() == 0
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.errors == []
