"""What the rest of the suite left untested: stale mined rows and their
moderation exemptions, the build and garbage-collect tasks run as Celery tasks,
the host's ``gpu`` routing of ``suggestions.ml.*`` and the trending window."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from suggestions import services, tasks
from suggestions.history import ImportedSearch, import_searches
from suggestions.models import (
    QueryDailyStat,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionSource,
    SuggestionStatus,
)

pytestmark = pytest.mark.django_db


def searched(query: str, users: int, *, when: datetime | None = None, prefix: str = "u") -> None:
    """``users`` distinct shoppers searched ``query`` (now, or at ``when``)."""
    when = when or timezone.now()
    import_searches([ImportedSearch(user=f"{prefix}{i}", query=query, time=when) for i in range(users)])


def forget(query: str) -> None:
    """The query's history is gone (as after retention): it is no longer mined."""
    SearchEvent.objects.filter(normalized_query=query).delete()
    QueryDailyStat.objects.filter(normalized_query=query).delete()


def served(prefix: str) -> list[str]:
    return [item.text for item in services.suggest(prefix, limit=10).items]


# -- stale rows and moderation ---------------------------------------------------------


def test_a_build_removes_mined_rows_no_longer_mined_and_keeps_moderated_ones(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    names = ["zelda breath", "zelda link", "zelda rejected", "zelda blocked", "zelda pending",
             "zelda pinned", "zelda manual"]
    for i, text in enumerate(names):
        searched(text, 3, prefix=f"p{i}-")
    report = services.build_suggestions(include_catalog=False)
    assert report.removed == 0
    mined = dict(Suggestion.objects.values_list("text", "source"))
    assert {t: mined.get(t) for t in names} == dict.fromkeys(names, SuggestionSource.HISTORY)

    # Moderation and merchandisers touch some of the mined rows.
    Suggestion.objects.filter(text="zelda rejected").update(status=SuggestionStatus.REJECTED)
    Suggestion.objects.filter(text="zelda blocked").update(status=SuggestionStatus.BLOCKED)
    Suggestion.objects.filter(text="zelda pending").update(status=SuggestionStatus.PENDING)
    Suggestion.objects.filter(text="zelda pinned").update(pinned_prefix="zel")
    services.add_manual_suggestion("zelda manual", weight=5)
    weight_before = Suggestion.objects.get(text="zelda link").weight

    # Every query but one is forgotten; one more shopper searches the survivor.
    for text in names:
        if text != "zelda link":
            forget(text)
    searched("zelda link", 1, prefix="late-")
    report = services.build_suggestions(include_catalog=False)

    rows = {s.text: s for s in Suggestion.objects.filter(text__startswith="zelda")}
    # The unmoderated mined row that is no longer mined is removed (and only it).
    assert "zelda breath" not in rows
    assert report.removed == 1
    # Moderation decisions, pins and manual rows outlive their history.
    assert rows["zelda rejected"].status == SuggestionStatus.REJECTED
    assert rows["zelda blocked"].status == SuggestionStatus.BLOCKED
    assert rows["zelda pending"].status == SuggestionStatus.PENDING
    assert rows["zelda pinned"].pinned_prefix == "zel"
    assert rows["zelda manual"].source == SuggestionSource.MANUAL and rows["zelda manual"].weight == 5
    # Still mined: updated in place, not removed and re-created.
    assert rows["zelda link"].distinct_users == 4 and rows["zelda link"].weight > weight_before
    assert set(served("zel")) == {"zelda pinned", "zelda link", "zelda manual"}


def test_mining_never_overwrites_a_manual_or_generated_row(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    services.add_manual_suggestion("mario kart", weight=2)
    Suggestion.objects.create(text="mario party", source=SuggestionSource.GENERATED,
                              status=SuggestionStatus.PENDING, weight=1)
    searched("mario kart", 5)
    searched("mario party", 5, prefix="v")
    services.build_suggestions(include_catalog=False)
    kart, party = Suggestion.objects.get(text="mario kart"), Suggestion.objects.get(text="mario party")
    assert (kart.source, kart.weight, kart.distinct_users) == (SuggestionSource.MANUAL, 2, 0)
    assert (party.source, party.status) == (SuggestionSource.GENERATED, SuggestionStatus.PENDING)
    assert served("mario") == ["mario kart"]  # a generated row waits for review


# -- the build and garbage-collect tasks -------------------------------------------------


def test_the_build_task_mines_stores_and_publishes(settings):
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 3
    searched("portal 2", 3)
    searched("portal 1", 2, prefix="v")  # below the gate
    assert served("port") == []
    result = tasks.build_suggestions.delay()
    report = result.get()
    assert result.successful()
    assert report["history"] == 1 and report["created"] == Suggestion.objects.count() > 0
    assert served("port")[0] == "portal 2"  # published by the task
    # Idempotent: a second run creates nothing and removes nothing.
    again = tasks.build_suggestions.apply().get()
    assert (again["created"], again["removed"]) == (0, 0)
    assert again["updated"] == report["created"]


def test_the_garbage_collect_task_deletes_only_what_is_past_retention(settings):
    settings.SUGGESTIONS_HISTORY_RETENTION_DAYS = 30
    old, recent = timezone.now() - timedelta(days=31), timezone.now() - timedelta(days=29)
    searched("old query", 2, when=old)
    searched("recent query", 2, when=recent, prefix="v")
    for query, when in (("old query", old), ("recent query", recent)):
        click = SuggestionClick.objects.create(request_id=SearchEvent.objects.filter(
            normalized_query=query).first().request_id, prefix="q", suggestion=query, position=0)
        SuggestionClick.objects.filter(pk=click.pk).update(created_at=when)

    counts = tasks.garbage_collect.delay().get()

    assert counts["searchevent"] == 2 and counts["suggestionclick"] == 1
    assert counts["querydailystat"] == 1
    assert set(SearchEvent.objects.values_list("normalized_query", flat=True)) == {"recent query"}
    assert list(SuggestionClick.objects.values_list("suggestion", flat=True)) == ["recent query"]
    assert list(QueryDailyStat.objects.values_list("normalized_query", flat=True)) == ["recent query"]
    assert tasks.garbage_collect.apply().get()["searchevent"] == 0  # idempotent


# -- routing -----------------------------------------------------------------------------


def test_the_demo_routes_every_ml_task_to_the_gpu_queue_and_the_rest_to_default():
    from celery import Task

    from shop_search.celery import app

    app.loader.import_default_modules()
    declared = {t.name for t in vars(tasks).values() if isinstance(t, Task)}
    registered = {name for name in app.tasks if name.startswith("suggestions.")}
    assert declared and declared <= registered

    def queue(name: str) -> str:
        return app.amqp.router.route({}, name, (), {})["queue"].name

    routes = {name: queue(name) for name in registered}
    assert {n for n, q in routes.items() if q == "gpu"} == {n for n in registered if n.startswith("suggestions.ml.")}
    assert {n for n, q in routes.items() if q != "gpu"} == {n for n in registered if not n.startswith("suggestions.ml.")}
    assert set(routes.values()) == {"gpu", "default"}
    # The retrain, the understanding and the ranking tasks are among the GPU ones.
    assert {"suggestions.ml.retrain", "suggestions.ml.understand_pending", "suggestions.ml.reunderstand",
            "suggestions.ml.rank_prefixes"} <= {n for n, q in routes.items() if q == "gpu"}


# -- the trending window ----------------------------------------------------------------------


def test_trending_counts_searches_inside_the_window_only(settings):
    settings.SUGGESTIONS_TRENDING_DAYS = 3
    settings.SUGGESTIONS_MIN_DISTINCT_USERS = 1
    today = timezone.localdate()

    def on(days_ago: int) -> datetime:
        return timezone.make_aware(datetime.combine(today - timedelta(days=days_ago), time(12)))

    # The window is today and the SUGGESTIONS_TRENDING_DAYS days before it.
    searched("inside edge", 2, when=on(3))
    searched("inside edge", 1, when=on(4), prefix="old-")  # just outside: not counted
    searched("only outside", 5, when=on(4), prefix="w")
    searched("today", 1, when=on(0), prefix="t")
    services.build_suggestions(include_catalog=False)
    assert {"inside edge", "only outside", "today"} <= set(Suggestion.objects.values_list("text", flat=True))

    items = [(i.text, i.searches) for i in services.trending(limit=10)]
    assert items == [("inside edge", 2), ("today", 1)]

    settings.SUGGESTIONS_TRENDING_DAYS = 4  # the outside day comes in
    assert [(i.text, i.searches) for i in services.trending(limit=10)] == [
        ("only outside", 5), ("inside edge", 3), ("today", 1)]
