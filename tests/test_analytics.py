"""Search analytics: the rollup against a hand computation on a small replay,
idempotence, erasure and retention, the command, the task, and the admin page
(permissions, period validation, CSV, actions).

The expected figures are computed here, in plain Python, from the list of
hand-written events, never from the rollup code.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from suggestions import services, tasks
from suggestions.conf import app_settings
from suggestions.models import (
    AnalyticsDay,
    AnalyticsPositionDay,
    AnalyticsQueryDay,
    BlockedTerm,
    ProductClick,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
    SuggestionStatus,
)
from suggestions.text import hash_identifier

pytestmark = pytest.mark.django_db

ZONE = "America/New_York"  # days are the project's days, not UTC's
PAGE = reverse("admin:shop_suggestions_analyticsday_changelist")
ACT = reverse("admin:shop_suggestions_analytics_act")


def csv_url(table: str) -> str:
    return reverse("admin:shop_suggestions_analytics_csv", args=[table])


# -- the replay -------------------------------------------------------------------------------

# (kind, days before today, local time, shopper, fields)
#   search:  query, results count (None: unknown), origin
#   shown:   prefix, suggestions shown
#   chosen:  prefix, suggestion, 0-based position
#   clicked: query, result position
REPLAY = [
    ("search", 2, "09:00", "alice", ("usb cable", 12, "typed")),
    ("shown", 2, "09:01", "alice", ("us", ["usb cable", "usb hub", "usb c adapter"])),
    ("chosen", 2, "09:01", "alice", ("us", "usb cable", 0)),
    ("search", 2, "09:01", "alice", ("usb cable", 12, "suggestion")),
    ("clicked", 2, "09:02", "alice", ("usb cable", 0)),
    ("search", 2, "10:00", "bob", ("cabel", 0, "typed")),
    ("search", 2, "10:01", "bob", ("cabel", 0, "typed")),
    ("shown", 2, "10:02", "bob", ("ca", ["camera", "cable"])),
    ("chosen", 2, "10:02", "bob", ("ca", "cable", 1)),
    ("search", 2, "10:02", "bob", ("cable", 40, "suggestion")),
    ("search", 2, "23:59", "carol", ("hdmi", None, "typed")),  # imported-like: results unknown
    ("search", 1, "00:00", "carol", ("hdmi", 5, "history")),
    ("shown", 1, "00:01", "carol", ("h", ["hdmi", "hp laptop", "headphones", "hdmi cable"])),
    ("shown", 1, "00:01", "carol", ("hd", ["hdmi", "hdmi cable"])),
    ("chosen", 1, "00:02", "carol", ("hd", "hdmi cable", 1)),
    ("search", 1, "00:02", "carol", ("hdmi cable", 7, "suggestion")),
    ("clicked", 1, "00:03", "carol", ("hdmi cable", 3)),
    ("clicked", 1, "00:04", "carol", ("hdmi cable", 1)),
    ("search", 1, "12:00", "alice", ("wallaby secret gift", 0, "typed")),
    ("shown", 1, "12:00", "alice", ("wal", [])),
    ("search", 1, "13:00", "bob", ("cabel", 0, "typed")),
    ("shown", 0, "08:00", "bob", ("lap", ["laptop", "laptop stand"])),
    ("chosen", 0, "08:00", "bob", ("lap", "laptop", 0)),
    ("search", 0, "08:00", "bob", ("laptop", 30, "suggestion")),
    ("search", 0, "08:05", "dave", ("=cmd|' /c calc'!a0", 0, "typed")),
]


def local_moment(days_before: int, hhmm: str) -> datetime:
    day = timezone.localdate() - timedelta(days=days_before)
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=ZoneInfo(ZONE))


def actor(name: str) -> str:
    return hash_identifier(f"session:{name}", app_settings.HASH_SALT)


def store(events) -> None:
    """Write the replay's events as the receivers would have stored them."""
    from catalog.models import Product

    product_type = ContentType.objects.get_for_model(Product)
    for kind, days_before, hhmm, who, fields in events:
        common = {"created_at": local_moment(days_before, hhmm), "actor_hash": actor(who)}
        rid = uuid.uuid4()
        if kind == "search":
            query, results, origin = fields
            SearchEvent.objects.create(query=query, normalized_query=query, results_count=results, origin=origin,
                                       request_id=rid, identified=True, **common)
        elif kind == "shown":
            SuggestionImpression.objects.create(request_id=rid, prefix=fields[0], suggestions=fields[1], **common)
        elif kind == "chosen":
            SuggestionClick.objects.create(request_id=rid, prefix=fields[0], suggestion=fields[1],
                                           position=fields[2], **common)
        elif kind == "clicked":
            ProductClick.objects.create(request_id=rid, query=fields[0], content_type=product_type, object_id="1",
                                        position=fields[1], **common)


