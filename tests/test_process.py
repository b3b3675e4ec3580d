"""A web process made ready: warm-up through the request path, then gc.freeze (suggestions/process.py)."""

from __future__ import annotations

import gc

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from suggestions import process, services, serving
from suggestions.history import ImportedSearch, import_searches
from suggestions.models import QueryUnderstanding, SearchEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def unfrozen():
    """Give the test process its collector back, whatever the test froze."""
    yield
    gc.unfreeze()


def test_the_warm_up_answers_through_the_request_path_and_freezes_what_is_alive(unfrozen, settings, monkeypatch):
    settings.SUGGESTIONS_LOCAL_CACHE_SECONDS = 60
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    import_searches([ImportedSearch(user=f"u{i}", query="apple watch", time=timezone.now()) for i in range(3)])
    services.build_suggestions(include_catalog=False)
    searches = SearchEvent.objects.count()
    serving.invalidate_cache()
    gc.unfreeze()
    report = services.prepare_web_process(["ap", "wa"], close_connections=False)
    assert report["answered"] == 2 and report["failed"] == []
    assert report["frozen"] > 0 and gc.get_freeze_count() > 0
    # The answers were computed and kept: the same keystroke now comes from this
    # process's memory, with no database query and nothing computed again.
    def computed_again(*args, **kwargs):
        raise AssertionError("the warm-up's answer was not kept")

    monkeypatch.setattr(serving, "_compute", computed_again)
    with CaptureQueriesContext(connection) as queries:
        assert [i.text for i in serving.suggest("ap", limit=8).items][:1] == ["apple watch"]
    assert len(queries) == 0
    # Nothing a shopper did was invented.
    assert SearchEvent.objects.count() == searches


def test_a_failing_step_is_logged_and_skipped_and_the_freeze_still_happens(unfrozen, monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("recall backend down")

    monkeypatch.setattr(serving, "suggest", down)
    gc.unfreeze()
    with caplog.at_level("WARNING", logger=process.__name__):
        report = services.prepare_web_process(["ap"], close_connections=False)
    assert report["failed"] == ["suggest"] and report["answered"] == 0
    assert report["frozen"] > 0 and gc.get_freeze_count() > 0
    assert "could not answer suggestions" in caplog.text


def test_without_freeze_the_collector_is_left_alone(unfrozen):
    gc.unfreeze()
    report = services.prepare_web_process(["a"], freeze=False, close_connections=False)
    assert report["frozen"] == 0 and gc.get_freeze_count() == 0
    assert report["answered"] == 1
    assert QueryUnderstanding.objects.count() == 0  # the understanding call stored nothing


def test_by_default_the_warm_up_closes_its_threads_database_connections(unfrozen, monkeypatch):
    from django.db import connections

    closed = []
    monkeypatch.setattr(connections, "close_all", lambda: closed.append(True))
    services.prepare_web_process(["a"], freeze=False)
    assert closed == [True]
    services.prepare_web_process(["a"], freeze=False, close_connections=False)
    assert closed == [True]
