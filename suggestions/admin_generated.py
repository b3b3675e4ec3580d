"""Admin review queue of generated refinements (imported by :mod:`suggestions.admin`).

Pending refinements come first, each with the seed query it refines, the
generated text, how many products it returns and a few of them, its score and
the model version. Merchandisers approve or reject in bulk (actions) or one by
one (the status column, or the change form); every change goes through
:mod:`suggestions.services`, and the decisions feed the generator's next
training run (approved pairs weigh more, rejected ones never come back).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, Value, When
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .adapter import get_adapter
from .conf import app_settings
from .models import GeneratedRefinement, SuggestionSource, SuggestionStatus

#: Reasons a seed was chosen, in words.
SEED_REASONS = {
    "head": _("a top search"),
    "zero_results": _("a search without results"),
    "new_type": _("a new product type"),
    "thin_prefix": _("few completions"),
}


@admin.register(GeneratedRefinement)
class GeneratedRefinementAdmin(admin.ModelAdmin):
    list_display = ["text", "seed_query", "status", "results", "score", "seed_reason", "products_preview",
                    "model_version", "created_at"]
    list_display_links = ["text"]
    list_editable = ["status"]
    list_filter = ["status"]
    search_fields = ["text", "provenance__seed_query"]
    actions = ["approve", "reject"]
    fields = ["text", "status", "seed_query", "results", "score", "seed_reason", "products_preview",
              "model_version", "evidence", "created_at", "updated_at"]
    readonly_fields = ["text", "seed_query", "results", "score", "seed_reason", "products_preview", "model_version",
                       "evidence", "created_at", "updated_at"]
    list_per_page = 50

    def get_queryset(self, request):
        pending_first = Case(When(status=SuggestionStatus.PENDING, then=Value(0)), default=Value(1),
                             output_field=IntegerField())
        return (super().get_queryset(request).filter(source=SuggestionSource.GENERATED)
                .annotate(pending_first=pending_first).order_by("pending_first", "-weight", "text"))

    def has_add_permission(self, request) -> bool:
        return False

    def _prov(self, obj) -> dict:
        return obj.provenance or {}

    @admin.display(description=_("refines the search"))
    def seed_query(self, obj) -> str:
        return self._prov(obj).get("seed_query", "—")

    @admin.display(description=_("products found"))
    def results(self, obj):
        return self._prov(obj).get("results", "—")

    @admin.display(description=_("score"))
    def score(self, obj) -> str:
        value = self._prov(obj).get("score")
        return f"{value:.2f}" if isinstance(value, (int, float)) else "—"

    @admin.display(description=_("why this search"))
    def seed_reason(self, obj) -> str:
        return str(SEED_REASONS.get(self._prov(obj).get("seed_reason"), "—"))

    @admin.display(description=_("model version"))
    def model_version(self, obj) -> str:
        return self._prov(obj).get("model_version", "—")

    @admin.display(description=_("evidence"))
    def evidence(self, obj) -> str:
        ev = self._prov(obj).get("pair_evidence") or {}
        if ev.get("source") == "history":
            return _("%(n)d shoppers refined the seed into this search.") % {"n": ev.get("shoppers", 0)}
        if ev.get("source"):
            return _("A training pair from %(source)s.") % {"source": ev["source"]}
        return _("New: learnt from %(n)d training pairs of the seed.") % {"n": ev.get("training_pairs_of_seed", 0)}

    @admin.display(description=_("some of its products"))
    def products_preview(self, obj) -> str:
        ids = [str(i) for i in self._prov(obj).get("products", [])][:3]
        if not ids or not app_settings.ADAPTER:
            return "—"
        docs = get_adapter().get_documents(ids)
        return format_html_join("", "<div>{}</div>", ((d.title[:80],) for d in docs)) or "—"

    # One by one: the status column and the change form save through moderation.
    def save_model(self, request, obj, form, change) -> None:
        services.save_suggestion(obj, previous_status=form.initial.get("status") if change else None)

    @admin.action(description=_("Approve selected refinements (shown to shoppers at once)"), permissions=["change"])
    def approve(self, request, queryset) -> None:
        count = services.review_generated(queryset, SuggestionStatus.APPROVED)
        self.message_user(request, ngettext("%(count)d refinement approved.", "%(count)d refinements approved.",
                                            count) % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Reject selected refinements (never proposed again)"), permissions=["change"])
    def reject(self, request, queryset) -> None:
        count = services.review_generated(queryset, SuggestionStatus.REJECTED)
        self.message_user(request, ngettext("%(count)d refinement rejected.", "%(count)d refinements rejected.",
                                            count) % {"count": count}, messages.SUCCESS)