def by_hand(events, first: int, last: int) -> dict:
    """Every figure of the page for the days ``first`` .. ``last`` days before
    today, computed from the event list alone."""
    picked = [e for e in events if last <= e[1] <= first]
    searches = [f for k, _d, _t, _w, f in picked if k == "search"]
    shown = [f for k, _d, _t, _w, f in picked if k == "shown"]
    chosen = [f for k, _d, _t, _w, f in picked if k == "chosen"]
    clicked = [f for k, _d, _t, _w, f in picked if k == "clicked"]
    per_query: dict[str, Counter] = defaultdict(Counter)
    for query, results, origin in searches:
        per_query[query].update(searches=1, zero=int(results == 0), chosen=int(origin == "suggestion"))
    for query, _position in clicked:
        per_query[query].update(clicks=1)
    positions = {}
    for p in range(max((len(s) for _p, s in shown), default=0)):
        positions[p] = (sum(1 for _p, s in shown if len(s) > p), sum(1 for c in chosen if c[2] == p))
    known = [r for _q, r, _o in searches if r is not None]
    return {
        "searches": len(searches),
        "zero_result_rate": sum(1 for r in known if r == 0) / len(known),
        "acceptance_rate": sum(1 for _q, _r, o in searches if o == "suggestion") / len(searches),
        "click_through": len(chosen) / len(shown),
        "keystrokes_saved": sum(max(len(s) - len(p), 0) for p, s, _pos in chosen),
        "keystrokes_saved_share": sum(max(len(s) - len(p), 0) for p, s, _pos in chosen) / sum(len(s) for _p, s, _pos in chosen),
        "product_clicks": len(clicked),
        "top": sorted(((q, c["searches"]) for q, c in per_query.items() if c["searches"]), key=lambda x: (-x[1], x[0])),
        "zero": sorted(((q, c["zero"]) for q, c in per_query.items() if c["zero"]), key=lambda x: (-x[1], x[0])),
        "per_query": {q: {k: v for k, v in c.items() if v} for q, c in per_query.items() if c["searches"]},
        "positions": positions,
        "searches_per_day": Counter(d for k, d, _t, _w, _f in picked if k == "search"),
    }


def figures_of(report) -> dict:
    t = report.totals
    return {
        "searches": t.searches,
        "zero_result_rate": t.zero_result_rate,
        "acceptance_rate": t.acceptance_rate,
        "click_through": t.click_through,
        "keystrokes_saved": t.keystrokes_saved,
        "keystrokes_saved_share": t.keystrokes_saved_share,
        "product_clicks": t.product_clicks,
        "top": [(q.query, q.searches) for q in report.top_queries],
        "zero": [(q.query, q.zero_result_searches) for q in report.zero_result_queries],
        "per_query": {q.query: {k: v for k, v in {"searches": q.searches, "zero": q.zero_result_searches,
                                                  "chosen": q.suggestion_searches, "clicks": q.product_clicks}.items() if v}
                      for q in report.top_queries},
        "positions": {p.position: (p.impressions, p.clicks) for p in report.positions},
        "searches_per_day": Counter({(timezone.localdate() - d.day).days: d.searches for d in report.days if d.searches}),
    }


def period(first: int, last: int) -> tuple[date, date]:
    today = timezone.localdate()
    return today - timedelta(days=first), today - timedelta(days=last)


@pytest.fixture
def replay(settings):
    settings.TIME_ZONE = ZONE
    store(REPLAY)
    services.rollup_analytics(days_back=2)
    return REPLAY


