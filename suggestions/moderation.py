"""Moderation of suggestions and blocked terms.

The admin (and the moderation API) reach these functions through
:mod:`suggestions.services` and nothing below them, so that every way of
moderating behaves the same. Model versions are promoted and rolled back by
:mod:`suggestions.learning`.

Contracts:

* Suggestion functions take a queryset, change the matching rows with one
  ``UPDATE`` (``updated_at`` included, since ``QuerySet.update`` skips
  ``auto_now``) and return the number of suggestions changed.
* Every call that changes suggestions or blocked terms sends
  :data:`suggestions.signals.suggestions_changed` exactly once, with
  ``sender=Suggestion`` (or ``BlockedTerm`` for term-only changes), from
  ``transaction.on_commit``: receivers (cache invalidation, index refresh)
  never see a change that is later rolled back. A call that changes nothing
  sends nothing.
* Blocking is permanent across rebuilds: :func:`block_suggestions` records a
  blocked term for each text, so the next build cannot bring it back.
  Moving a suggestion out of ``blocked`` removes only the terms that
  :func:`block_suggestions` itself created; terms added by hand stay.
* Invalid requests (unknown status, empty or non-matching pin prefix) raise
  :class:`ValueError` with a message fit for a moderator, before anything is
  written.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .models import BlockedTerm, BlockedTermKind, Suggestion, SuggestionStatus
from .text import normalize_query

#: Note stored on the blocked terms created by :func:`block_suggestions`. Not
#: translated: it marks the term as ours, so un-blocking can find it again.
AUTO_BLOCK_NOTE = "Blocked from suggestion moderation"

#: Kind of the blocked terms created by :func:`block_suggestions`. A whole-word
#: match, not ``phrase``: a phrase matches anywhere, so blocking the suggestion
#: "bra" as a phrase would also hide "library" and "zebra print".
AUTO_BLOCK_KIND = BlockedTermKind.WORD

_PINNED_PREFIX_MAX_LENGTH = Suggestion._meta.get_field("pinned_prefix").max_length


def notify_suggestions_changed(sender: type = Suggestion) -> None:
    """Send ``suggestions_changed`` once the current transaction commits.

    Outside a transaction the signal is sent at once. Used by the functions
    below and by the admin's save/delete hooks.

    Args:
        sender: Class that announces the change.
    """
    transaction.on_commit(lambda: signals.suggestions_changed.send(sender=sender))


def set_suggestion_status(queryset: QuerySet[Suggestion], status: str) -> int:
    """Move suggestions to a moderation status.

    ``blocked`` is delegated to :func:`block_suggestions` so that blocking has
    the same effect however it is requested. Moving a blocked suggestion to
    another status deletes the blocked term :func:`block_suggestions` created
    for it; otherwise the next build would drop it again.

    Args:
        queryset: Suggestions to change.
        status: One of :class:`~suggestions.models.SuggestionStatus`.

    Returns:
        Number of suggestions whose status changed.

    Raises:
        ValueError: ``status`` is not a known status.
    """
    if status not in SuggestionStatus.values:
        raise ValueError(_("Unknown suggestion status: %(status)s.") % {"status": status})
    if status == SuggestionStatus.BLOCKED:
        return block_suggestions(queryset)
    with transaction.atomic():
        # Rows already in the target status are not counted as changed, so the
        # admin's "n suggestions approved" message tells the truth.
        queryset = queryset.exclude(status=status)
        unblocked = list(
            queryset.filter(status=SuggestionStatus.BLOCKED).values_list("text", flat=True)
        )
        count = queryset.update(status=status, updated_at=timezone.now())
        if unblocked:
            BlockedTerm.objects.filter(
                kind=AUTO_BLOCK_KIND, pattern__in=unblocked, note=AUTO_BLOCK_NOTE
            ).delete()
        if count:
            notify_suggestions_changed()
    return count


def block_suggestions(queryset: QuerySet[Suggestion]) -> int:
    """Block suggestions now and in every future build.

    Sets ``status=blocked`` and records a whole-word :class:`BlockedTerm` per
    text (idempotent: an existing identical term is reused).

    Args:
        queryset: Suggestions to block.

    Returns:
        Number of suggestions whose status changed to ``blocked``.
    """
    with transaction.atomic():
        texts = list(queryset.values_list("text", flat=True))
        if not texts:
            return 0
        created = 0
        for text in texts:
            _term, was_created = BlockedTerm.objects.get_or_create(
                pattern=text, kind=AUTO_BLOCK_KIND, defaults={"note": AUTO_BLOCK_NOTE}
            )
            created += was_created
        count = queryset.exclude(status=SuggestionStatus.BLOCKED).update(
            status=SuggestionStatus.BLOCKED, updated_at=timezone.now()
        )
        if count or created:
            notify_suggestions_changed()
    return count


def pin_suggestions(queryset: QuerySet[Suggestion], prefix: str) -> int:
    """Pin suggestions so they lead the list for a typed prefix, and approve them.

    Args:
        queryset: Suggestions to pin.
        prefix: Typed prefix; normalised with
            :func:`~suggestions.text.normalize_query`. Every selected text must
            start with it.

    Returns:
        Number of suggestions pinned.

    Raises:
        ValueError: The prefix is empty once normalised or too long, a
            suggestion does not start with it, or a suggestion is blocked
            (pinning would serve it again while its blocked term stays).
    """
    normalized = normalize_query(prefix)
    if not normalized:
        raise ValueError(_("The prefix is empty once normalised; enter letters or digits."))
    if len(normalized) > _PINNED_PREFIX_MAX_LENGTH:
        raise ValueError(
            _("The prefix is longer than %(max)d characters.") % {"max": _PINNED_PREFIX_MAX_LENGTH}
        )
    with transaction.atomic():
        # Lock the rows so the checks below hold for the update that follows.
        rows = list(queryset.select_for_update().values_list("pk", "text", "status"))
        mismatched = sorted(text for _pk, text, _status in rows if not text.startswith(normalized))
        if mismatched:
            raise ValueError(
                _("These suggestions do not start with “%(prefix)s”: %(texts)s.")
                % {"prefix": normalized, "texts": _format_texts(mismatched)}
            )
        blocked = sorted(text for _pk, text, status in rows if status == SuggestionStatus.BLOCKED)
        if blocked:
            raise ValueError(
                _("Blocked suggestions cannot be pinned; unblock them first: %(texts)s.")
                % {"texts": _format_texts(blocked)}
            )
        count = Suggestion.objects.filter(pk__in=[pk for pk, _text, _status in rows]).update(
            pinned_prefix=normalized, status=SuggestionStatus.APPROVED, updated_at=timezone.now()
        )
        if count:
            notify_suggestions_changed()
    return count


def unpin_suggestions(queryset: QuerySet[Suggestion]) -> int:
    """Remove the pinned prefix of suggestions (their status is kept).

    Args:
        queryset: Suggestions to unpin.

    Returns:
        Number of suggestions that were pinned and no longer are.
    """
    with transaction.atomic():
        count = queryset.exclude(pinned_prefix="").update(
            pinned_prefix="", updated_at=timezone.now()
        )
        if count:
            notify_suggestions_changed()
    return count


def save_suggestion(suggestion: Suggestion, previous_status: str | None = None) -> Suggestion:
    """Save a suggestion edited by hand, keeping blocked terms in line.

    ``Suggestion.save`` normalises the text and pinned prefix. When the status
    changed, the change goes through :func:`set_suggestion_status`, so blocking
    in the form records a blocked term and un-blocking removes it, exactly as
    the bulk actions do. Sends ``suggestions_changed`` once.

    Args:
        suggestion: The edited (possibly new) suggestion.
        previous_status: Its status before the edit; ``None`` for a new one.

    Returns:
        The saved suggestion, with its status as requested.
    """
    with transaction.atomic():
        new_status = suggestion.status
        if previous_status is None:
            # A new row has no blocked term yet: save it unblocked and let
            # set_suggestion_status do the blocking.
            status_changed = new_status == SuggestionStatus.BLOCKED
            if status_changed:
                suggestion.status = SuggestionStatus.PENDING
        else:
            # Save with the old status so set_suggestion_status sees the
            # transition (it removes the blocked term when un-blocking).
            status_changed = new_status != previous_status
            if status_changed:
                suggestion.status = previous_status
        suggestion.save()
        if status_changed:
            set_suggestion_status(Suggestion.objects.filter(pk=suggestion.pk), new_status)
            suggestion.status = new_status
        else:
            notify_suggestions_changed()
    return suggestion


def _format_texts(texts: Iterable[str], limit: int = 5) -> str:
    texts = list(texts)
    shown = ", ".join(f"“{t}”" for t in texts[:limit])
    if len(texts) > limit:
        shown += _(" and %(count)d more") % {"count": len(texts) - limit}
    return shown


#: Note stored on the blocked terms created from the analytics page.
ANALYTICS_BLOCK_NOTE = "Blocked from search analytics"


def block_text(text: str, *, note: str = ANALYTICS_BLOCK_NOTE) -> BlockedTerm:
    """Block a text (e.g. a searched query) from ever being suggested.

    Records a whole-word :class:`BlockedTerm` for the normalised text (an
    existing identical term is reused) and blocks the suggestion of that text
    if there is one. Sends ``suggestions_changed`` once.

    Raises:
        ValueError: The text is empty once normalised.
    """
    normalized = normalize_query(text)
    if not normalized:
        raise ValueError(_("The text is empty once normalised."))
    with transaction.atomic():
        block_suggestions(Suggestion.objects.filter(text=normalized))
        # block_suggestions created (and announced) the term when the text was a suggestion.
        term, created = BlockedTerm.objects.get_or_create(
            pattern=normalized, kind=AUTO_BLOCK_KIND, defaults={"note": note})
        if created:
            notify_suggestions_changed(BlockedTerm)
    return term
