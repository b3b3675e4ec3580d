"""A merchandiser's change in the admin reaches every storefront process at once.

The demo stack as ``make demo`` runs it, with its embedded defaults (SQLite
file, file-based cache, filesystem Celery broker, tantivy) in a temporary
``SHOP_VAR_DIR``: two ``runserver`` processes and a ``celery worker`` on the
default queue. In headless Chromium the merchandiser blocks, pins and adds
suggestions in the admin of web process A; the shopper's dropdown on web
process B follows within ``SUGGESTIONS_LOCAL_CACHE_SECONDS`` (blocks and pins:
no worker needed) or once the worker has published (an added suggestion must
reach the engine).

Needs Chromium and playwright (as tests/test_browser.py): skipped locally
without them, failing under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.plugins.services import free_port
from tests.test_browser import RECORD_WIDGET_EVENTS, browser, option_texts, wait_for_list  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The review flows as a merchandiser sees them, refreshed by every run of these tests.
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
WAIT_SECONDS = 60.0  # upper bound on a loaded CI machine; passing runs take a few seconds

# Run with the demo's settings in the stack's own var directory.
SETUP = """
from catalog.models import Product
from suggestions import services
from suggestions.models import Suggestion
for i, (title, brand, ptype) in enumerate([
    ("Monster Jam truck toy", "Mattel", "toy"),
    ("Dell 27 inch monitor", "Dell", "monitor"),
    ("Ergotron monitor arm", "Ergotron", "monitor arm"),
    ("Toshiba Canvio external drive", "Toshiba", "hard drive"),
    ("Toshiba Satellite laptop", "Toshiba", "laptop"),
]):
    Product.objects.create(source_id=f"demo-{i}", title=title, brand=brand, product_type=ptype, price=1000)
for text, weight in [("monster jam", 90), ("monitor stand", 80), ("monitor arm", 70),
                     ("toshiba laptop", 90), ("toshiba tv", 80), ("toshiba drive", 10)]:
    Suggestion.objects.create(text=text, source="history", status="approved", weight=weight)