@pytest.mark.parametrize(("first", "last"), [(2, 0), (2, 2), (1, 1), (1, 0)])
def test_rollup_figures_equal_a_hand_computation(replay, first, last):
    expected = by_hand(replay, first, last)
    got = figures_of(services.analytics_report(*period(first, last)))
    assert got == expected


def test_the_replay_exercises_what_it_should(replay):
    expected = by_hand(replay, 2, 0)
    # Sanity of the replay itself: every figure is something other than 0 or 1.
    for name in ("zero_result_rate", "acceptance_rate", "click_through", "keystrokes_saved_share"):
        assert 0 < expected[name] < 1, name
    # Days follow the project's time zone: 23:59 and 00:00 local fall on two days
    # (both are the same UTC day).
    assert expected["searches_per_day"][2] == 6 and expected["searches_per_day"][1] == 4
    assert AnalyticsPositionDay.objects.filter(position=3).get().impressions == 1


def test_rerunning_a_day_replaces_it(replay):
    before = {m: list(m.objects.order_by("pk").values()) for m in (AnalyticsDay, AnalyticsQueryDay, AnalyticsPositionDay)}
    services.rollup_analytics(days_back=2)
    for model, rows in before.items():
        again = list(model.objects.order_by("pk").values())
        strip = lambda rows: [{k: v for k, v in r.items() if k not in ("id", "rolled_up_at")} for r in rows]  # noqa: E731
        assert strip(again) == strip(rows), model.__name__

    # A day's events change: re-running it shows exactly the new events.
    SearchEvent.objects.filter(normalized_query="cabel", created_at__gte=local_moment(1, "00:00")).delete()
    extra = [("search", 1, "15:00", "erin", ("usb hub", 3, "typed"))]
    store(extra)
    services.rollup_analytics(since=period(1, 1)[0], until=period(1, 1)[0])
    events = [e for e in replay if not (e[0] == "search" and e[1] == 1 and e[4][0] == "cabel")] + extra
    assert figures_of(services.analytics_report(*period(1, 1))) | {"per_query": None} == \
        by_hand(events, 1, 1) | {"per_query": None}
    assert not AnalyticsQueryDay.objects.filter(date=period(1, 1)[0], normalized_query="cabel").exists()


def test_erasure_rebuilds_the_shoppers_days_without_them(replay):
    services.erase_history(session_key="alice")

    left = [e for e in replay if e[3] != "alice"]
    got = figures_of(services.analytics_report(*period(2, 0)))
    expected = by_hand(left, 2, 0)
    assert got["top"] == expected["top"] and got["searches"] == expected["searches"]
    assert got["click_through"] == expected["click_through"]
    assert not AnalyticsQueryDay.objects.filter(normalized_query="wallaby secret gift").exists()


def test_retention_deletes_old_query_rows_and_old_days_are_not_rebuilt(replay, settings):
    old_day = timezone.localdate() - timedelta(days=app_settings.HISTORY_RETENTION_DAYS + 5)
    AnalyticsDay.objects.create(date=old_day, searches=9)
    AnalyticsQueryDay.objects.create(date=old_day, normalized_query="old secret", searches=9)

    counts = services.garbage_collect()

    assert counts["analyticsqueryday"] == 1
    assert not AnalyticsQueryDay.objects.filter(normalized_query="old secret").exists()
    report = services.rollup_analytics(since=old_day, until=old_day + timedelta(days=1))
    assert report.skipped == [old_day, old_day + timedelta(days=1)] and report.days == []
    assert AnalyticsDay.objects.get(date=old_day).searches == 9  # totals hold no text and no shopper


def test_rollup_refuses_a_range_that_ends_before_it_starts():
    with pytest.raises(ValueError, match="after the last"):
        services.rollup_analytics(since=date(2026, 5, 2), until=date(2026, 5, 1))


# -- command and task --------------------------------------------------------------------------


