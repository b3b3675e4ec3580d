"""Admin of synonyms (imported by :mod:`suggestions.admin`).

Mined pairs arrive pending with the evidence that proposed them; a
merchandiser approves or rejects them in bulk. Only approved pairs change
searches, at once and in every web process. Every change goes through
:mod:`suggestions.services`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import Synonym, SynonymStatus
from .text import normalize_query


class SynonymForm(forms.ModelForm):
    class Meta:
        model = Synonym
        fields = ["term", "synonym", "status"]

    def clean(self):
        data = super().clean()
        a, b = normalize_query(data.get("term") or ""), normalize_query(data.get("synonym") or "")
        if not a or not b or a == b:
            raise forms.ValidationError(_("Enter two different terms, e.g. “laptop” and “notebook”."))
        return data


@admin.register(Synonym)
class SynonymAdmin(admin.ModelAdmin):
    form = SynonymForm
    list_display = ["term", "synonym", "status", "source", "score", "evidence_summary", "updated_at"]
    list_filter = ["status", "source"]
    search_fields = ["term", "synonym"]
    readonly_fields = ["source", "score", "evidence_summary", "decided_at", "created_at", "updated_at"]
    actions = ["approve", "reject"]
    fieldsets = [
        (None, {
            "fields": ["term", "synonym", "status"],
            "description": _("A search for either term also finds the products that match the other one, "
                             "once the pair is approved. Pairs found in shoppers' clicks wait here as "
                             "pending until you approve or reject them."),
        }),
        (_("Why it was proposed"), {"fields": ["source", "score", "evidence_summary", "decided_at",
                                               "created_at", "updated_at"]}),
    ]

    @admin.display(description=_("evidence"))
    def evidence_summary(self, obj: Synonym) -> str:
        ev = obj.evidence or {}
        if ev.get("rule") != "coclick":
            return "—"
        shoppers = ev.get("clicking_shoppers", {})
        return _("Shoppers searching “%(a)s” and “%(b)s” clicked %(n)d of the same products "
                "(overlap %(j).0f%%; %(sa)d and %(sb)d shoppers clicked).") % {
                "a": ev["queries"][0], "b": ev["queries"][1], "n": ev.get("shared_products", 0),
                "j": 100 * ev.get("jaccard", 0.0), "sa": shoppers.get(ev["queries"][0], 0),
                "sb": shoppers.get(ev["queries"][1], 0)}

    def save_model(self, request, obj, form, change) -> None:
        services.save_synonym(obj)

    def delete_model(self, request, obj) -> None:
        services.delete_synonyms(Synonym.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset) -> None:
        services.delete_synonyms(queryset)

    @admin.action(description=_("Approve selected synonyms (searches use them at once)"), permissions=["change"])
    def approve(self, request, queryset) -> None:
        count = services.set_synonym_status(queryset, SynonymStatus.APPROVED)
        self.message_user(request, ngettext("%(count)d synonym approved.", "%(count)d synonyms approved.", count)
                          % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Reject selected synonyms (mining will not propose them again)"),
                  permissions=["change"])
    def reject(self, request, queryset) -> None:
        count = services.set_synonym_status(queryset, SynonymStatus.REJECTED)
        self.message_user(request, ngettext("%(count)d synonym rejected.", "%(count)d synonyms rejected.", count)
                          % {"count": count}, messages.SUCCESS)
