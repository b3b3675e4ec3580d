"""History: recording through signals, import command, retention, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from suggestions import services
from suggestions.history import actor_hash
from suggestions.models import QueryDailyStat, SearchEvent, SuggestionClick

pytestmark = pytest.mark.django_db


def write_csv(tmp_path, text: str, name: str = "log.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_search_records_an_event_and_the_daily_aggregate():
    page = services.search("  Call of Duty ", session_key="abc")
    event = SearchEvent.objects.get()
    assert (event.query, event.normalized_query, event.results_count) == ("Call of Duty", "call of duty", page.total)
    assert event.actor_hash == actor_hash(session_key="abc") and "abc" not in event.actor_hash
    services.search("call of duty", session_key="xyz")
    stat = QueryDailyStat.objects.get(normalized_query="call of duty")
    assert (stat.searches, stat.zero_results) == (2, 2)  # empty index: zero results


def test_import_command_maps_columns_and_skips_bad_rows(tmp_path):
    path = write_csv(tmp_path, "visitor;term;when\nu1;Halo 3;2024-05-01 10:00:00\nu2;;2024-05-01\nu3;halo;yesterday\n")
    out = []
    call_command("suggestions_import_history", str(path), "--delimiter", ";", "--user-column", "visitor",
                 "--query-column", "term", "--time-column", "when", "--no-progress", stdout=_Collect(out))
    assert SearchEvent.objects.get().normalized_query == "halo 3"
    assert "Imported 1 searches" in out[0] and "1 with empty query" in out[0] and "1 with bad time" in out[0]


def test_import_command_time_format_option(tmp_path):
    path = write_csv(tmp_path, "user,query,time\nu1,portal,01/05/2024 10:00\n")
    call_command("suggestions_import_history", str(path), "--time-format", "%d/%m/%Y %H:%M", "--no-progress")
    assert SearchEvent.objects.get().created_at.month == 5


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("a,b,c\n1,2,3\n", [], "No user column found"),
        ("user,query,time\n", ["--query-column", "missing"], "Column 'missing'"),
        ("", [], "no header row"),
    ],
)
def test_import_command_errors_are_clear_and_store_nothing(tmp_path, content, args, message):
    path = write_csv(tmp_path, content)
    with pytest.raises(CommandError, match=message):
        call_command("suggestions_import_history", str(path), *args, "--no-progress")
    assert not SearchEvent.objects.exists()


def test_import_command_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("suggestions_import_history", str(tmp_path / "nope.csv"))


def test_garbage_collect_deletes_only_old_history(settings):
    settings.SUGGESTIONS_HISTORY_RETENTION_DAYS = 30
    old = SearchEvent.objects.create(query="old", normalized_query="old")
    SearchEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    SearchEvent.objects.create(query="new", normalized_query="new")
    QueryDailyStat.objects.create(date=timezone.localdate() - timedelta(days=40), normalized_query="old", searches=1)
    call_command("suggestions_garbage_collect")
    assert list(SearchEvent.objects.values_list("query", flat=True)) == ["new"]
    assert not QueryDailyStat.objects.exists()


def test_erase_history_removes_only_the_shoppers_own_events():
    user = get_user_model().objects.create_user("erase-me")
    services.search("mine", user=user)
    services.search("theirs", session_key="other")
    services.record_events([{"type": "suggestion_click", "request_id": "0" * 32, "prefix": "mi",
                             "suggestion": "mine", "position": 0}], user=user)
    assert [h.query for h in services.list_history(user=user)] == ["mine"]
    assert services.erase_history(user=user) == 2
    assert list(SearchEvent.objects.values_list("query", flat=True)) == ["theirs"]
    assert not SuggestionClick.objects.exists()
    assert services.list_history() == [] and services.erase_history() == 0


def test_deleting_a_user_deletes_their_history():
    user = get_user_model().objects.create_user("gone")
    services.search("something", user=user)
    user.delete()
    assert not SearchEvent.objects.exists()


class _Collect:
    def __init__(self, sink: list):
        self.sink = sink

    def write(self, text: str) -> None:
        if text.strip():
            self.sink.append(text)

    def flush(self) -> None:
        pass