def test_command_rolls_up_days_with_progress(settings):
    settings.TIME_ZONE = ZONE
    store(REPLAY)
    out = io.StringIO()
    call_command("suggestions_rollup", "--days", "2", stdout=out)
    text = out.getvalue()
    assert text.count(" searches, ") == 3 and "Rolled up 3 day(s)" in text
    assert AnalyticsDay.objects.count() == 3

    out = io.StringIO()
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    call_command("suggestions_rollup", "--since", since, stdout=out)
    assert "Rolled up 2 day(s)" in out.getvalue()


@pytest.mark.parametrize("args", [["--since", "2026-13-01"], ["--since", "2026-05-02", "--until", "2026-05-01"],
                                  ["--days", "-1"]])
def test_command_refuses_bad_dates_with_a_clear_message(args):
    with pytest.raises(CommandError, match="YYYY-MM-DD|after the last|0 or more"):
        call_command("suggestions_rollup", *args, stdout=io.StringIO())


def test_task_rolls_up_yesterday_and_today_and_is_on_the_beat_schedule(settings):
    store(REPLAY)
    result = tasks.rollup_analytics.delay().get()
    assert result["days"] == [(timezone.localdate() - timedelta(days=d)).isoformat() for d in (1, 0)]
    assert AnalyticsDay.objects.count() == 2
    assert tasks.rollup_analytics.name == "suggestions.analytics.rollup"
    scheduled = [e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert "suggestions.analytics.rollup" in scheduled


# -- the admin page --------------------------------------------------------------------------------


@pytest.fixture
def merchandiser(django_user_model):
    user = django_user_model.objects.create_user("merch", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_analyticsday"))
    return user


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_page_needs_login_and_the_permission(client, django_user_model, merchandiser):
    response = client.get(PAGE)
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    other = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(other)
    assert client.get(PAGE).status_code == 403
    assert client.get(csv_url("days")).status_code == 403
    client.force_login(merchandiser)
    assert client.get(PAGE).status_code == 200
    index = client.get(reverse("admin:index")).content.decode()
    assert PAGE in index


def test_page_shows_the_figures_and_explains_them(client, merchandiser, replay):
    client.force_login(merchandiser)
    response = client.get(PAGE, {"period": "7"})
    html = response.content.decode()
    expected = by_hand(replay, 2, 0)
    assert response.status_code == 200
    assert f"{expected['acceptance_rate'] * 100:.1f}%" in html
    assert f"{expected['click_through'] * 100:.1f}%" in html
    assert "Share of searches that started from a clicked suggestion" in html
    assert html.count('class="analytics-chart"') == 3 and "<script" not in html.split('id="content-main"')[1]
    assert "cabel" in html and "wallaby secret gift" in html
    # Without the moderation permissions, the zero-result rows carry no buttons.
    assert "Add suggestion" not in html and 'value="Block"' not in html


@pytest.mark.parametrize(("params", "message"), [
    ({"period": "custom", "start": "2026-02-30", "end": "2026-03-01"}, "Enter the first day as YYYY-MM-DD"),
    ({"period": "custom", "start": "2026-03-05", "end": "2026-03-01"}, "is after the last day"),
    ({"period": "custom", "start": "2026-03-05"}, "enter both the first and the last day"),
    ({"period": "custom", "start": "2020-01-01", "end": "2026-01-01"}, "Choose at most"),
    ({"period": "365"}, "Select a valid choice"),
])
def test_bad_periods_get_a_clear_error_not_a_500(client, merchandiser, params, message):
    client.force_login(merchandiser)
    response = client.get(PAGE, params)
    assert response.status_code == 400
    assert message in response.content.decode()
    csv_response = client.get(csv_url("days"), params)
    assert csv_response.status_code == 400 and message in csv_response.content.decode()


def test_custom_period_shows_those_days(client, merchandiser, replay):
    client.force_login(merchandiser)
    start, end = period(1, 1)
    response = client.get(PAGE, {"period": "custom", "start": start.isoformat(), "end": end.isoformat()})
    assert response.status_code == 200
    report = response.context["report"]
    assert (report.start, report.end) == (start, end)
    assert report.totals.searches == by_hand(replay, 1, 1)["searches"]


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_csv_export_of_each_table(client, merchandiser, replay):
    client.force_login(merchandiser)
    start, end = period(2, 0)
    params = {"period": "custom", "start": start.isoformat(), "end": end.isoformat()}
    expected = by_hand(replay, 2, 0)

    days = _csv(client.get(csv_url("days"), params))
    assert days[0][:2] == ["day", "searches"]
    assert {row[0]: int(row[1]) for row in days[1:]} == {
        (timezone.localdate() - timedelta(days=d)).isoformat(): n for d, n in expected["searches_per_day"].items()}

    top = _csv(client.get(csv_url("top-queries"), params))
    assert [(r[0], int(r[1])) for r in top[1:]] == [
        (("'" + q) if q.startswith("=") else q, n) for q, n in expected["top"]]

    zero = _csv(client.get(csv_url("zero-result-queries"), params))
    assert [r[0] for r in zero[1:]][:2] == ["cabel", "'=cmd|' /c calc'!a0"]  # a formula is never a formula

    positions = _csv(client.get(csv_url("positions"), params))
    assert [(int(r[0]), int(r[1]), int(r[2])) for r in positions[1:]] == [
        (p + 1, shown, chosen) for p, (shown, chosen) in sorted(expected["positions"].items())]
    assert client.get(csv_url("nope"), params).status_code == 404


def test_zero_result_actions_add_a_suggestion_and_block(client, merchandiser, replay, django_capture_on_commit_callbacks):
    client.force_login(merchandiser)
    assert client.post(ACT, {"action": "suggest", "text": "Cable"}).status_code == 403
    assert client.post(ACT, {"action": "block", "text": "cabel"}).status_code == 403
    grant(merchandiser, "add_suggestion", "add_blockedterm")

    html = client.get(PAGE, {"period": "7"}).content.decode()
    assert "Add suggestion" in html and 'value="Block"' in html

    response = client.post(ACT, {"action": "suggest", "text": "Cable ", "period": "7"})
    assert response.status_code == 302 and response["Location"].endswith("?period=7")
    suggestion = Suggestion.objects.get(text="cable")
    assert (suggestion.status, suggestion.source) == (SuggestionStatus.APPROVED, "manual")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(ACT, {"action": "block", "text": "wallaby secret gift"})
    assert BlockedTerm.objects.filter(pattern="wallaby secret gift", kind="word").exists()
    html = client.get(PAGE, {"period": "7"}).content.decode()
    assert "<td>blocked</td>" in html

    response = client.post(ACT, {"action": "suggest", "text": "!!!"}, follow=True)
    assert "empty" in response.content.decode()
    assert client.post(ACT, {"action": "drop table", "text": "x"}).status_code == 400
    assert client.get(ACT).status_code == 405


def test_zero_result_rows_offer_a_synonym_prefilled(client, merchandiser, replay):
    client.force_login(merchandiser)
    assert "Add a synonym" not in client.get(PAGE, {"period": "7"}).content.decode()
    grant(merchandiser, "add_synonym", "view_synonym")
    html = client.get(PAGE, {"period": "7"}).content.decode()
    link = reverse("admin:shop_suggestions_synonym_add") + "?term=cabel"
    assert f'href="{link}"' in html
    form = client.get(link)
    assert form.status_code == 200 and form.context["adminform"].form.initial["term"] == "cabel"


def test_blocking_a_text_that_is_a_suggestion_blocks_the_suggestion():
    Suggestion.objects.create(text="monster jam", source="history")
    services.block_text("Monster Jam")
    assert Suggestion.objects.get(text="monster jam").status == SuggestionStatus.BLOCKED
    assert BlockedTerm.objects.filter(pattern="monster jam").count() == 1


def test_days_without_a_rollup_are_announced(client, merchandiser):
    client.force_login(merchandiser)
    html = client.get(PAGE, {"period": "7"}).content.decode()
    assert "7 days of this period have no figures yet" in html


# -- refinement chips ---------------------------------------------------------------------------

# (days before today, local time, shopper, searched query, chips shown, chip chosen or None)
CHIP_REPLAY = [
    (2, "09:00", "alice", "running shoes", ["running shoes men", "nike running shoes", "running shoes men"],
     "running shoes men"),  # a chip listed twice on one page is shown once
    (2, "11:00", "bob", "running shoes", ["running shoes men", "nike running shoes"], None),
    (2, "11:30", "bob", "running shoes", ["running shoes men", "nike running shoes"], "nike running shoes"),
    (1, "10:00", "carol", "red runnin shoes", ["runnin shoes", "running shoes men"], "runnin shoes"),
    (0, "08:00", "dave", "running shoes", ["nike running shoes"], None),
]
#: The chips that are suggestions; "runnin shoes" is the query less a word (the shopper's own words).
CHIP_SOURCES = {"running shoes men": "generated", "nike running shoes": "catalog"}


def store_chips(events) -> None:
    from suggestions.models import EventSurface

    Suggestion.objects.bulk_create([Suggestion(text=t, source=source, status=SuggestionStatus.APPROVED)
                                    for t, source in CHIP_SOURCES.items()], ignore_conflicts=True)
    for days_before, hhmm, who, query, chips, chosen in events:
        common = {"created_at": local_moment(days_before, hhmm), "actor_hash": actor(who),
                  "surface": EventSurface.REFINEMENTS, "request_id": uuid.uuid4()}
        SuggestionImpression.objects.create(prefix=query, suggestions=chips, **common)
        if chosen:
            SuggestionClick.objects.create(prefix=query, suggestion=chosen, position=chips.index(chosen), **common)


def chips_by_hand(events, first: int, last: int) -> tuple[dict, dict]:
    """(query, chip) → [shown, chosen] and source → [shown, chosen], from the list alone."""
    per_chip: dict = defaultdict(lambda: [0, 0])
    per_source: dict = defaultdict(lambda: [0, 0])
    for days_before, _t, _w, query, chips, chosen in events:
        if not last <= days_before <= first:
            continue
        for chip in set(chips):
            per_chip[(query, chip)][0] += 1
            per_source[CHIP_SOURCES.get(chip, "own words")][0] += 1
        if chosen:
            per_chip[(query, chosen)][1] += 1
            per_source[CHIP_SOURCES.get(chosen, "own words")][1] += 1
    return ({k: tuple(v) for k, v in per_chip.items()}, {k: tuple(v) for k, v in per_source.items()})


@pytest.fixture
def chip_replay(settings):
    settings.TIME_ZONE = ZONE
    store(REPLAY)
    store_chips(CHIP_REPLAY)
    services.rollup_analytics(days_back=2)
    return CHIP_REPLAY


@pytest.mark.parametrize(("first", "last"), [(2, 0), (2, 2), (1, 0)])
def test_chip_shown_and_chosen_by_chip_and_by_source_equal_a_hand_computation(chip_replay, first, last):
    per_chip, per_source = chips_by_hand(chip_replay, first, last)
    report = services.analytics_report(*period(first, last))
    assert {(c.query, c.chip): (c.shown, c.clicked) for c in report.chips} == per_chip
    assert {c.source: (c.shown, c.clicked) for c in report.chip_sources} == per_source
    assert [c.shown for c in report.chips] == sorted((c.shown for c in report.chips), reverse=True)
    totals = report.chip_totals
    assert (totals.shown, totals.clicked) == tuple(map(sum, zip(*per_source.values(), strict=True)))
    # The chips are counted apart: the typeahead's figures are those of its own lists.
    assert figures_of(report) == by_hand(REPLAY, first, last)


def test_the_chip_replay_exercises_what_it_should(chip_replay):
    per_chip, per_source = chips_by_hand(chip_replay, 2, 0)
    assert set(per_source) == {"generated", "catalog", "own words"}
    assert all(0 < chosen < shown for shown, chosen in [per_source["generated"], per_source["catalog"]])
    # The duplicate in alice's list counted once.
    assert per_chip[("running shoes", "running shoes men")][0] == 3


def test_the_page_shows_chip_click_through_per_chip_and_source_and_exports_it(client, merchandiser, chip_replay):
    client.force_login(merchandiser)
    start, end = period(2, 0)
    params = {"period": "custom", "start": start.isoformat(), "end": end.isoformat()}
    per_chip, per_source = chips_by_hand(chip_replay, 2, 0)
    response = client.get(PAGE, params)
    html = response.content.decode()
    section = html.split('id="refinement-chips"')[1].split('id="days"')[0]
    shown, chosen = per_source["generated"]
    assert "Generated by the model" in section
    assert f"<td class=\"num\">{shown}</td><td class=\"num\">{chosen}</td><td class=\"num\">{chosen / shown * 100:.1f}%</td>" \
        in section
    assert "Rewrite of the shopper&#x27;s query" in section or "Rewrite of the shopper's query" in section
    all_shown = sum(v[0] for v in per_source.values())
    all_chosen = sum(v[1] for v in per_source.values())
    assert f"{all_chosen} chosen of {all_shown} shown ({all_chosen / all_shown * 100:.1f}%)" in section

    review = reverse("admin:shop_suggestions_generatedrefinement_changelist") + "?q=running%20shoes%20men"
    assert review not in section  # the merchandiser may not review generated refinements
    grant(merchandiser, "change_generatedrefinement", "view_generatedrefinement")
    section = client.get(PAGE, params).content.decode().split('id="refinement-chips"')[1].split('id="days"')[0]
    generated_rows = sum(1 for _q, chip in per_chip if CHIP_SOURCES.get(chip) == "generated")
    assert f'href="{review}"' in section and section.count(">review</a>") == generated_rows  # generated chips only
    assert client.get(review).status_code == 200

    rows = _csv(client.get(csv_url("chips"), params))
    assert rows[0] == ["searched_query", "chip", "source", "times_shown", "times_chosen", "click_through"]
    assert {(r[0], r[1]): (int(r[3]), int(r[4])) for r in rows[1:]} == per_chip
    sources = _csv(client.get(csv_url("chip-sources"), params))
    assert {r[0]: (int(r[1]), int(r[2])) for r in sources[1:]} == per_source


def test_no_chips_says_so(client, merchandiser, replay):
    client.force_login(merchandiser)
    html = client.get(PAGE, {"period": "7"}).content.decode()
    assert html.count("No refinement chips were shown in this period.") == 2


def test_erasure_and_retention_reach_the_chip_rollup(chip_replay):
    from suggestions.models import AnalyticsChipDay

    services.erase_history(session_key="alice")
    per_chip, _ = chips_by_hand([e for e in chip_replay if e[2] != "alice"], 2, 0)
    report = services.analytics_report(*period(2, 0))
    assert {(c.query, c.chip): (c.shown, c.clicked) for c in report.chips} == per_chip

    old_day = timezone.localdate() - timedelta(days=app_settings.HISTORY_RETENTION_DAYS + 5)
    AnalyticsChipDay.objects.create(date=old_day, query="old secret", chip="old secret gift", shown=3)
    assert services.garbage_collect()["analyticschipday"] == 1
    assert not AnalyticsChipDay.objects.filter(query="old secret").exists()


# -- the charts ----------------------------------------------------------------------------------


def test_charts_escape_their_text_and_scale_to_the_largest_value():
    from suggestions import charts

    svg = charts.bar_chart([("<script>", 3), ("b", 7)], label='a "label"')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&quot;label&quot;" in svg
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]
    assert heights[1] > heights[0] and heights[0] / heights[1] == pytest.approx(3 / 7, rel=0.01)


def test_line_chart_breaks_where_there_is_nothing_to_measure():
    from suggestions import charts

    svg = charts.line_chart([("a", 0.1), ("b", 0.2), ("c", None), ("d", 0.3), ("e", 0.1)], label="rate")
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4


def test_a_rebuild_that_loses_a_race_starts_again(monkeypatch, settings):
    """Between its delete and its inserts, another rebuild of the day inserted
    the same rows: the unique constraint fails the first try, the second replaces them."""
    from django.db import IntegrityError

    from suggestions import analytics

    settings.TIME_ZONE = ZONE
    store(REPLAY)
    day = period(1, 1)[0]
    real, calls = analytics._rollup_day, []

    def racing(d):
        calls.append(d)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed: sugg_aqday_unique")
        return real(d)

    monkeypatch.setattr(analytics, "_rollup_day", racing)
    assert analytics.rollup_day(day).searches == by_hand(REPLAY, 1, 1)["searches"]
    assert calls == [day, day] and AnalyticsDay.objects.filter(date=day).count() == 1
