"""Tests of suggestions.moderation: statuses, blocking, pinning, signals."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from suggestions import moderation, signals
from suggestions.models import BlockedTerm, Suggestion, SuggestionStatus
from tests.factories_suggestions import BlockedTermFactory, SuggestionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def changed_signals():
    """Record every ``suggestions_changed`` sent during the test."""
    received: list[type] = []

    def receiver(sender, **kwargs):
        received.append(sender)

    signals.suggestions_changed.connect(receiver, dispatch_uid="test-moderation-counter")
    yield received
    signals.suggestions_changed.disconnect(dispatch_uid="test-moderation-counter")


def _statuses(*suggestions: Suggestion) -> list[str]:
    return [Suggestion.objects.get(pk=s.pk).status for s in suggestions]


# --- statuses ---------------------------------------------------------------------


def test_set_status_updates_rows_and_updated_at():
    old = timezone.now() - datetime.timedelta(days=3)
    a = SuggestionFactory(status="pending")
    b = SuggestionFactory(status="pending")
    untouched = SuggestionFactory(status="pending")
    Suggestion.objects.filter(pk__in=[a.pk, b.pk]).update(updated_at=old)

    count = moderation.set_suggestion_status(
        Suggestion.objects.filter(pk__in=[a.pk, b.pk]), SuggestionStatus.REJECTED
    )

    assert count == 2
    assert _statuses(a, b, untouched) == ["rejected", "rejected", "pending"]
    assert Suggestion.objects.get(pk=a.pk).updated_at > old


def test_set_status_counts_only_changed_rows():
    a = SuggestionFactory(status="approved")
    b = SuggestionFactory(status="pending")
    count = moderation.set_suggestion_status(Suggestion.objects.all(), SuggestionStatus.APPROVED)
    assert count == 1
    assert _statuses(a, b) == ["approved", "approved"]


def test_set_status_rejects_unknown_status():
    s = SuggestionFactory(status="pending")
    with pytest.raises(ValueError, match="Unknown suggestion status"):
        moderation.set_suggestion_status(Suggestion.objects.all(), "deleted")
    assert _statuses(s) == ["pending"]


def test_set_status_blocked_records_a_blocked_term():
    s = SuggestionFactory(text="cheap knockoffs")
    moderation.set_suggestion_status(Suggestion.objects.all(), SuggestionStatus.BLOCKED)
    assert _statuses(s) == ["blocked"]
    assert BlockedTerm.objects.filter(pattern="cheap knockoffs").exists()


# --- blocking ---------------------------------------------------------------------


def test_block_sets_status_and_adds_terms_idempotently():
    a = SuggestionFactory(text="bad word")
    b = SuggestionFactory(text="other bad")
    keep = SuggestionFactory(text="fine")

    qs = Suggestion.objects.filter(pk__in=[a.pk, b.pk])
    assert moderation.block_suggestions(qs) == 2
    assert moderation.block_suggestions(qs) == 0  # already blocked, no duplicate terms

    assert _statuses(a, b, keep) == ["blocked", "blocked", "approved"]
    terms = BlockedTerm.objects.order_by("pattern")
    assert [t.pattern for t in terms] == ["bad word", "other bad"]
    assert {t.kind for t in terms} == {moderation.AUTO_BLOCK_KIND}


def test_block_reuses_an_existing_identical_term():
    BlockedTermFactory(pattern="bad word", kind=moderation.AUTO_BLOCK_KIND, note="by hand")
    SuggestionFactory(text="bad word")
    moderation.block_suggestions(Suggestion.objects.all())
    term = BlockedTerm.objects.get()
    assert term.note == "by hand"


def test_block_term_matches_whole_words_only():
    s = SuggestionFactory(text="bra")
    moderation.block_suggestions(Suggestion.objects.filter(pk=s.pk))
    term = BlockedTerm.objects.get()
    assert term.matches("bra")
    assert term.matches("sports bra sale")
    # A blocked short suggestion must not hide unrelated words containing it.
    assert not term.matches("library")


def test_unblocking_removes_only_the_auto_created_term():
    s = SuggestionFactory(text="bad word")
    BlockedTermFactory(pattern="other", kind="word", note="by hand")
    moderation.block_suggestions(Suggestion.objects.all())
    assert BlockedTerm.objects.count() == 2

    assert (
        moderation.set_suggestion_status(Suggestion.objects.all(), SuggestionStatus.APPROVED) == 1
    )
    assert _statuses(s) == ["approved"]
    assert list(BlockedTerm.objects.values_list("pattern", flat=True)) == ["other"]


def test_unblocking_keeps_a_hand_made_term_with_the_same_text():
    BlockedTermFactory(pattern="bad word", kind=moderation.AUTO_BLOCK_KIND, note="legal asked")
    SuggestionFactory(text="bad word", status="blocked")
    moderation.set_suggestion_status(Suggestion.objects.all(), SuggestionStatus.APPROVED)
    assert BlockedTerm.objects.filter(pattern="bad word").exists()


# --- pinning ----------------------------------------------------------------------


def test_pin_normalises_prefix_and_approves():
    a = SuggestionFactory(text="nike air", status="pending")
    b = SuggestionFactory(text="nike air max", status="rejected")
    count = moderation.pin_suggestions(Suggestion.objects.all(), "  NIKE ")
    assert count == 2
    rows = list(
        Suggestion.objects.filter(pk__in=[a.pk, b.pk]).values_list("pinned_prefix", "status")
    )
    assert rows == [("nike", "approved"), ("nike", "approved")]


@pytest.mark.parametrize("prefix", ["", "   ", "!!?"])
def test_pin_rejects_empty_prefix(prefix):
    s = SuggestionFactory(text="nike air")
    with pytest.raises(ValueError, match="empty"):
        moderation.pin_suggestions(Suggestion.objects.all(), prefix)
    assert Suggestion.objects.get(pk=s.pk).pinned_prefix == ""


def test_pin_rejects_non_matching_prefix_and_changes_nothing():
    ok = SuggestionFactory(text="adidas", status="pending")
    bad = SuggestionFactory(text="nike air", status="pending")
    with pytest.raises(ValueError, match="nike air"):
        moderation.pin_suggestions(Suggestion.objects.all(), "ad")
    rows = list(
        Suggestion.objects.filter(pk__in=[ok.pk, bad.pk])
        .order_by("text")
        .values_list("pinned_prefix", "status")
    )
    assert rows == [("", "pending"), ("", "pending")]


def test_pin_refuses_blocked_suggestions():
    SuggestionFactory(text="nike fake", status="blocked")
    with pytest.raises(ValueError, match="Blocked"):
        moderation.pin_suggestions(Suggestion.objects.all(), "nike")
    assert Suggestion.objects.get().status == "blocked"


def test_unpin_clears_prefix_and_keeps_status():
    a = SuggestionFactory(text="nike air", pinned_prefix="nike", status="approved")
    b = SuggestionFactory(text="puma", status="pending")
    assert moderation.unpin_suggestions(Suggestion.objects.all()) == 1
    rows = list(
        Suggestion.objects.filter(pk__in=[a.pk, b.pk])
        .order_by("text")
        .values_list("pinned_prefix", "status")
    )
    assert rows == [("", "approved"), ("", "pending")]


# --- save_suggestion --------------------------------------------------------------


def test_save_suggestion_blocking_in_form_records_term():
    s = SuggestionFactory(text="nike fake")
    s.status = SuggestionStatus.BLOCKED
    moderation.save_suggestion(s, previous_status=SuggestionStatus.APPROVED)
    assert _statuses(s) == ["blocked"]
    assert BlockedTerm.objects.filter(pattern="nike fake").exists()


def test_save_suggestion_new_blocked_records_term():
    s = Suggestion(text="  Fake  Nike ", source="manual", status=SuggestionStatus.BLOCKED)
    moderation.save_suggestion(s)
    assert Suggestion.objects.get(pk=s.pk).text == "fake nike"
    assert _statuses(s) == ["blocked"]
    assert BlockedTerm.objects.filter(pattern="fake nike").exists()


# --- signals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda qs: moderation.set_suggestion_status(qs, SuggestionStatus.REJECTED),
        lambda qs: moderation.block_suggestions(qs),
        lambda qs: moderation.pin_suggestions(qs, "nike"),
        lambda qs: moderation.unpin_suggestions(qs),
    ],
    ids=["status", "block", "pin", "unpin"],
)
def test_each_call_sends_one_signal_after_commit(
    call, changed_signals, django_capture_on_commit_callbacks
):
    SuggestionFactory(text="nike air", pinned_prefix="ni")
    SuggestionFactory(text="nike air max", pinned_prefix="ni")
    with django_capture_on_commit_callbacks(execute=True):
        assert call(Suggestion.objects.all()) == 2
        # Nothing is announced before the transaction commits.
        assert changed_signals == []
    assert changed_signals == [Suggestion]


def test_no_signal_when_nothing_changes(changed_signals, django_capture_on_commit_callbacks):
    SuggestionFactory(status="rejected")
    with django_capture_on_commit_callbacks(execute=True):
        assert moderation.set_suggestion_status(Suggestion.objects.all(), "rejected") == 0
        assert moderation.unpin_suggestions(Suggestion.objects.all()) == 0
        assert moderation.block_suggestions(Suggestion.objects.none()) == 0
    assert changed_signals == []


def test_failed_pin_sends_no_signal(changed_signals, django_capture_on_commit_callbacks):
    SuggestionFactory(text="nike air")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ValueError):
            moderation.pin_suggestions(Suggestion.objects.all(), "ad")
    assert callbacks == []
    assert changed_signals == []