services.publish_suggestions()
"""


@dataclass
class Stack:
    env: dict[str, str]
    var: Path
    web: list[str] = field(default_factory=list)
    processes: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list)

    def logs(self) -> str:
        out = []
        for name, process, log in self.processes:
            text = log.read_text(errors="replace") if log.exists() else ""
            out.append(f"--- {name} (exit code {process.poll()}) ---\n{text[-4000:]}")
        return "\n".join(out)

    def suggest(self, web: int, prefix: str) -> list[dict[str, Any]]:
        import json

        url = f"{self.web[web]}/api/suggestions/suggest/?q={quote(prefix)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["suggestions"]

    def wait_until(self, condition: Callable[[], bool], what: str) -> float:
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > WAIT_SECONDS:
                pytest.fail(f"waited {WAIT_SECONDS:.0f} s for {what}\n{self.logs()}")
            time.sleep(0.2)
        return time.monotonic() - start


def _manage(stack: Stack, *args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


def _start(stack: Stack, name: str, args: list[str]) -> None:
    log = stack.var / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=stack.env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    stack.processes.append((name, process, log))


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(browser, tmp_path_factory) -> Iterator[Stack]:  # noqa: F811 - the browser fixture, imported
    var = tmp_path_factory.mktemp("demo-var")
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "ELASTICSEARCH_URL", "CELERY_TASK_ALWAYS_EAGER")}
    env.update(DJANGO_SETTINGS_MODULE="shop_search.settings", SHOP_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    stack = Stack(env=env, var=var)
    _manage(stack, "migrate", "--noinput")
    _manage(stack, "shell", "-c", SETUP)
    _manage(stack, "suggestions_rebuild_index")
    _manage(stack, "catalog_demo_user")
    try:
        _start(stack, "worker", [sys.executable, "-m", "celery", "-A", "shop_search", "worker", "-Q", "default",
                                 "--pool", "solo", "--loglevel", "warning", "-n", "default@demo-test"])
        # The GPU queue's worker, as make demo starts it: it understands searched queries.
        _start(stack, "gpu-worker", [sys.executable, "-m", "celery", "-A", "shop_search", "worker", "-Q", "gpu",
                                     "--pool", "solo", "--loglevel", "warning", "-n", "gpu@demo-test"])
        for name in ("web-a", "web-b"):
            port = free_port()
            _start(stack, name, [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"])
            stack.web.append(f"http://127.0.0.1:{port}")
        for url in stack.web:
            stack.wait_until(lambda url=url: _answers(url + "/"), f"{url} to answer")
        yield stack
    finally:
        for _name, process, _log in stack.processes:
            _stop(process)


def _new_page(browser, base_url: str) -> Any:  # noqa: F811
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    context.route(re.compile(r"^(?!" + re.escape(base_url) + r")https?://"), lambda route: route.abort())
    context.add_init_script(RECORD_WIDGET_EVENTS)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def _dropdown(browser, base_url: str, typed: str, screenshot: str = "") -> list[str]:  # noqa: F811
    """What a shopper arriving on the storefront sees after typing ``typed``."""
    page = _new_page(browser, base_url)
    try:
        page.goto("/")
        page.get_by_role("combobox").click()
        page.keyboard.type(typed, delay=60)
        wait_for_list(page, typed)
        if screenshot:
            _screenshot(page, screenshot)
        return option_texts(page)
    finally:
        page.context.close()


def _admin(browser, base_url: str) -> Any:  # noqa: F811
    page = _new_page(browser, base_url)
    page.goto("/admin/login/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password")
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/admin/$"))
    return page


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _run_action(page, search: str, texts: list[str], action: str) -> None:
    """Tick the rows of ``texts`` in the suggestion changelist and run ``action``."""
    page.goto(f"/admin/shop_suggestions/suggestion/?q={quote(search)}")
    for text in texts:
        page.locator("#result_list tr", has_text=text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.locator("button[name=index], input[name=index]").first.click()


def first(items: list[dict[str, Any]]) -> tuple[str, str] | None:
    return (items[0]["text"], items[0]["kind"]) if items else None


def texts_of(items: list[dict[str, Any]]) -> list[str]:
    return [item["text"] for item in items]


def test_admin_changes_show_in_the_other_web_process(stack: Stack, browser) -> None:  # noqa: F811
    shopper_url = stack.web[1]
    assert "monster jam" in _dropdown(browser, shopper_url, "mon")
    assert texts_of(stack.suggest(1, "tos"))[0] == "toshiba laptop"
    assert "laptop stand" not in texts_of(stack.suggest(1, "lapto"))

    admin = _admin(browser, stack.web[0])

    # Block "monster jam".
    _run_action(admin, "monster", ["monster jam"], "block")
    assert "1 suggestion blocked" in admin.locator(".messagelist").inner_text()
    # Pin "toshiba drive" (the least weighted) for "tos".
    _screenshot(admin, "moderation-block.png")
    _run_action(admin, "toshiba", ["toshiba drive"], "pin_for_prefix")
    admin.fill("input[name=prefix]", "tos")
    _screenshot(admin, "moderation-pin.png")
    admin.locator("input[type=submit][value=Pin]").click()
    assert "pinned for “tos”" in admin.locator(".messagelist").inner_text()
    # Add "laptop stand" with the add form's defaults (a merchandiser's own, approved).
    admin.goto("/admin/shop_suggestions/suggestion/add/")
    admin.fill("input[name=text]", "Laptop stand")
    admin.locator("input[name=_save]").click()
    assert "laptop stand" in admin.locator(".messagelist").inner_text().lower()
    admin.context.close()

    # Blocked and pinned: read per cache version, no worker needed.
    stack.wait_until(lambda: "monster jam" not in texts_of(stack.suggest(1, "mon")), "the block to reach web B")
    stack.wait_until(lambda: first(stack.suggest(1, "tos")) == ("toshiba drive", "pinned"), "the pin to reach web B")
    # Added: the worker publishes it to the engine.
    stack.wait_until(lambda: "laptop stand" in texts_of(stack.suggest(1, "lapto")), "the added suggestion")

    shown = _dropdown(browser, shopper_url, "mon")
    assert "monster jam" not in shown and "monitor stand" in shown
    assert _dropdown(browser, shopper_url, "tos", screenshot="storefront-pinned.png")[0] == "toshiba drive"
    assert "laptop stand" in _dropdown(browser, shopper_url, "lapto")
    # The process that made the changes answers the same.
    assert texts_of(stack.suggest(0, "mon")) == texts_of(stack.suggest(1, "mon"))


def _understood(stack: Stack, web: int, query: str) -> dict[str, Any]:
    import json

    url = f"{stack.web[web]}/api/suggestions/understand/?q={quote(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_a_correction_in_the_review_queue_changes_the_understanding(stack: Stack, browser) -> None:  # noqa: F811
    # A shopper searches on web B; the GPU-queue worker understands the query.
    urllib.request.urlopen(f"{stack.web[1]}/api/suggestions/search/?q={quote('toshiba laptop deals')}", timeout=10)
    admin = _admin(browser, stack.web[0])
    changelist = "/admin/shop_suggestions/queryunderstanding/"

    def listed() -> bool:
        admin.goto(changelist)
        return admin.locator("#result_list tr", has_text="toshiba laptop deals").count() == 1

    stack.wait_until(listed, "the worker to understand the searched query")
    _screenshot(admin, "review-understandings.png")
    admin.locator("#result_list tr", has_text="toshiba laptop deals").get_by_role("link", name="Correct…").click()
    # The form lists the labels a merchandiser may use.
    assert "product_type" in admin.locator(".help").first.inner_text()
    admin.select_option("select[name=intent]", label="Category browse")
    admin.fill("textarea[name=entities]", "brand: toshiba\nproduct_type: laptop")
    _screenshot(admin, "review-correction.png")
    admin.locator("input[type=submit]").first.click()
    assert "Saved the correction of “toshiba laptop deals”" in admin.locator(".messagelist").inner_text()
    admin.context.close()

    # The other web process answers with the correction.
    def corrected() -> bool:
        body = _understood(stack, 1, "toshiba laptop deals")
        return body["intent"] == "category_browse" and {(e["label"], e["text"]) for e in body["entities"]} == {
            ("brand", "toshiba"), ("product_type", "laptop")}

    stack.wait_until(corrected, "the correction to reach web B")
