"""Django admin of the app.

The admin is thin: every moderation, review and model-version action calls
:mod:`suggestions.services` (which re-exports :mod:`suggestions.moderation`,
:mod:`suggestions.understanding` and :mod:`suggestions.learning`), so the admin,
the API and management commands moderate the same way.

* Logs (search history, impressions, clicks, daily statistics) are read-only:
  nobody adds or edits history; only superusers may delete it, for erasure
  requests.
* Every save or delete of suggestions and blocked terms announces
  ``suggestions_changed`` once the transaction commits.
"""

from __future__ import annotations

import re
from itertools import islice

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .conf import app_settings
from .models import (
    BlockedTerm,
    ModelVersion,
    ModelVersionStatus,
    ProductClick,
    QueryDailyStat,
    QueryLabel,
    QueryLabelSource,
    QueryUnderstanding,
    RetrainRun,
    SearchEvent,
    Suggestion,
    SuggestionClick,
    SuggestionImpression,
    SuggestionSource,
    SuggestionStatus,
)
from .text import normalize_query

# --- logs -------------------------------------------------------------------------


class ReadOnlyLogAdmin(admin.ModelAdmin):
    """Base of the log admins: viewable, never added or edited by hand."""

    date_hierarchy = "created_at"
    list_filter = ["created_at"]
    # Log tables grow large; an exact COUNT(*) on every page is not worth it.
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting history is for erasure requests only, not routine cleanup.
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(SearchEvent)
class SearchEventAdmin(ReadOnlyLogAdmin):
    list_display = ["query", "normalized_query", "results_count", "origin", "created_at"]
    list_filter = ["origin", "created_at"]
    search_fields = ["query", "normalized_query"]


@admin.register(SuggestionImpression)
class SuggestionImpressionAdmin(ReadOnlyLogAdmin):
    list_display = ["prefix", "shown", "created_at"]
    list_filter = ["surface"]  # the typeahead, or a results page's refinement chips
    search_fields = ["prefix"]

    @admin.display(description=_("suggestions shown"))
    def shown(self, obj: SuggestionImpression) -> str:
        return ", ".join(str(s) for s in (obj.suggestions or [])[:10])


@admin.register(SuggestionClick)
class SuggestionClickAdmin(ReadOnlyLogAdmin):
    list_display = ["prefix", "suggestion", "position", "created_at"]
    list_filter = ["surface"]
    search_fields = ["prefix", "suggestion"]


@admin.register(ProductClick)
class ProductClickAdmin(ReadOnlyLogAdmin):
    list_display = ["query", "content_type", "object_id", "position", "created_at"]
    list_select_related = ["content_type"]
    search_fields = ["query", "object_id"]


@admin.register(QueryDailyStat)
class QueryDailyStatAdmin(ReadOnlyLogAdmin):
    date_hierarchy = "date"
    list_display = [
        "date",
        "normalized_query",
        "searches",
        "zero_results",
        "suggestion_clicks",
        "product_clicks",
    ]
    list_filter = ["date"]
    search_fields = ["normalized_query"]


# --- suggestions ------------------------------------------------------------------


class PinnedFilter(admin.SimpleListFilter):
    title = _("pinned")
    parameter_name = "pinned"

    def lookups(self, request, model_admin):
        return [("yes", _("Pinned")), ("no", _("Not pinned"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(pinned_prefix="")
        if self.value() == "no":
            return queryset.filter(pinned_prefix="")
        return queryset


class SuggestionAdminForm(forms.ModelForm):
    class Meta:
        model = Suggestion
        fields = ["text", "source", "status", "weight", "pinned_prefix"]

    def clean_text(self) -> str:
        # Normalise before the uniqueness check: "Nike Air" and "nike air" are
        # the same suggestion once saved.
        text = normalize_query(self.cleaned_data.get("text", ""))
        if not text:
            raise forms.ValidationError(_("The text is empty once normalised."))
        return text

    def clean_pinned_prefix(self) -> str:
        return normalize_query(self.cleaned_data.get("pinned_prefix", ""))

    def clean(self):
        cleaned = super().clean()
        text, prefix = cleaned.get("text"), cleaned.get("pinned_prefix")
        if text and prefix and not text.startswith(prefix):
            self.add_error(
                "pinned_prefix",
                _("The suggestion does not start with this prefix."),
            )
        if prefix and cleaned.get("status") == SuggestionStatus.BLOCKED:
            self.add_error("pinned_prefix", _("A blocked suggestion cannot be pinned."))
        return cleaned


#: Catalog rules in words, for the suggestion's "how it was found".
_CATALOG_RULES = {
    "brand": _("a brand"),
    "product_type": _("a product type"),
    "brand_type": _("a brand and product type"),
    "title_phrase": _("the leading words of product titles"),
}


def describe_provenance(obj: Suggestion) -> str:
    """A sentence for merchandisers saying where a suggestion came from."""
    info = obj.provenance or {}
    if obj.source == SuggestionSource.CATALOG:
        rule = _CATALOG_RULES.get(info.get("rule"), _("a catalog phrase"))
        products = info.get("products")
        if products:
            return ngettext("From the catalog: %(rule)s shared by %(n)d product.",
                            "From the catalog: %(rule)s shared by %(n)d products.", products) % {"rule": rule, "n": products}
        return _("From the catalog: %(rule)s.") % {"rule": rule}
    if obj.source == SuggestionSource.HISTORY:
        users, searches = info.get("distinct_users", obj.distinct_users), info.get("searches", obj.searches)
        if info.get("rule") == "variant":
            return _("A spelling or word-order variant of a suggestion shoppers search, searched %(s)d times.") % {
                "s": searches or 0}
        return _("Searched %(s)d times by %(u)d different shoppers.") % {"s": searches or 0, "u": users or 0}
    if obj.source == SuggestionSource.MANUAL:
        return _("Added by a merchandiser.")
    if obj.source == SuggestionSource.GENERATED:
        seed = info.get("seed_query")
        return (_("Generated as a refinement of “%(seed)s”.") % {"seed": seed}) if seed else _("Generated by a model.")
    return "—"


class PinPrefixForm(forms.Form):
    prefix = forms.CharField(
        label=_("Prefix"),
        max_length=100,
        help_text=_(
            "The selected suggestions lead the list when the typed text starts with this "
            "prefix. Every selected suggestion must start with it."
        ),
    )


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    form = SuggestionAdminForm
    list_display = [
        "text",
        "source",
        "status",
        "weight_display",
        "distinct_users",
        "searches",
        "pinned_prefix",
        "updated_at",
    ]
    list_filter = ["source", "status", PinnedFilter]
    search_fields = ["text"]
    readonly_fields = ["searches", "distinct_users", "origin", "created_at", "updated_at"]
    actions = ["approve", "reject", "block", "pin_for_prefix", "unpin"]
    pin_prefix_template = "admin/shop_suggestions/suggestion/pin_prefix.html"
    #: What a merchandiser fills in to add a suggestion of their own (source: manual).
    add_fields = ["text", "status", "weight", "pinned_prefix"]

    @admin.display(description=_("weight"), ordering="weight")
    def weight_display(self, obj: Suggestion) -> str:
        return f"{obj.weight:.3g}"

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return ["text", "source", "status", "weight", "pinned_prefix", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_changeform_initial_data(self, request) -> dict:
        return {"status": SuggestionStatus.APPROVED, "weight": 1.0, **super().get_changeform_initial_data(request)}

    @admin.display(description=_("how it was found"))
    def origin(self, obj: Suggestion) -> str:
        return describe_provenance(obj)

    # Saves go through the model (text normalised in save()) and moderation.
    def save_model(self, request, obj, form, change) -> None:
        if not change and not obj.source:
            obj.source = SuggestionSource.MANUAL
        previous = form.initial.get("status") if change else None
        services.save_suggestion(obj, previous_status=previous)

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        services.notify_suggestions_changed(Suggestion)

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        services.notify_suggestions_changed(Suggestion)

    @admin.action(description=_("Approve selected suggestions"), permissions=["change"])
    def approve(self, request, queryset) -> None:
        count = services.set_suggestion_status(queryset, SuggestionStatus.APPROVED)
        self.message_user(
            request,
            ngettext("%(count)d suggestion approved.", "%(count)d suggestions approved.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Reject selected suggestions"), permissions=["change"])
    def reject(self, request, queryset) -> None:
        count = services.set_suggestion_status(queryset, SuggestionStatus.REJECTED)
        self.message_user(
            request,
            ngettext("%(count)d suggestion rejected.", "%(count)d suggestions rejected.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(
        description=_("Block selected suggestions (also in future builds)"),
        permissions=["change"],
    )
    def block(self, request, queryset) -> None:
        count = services.block_suggestions(queryset)
        self.message_user(
            request,
            ngettext("%(count)d suggestion blocked.", "%(count)d suggestions blocked.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Pin selected suggestions for a prefix…"), permissions=["change"])
    def pin_for_prefix(self, request, queryset):
        """Ask for the prefix on an intermediate page, then pin.

        The page re-posts the selection with the standard ``action`` and
        ``_selected_action`` fields plus ``apply``; only that second post pins.
        """
        form = PinPrefixForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                count = services.pin_suggestions(queryset, form.cleaned_data["prefix"])
            except ValueError as exc:
                # Show the page again so the moderator can correct the prefix.
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    ngettext(
                        "%(count)d suggestion pinned for “%(prefix)s”.",
                        "%(count)d suggestions pinned for “%(prefix)s”.",
                        count,
                    )
                    % {"count": count, "prefix": normalize_query(form.cleaned_data["prefix"])},
                    messages.SUCCESS,
                )
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Pin suggestions for a prefix"),
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action_name": "pin_for_prefix",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.pin_prefix_template, context)

    @admin.action(description=_("Unpin selected suggestions"), permissions=["change"])
    def unpin(self, request, queryset) -> None:
        count = services.unpin_suggestions(queryset)
        self.message_user(
            request,
            ngettext("%(count)d suggestion unpinned.", "%(count)d suggestions unpinned.", count)
            % {"count": count},
            messages.SUCCESS,
        )


# --- blocked terms ----------------------------------------------------------------

#: Stop counting matches in the preview after this many.
MATCH_PREVIEW_LIMIT = 100
#: Scan at most this many approved suggestions (highest weight first) for the preview.
MATCH_SCAN_LIMIT = 200_000
#: Example texts shown in the preview.
MATCH_EXAMPLES = 10


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    # The ModelForm's full_clean() calls BlockedTerm.clean(), which compiles
    # the term with RE2 exactly as serving does: what RE2 cannot run is a form
    # error, never a stored term.
    list_display = ["pattern", "kind", "note", "created_at"]
    list_filter = ["kind"]
    search_fields = ["pattern", "note"]
    readonly_fields = ["created_at", "matches"]
    fields = ["pattern", "kind", "note", "matches", "created_at"]

    @admin.display(description=_("approved suggestions it matches"))
    def matches(self, obj: BlockedTerm) -> str:
        if obj is None or obj.pk is None:
            return _("Shown once the term is saved.")
        try:
            obj.compile()
        except ValueError as exc:
            return _("Invalid pattern, skipped when serving: %(reason)s") % {"reason": exc}
        texts = (
            Suggestion.objects.filter(status=SuggestionStatus.APPROVED)
            .order_by("-weight")
            .values_list("text", flat=True)
        )
        # Matched in Python exactly as serving matches (RE2 on the match key);
        # the caps keep the change page fast on large suggestion tables.
        found = list(
            islice(
                (t for t in texts[:MATCH_SCAN_LIMIT].iterator(chunk_size=2000) if obj.matches(t)),
                MATCH_PREVIEW_LIMIT + 1,
            )
        )
        if not found:
            return _("None")
        count = f"{MATCH_PREVIEW_LIMIT}+" if len(found) > MATCH_PREVIEW_LIMIT else str(len(found))
        examples = ", ".join(found[:MATCH_EXAMPLES])
        return f"{count} ({_('e.g.')} {examples})"

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        services.notify_suggestions_changed(BlockedTerm)

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        services.notify_suggestions_changed(BlockedTerm)

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        services.notify_suggestions_changed(BlockedTerm)


# --- model versions -----------------------------------------------------------------


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["kind_label", "version", "status", "result", "created_at", "promoted_at"]
    list_filter = ["kind", "status"]
    search_fields = ["kind", "version", "notes", "decision"]
    actions = ["promote", "roll_back"]
    # Artefacts and evaluations come from training; status changes only through
    # the promote / roll back actions, which keep one active version per kind.
    _artefact_fields = [
        "what_it_does",
        "result",
        "decision",
        "changed_examples",
        "training_window_start",
        "training_window_end",
        "heldout_window_start",
        "heldout_window_end",
        "metrics",
        "baseline_metrics",
        "artefact_uri",
        "artefact_checksum",
    ]
    _state_fields = ["status", "created_at", "promoted_at"]
    confirm_template = "admin/shop_suggestions/modelversion/confirm.html"

    fieldsets = [
        (None, {"fields": ["kind", "version", "status", "what_it_does", "result", "decision",
                           "changed_examples"]}),
        (_("Data"), {"fields": ["training_window_start", "training_window_end", "heldout_window_start",
                                "heldout_window_end"]}),
        (_("For engineers"), {"classes": ["collapse"],
                              "fields": ["metrics", "baseline_metrics", "artefact_uri", "artefact_checksum",
                                         "notes", "created_at", "promoted_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return ["kind", "version", *self._artefact_fields, *self._state_fields]

    def has_add_permission(self, request) -> bool:
        # Versions come from the learning loop, with their artefact and evaluation.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting the served version would leave the kind without a model.
        if obj is not None and obj.status == ModelVersionStatus.ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("model"), ordering="kind")
    def kind_label(self, obj: ModelVersion) -> str:
        kind = services.KINDS.get(obj.kind)
        return f"{obj.kind}: {kind.description}" if kind and kind.description else obj.kind

    @admin.display(description=_("what it does"))
    def what_it_does(self, obj: ModelVersion) -> str:
        kind = services.KINDS.get(obj.kind)
        return str(kind.description) if kind and kind.description else "—"

    @admin.display(description=_("result on the held-out days"))
    def result(self, obj: ModelVersion) -> str:
        """The gate metric against what it was compared with, in plain words."""
        kind = services.KINDS.get(obj.kind)
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        if kind is None or metrics.get(kind.metric) is None:
            return self.metrics_summary(obj)
        ours = float(metrics[kind.metric])
        text = _("%(ours).3f, %(what)s") % {"ours": ours, "what": kind.metric_label}
        baseline = obj.baseline_metrics if isinstance(obj.baseline_metrics, dict) else {}
        if baseline.get(kind.metric) is not None:
            theirs = float(baseline[kind.metric])
            against = (_("version %(v)s") % {"v": baseline["version"]} if baseline.get("version")
                       else _("no model (popularity order)"))
            text += _("; %(diff)+.3f against %(against)s (%(theirs).3f) on the same held-out data") % {
                "diff": ours - theirs, "against": against, "theirs": theirs}
        return text

    @admin.display(description=_("examples whose answer changed"))
    def changed_examples(self, obj: ModelVersion) -> str:
        examples = (obj.metrics or {}).get("examples") if isinstance(obj.metrics, dict) else None
        if not examples:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e["input"], ", ".join(e["before"]), ", ".join(e["after"])) for e in examples))
        return format_html('<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody>'
                           "</table>", _("typed"), _("before (first three)"), _("with this version"), rows)

    @admin.display(description=_("metrics"))
    def metrics_summary(self, obj: ModelVersion, limit: int = 3) -> str:
        metrics = obj.metrics if isinstance(obj.metrics, dict) else {}
        parts = []
        # Sorted: PostgreSQL's jsonb does not keep the order keys were written in.
        for key, value in islice(sorted(metrics.items()), limit):
            if isinstance(value, float):
                value = f"{value:.3g}"
            elif isinstance(value, dict | list):
                value = "…"
            parts.append(f"{key}={value}")
        if len(metrics) > limit:
            parts.append("…")
        return ", ".join(parts) or "—"

    def _confirm(self, request, queryset, action: str, title: str, explanation: str, button: str):
        """The page that asks before a promotion or roll-back changes what shoppers see."""
        context = {
            **self.admin_site.each_context(request),
            "title": title, "explanation": explanation, "button": button, "opts": self.model._meta,
            "queryset": queryset, "action_name": action, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.confirm_template, context)

    @admin.action(description=_("Promote the selected version to active…"), permissions=["change"])
    def promote(self, request, queryset):
        versions = list(queryset[:2])
        if len(versions) != 1:
            self.message_user(request, _("Select exactly one version to promote."), messages.ERROR)
            return None
        target = versions[0]
        if "apply" not in request.POST:
            active = ModelVersion.objects.filter(kind=target.kind, status=ModelVersionStatus.ACTIVE).first()
            return self._confirm(
                request, queryset, "promote", _("Promote a model version"),
                _("%(version)s will serve every shopper as the %(kind)s model, replacing %(active)s. "
                  "Its result: %(result)s") % {
                    "version": target.version, "kind": target.kind,
                    "active": active.version if active else _("no model"), "result": self.result(target)},
                _("Yes, promote it"))
        version = services.promote(target)
        self.message_user(
            request,
            _("%(version)s is now the active %(kind)s model.")
            % {"version": version.version, "kind": version.kind},
            messages.SUCCESS,
        )
        return None

    @admin.action(
        description=_("Roll back the kinds of the selected versions…"), permissions=["change"]
    )
    def roll_back(self, request, queryset):
        kinds = sorted(set(queryset.values_list("kind", flat=True)))
        if "apply" not in request.POST:
            return self._confirm(
                request, queryset, "roll_back", _("Roll back models"),
                _("The version that was active before the current one will serve again for: %(kinds)s.")
                % {"kinds": ", ".join(kinds)}, _("Yes, roll back"))
        for kind in kinds:
            try:
                version = services.rollback(kind)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Rolled back %(kind)s to %(version)s.")
                    % {"kind": kind, "version": version.version},
                    messages.SUCCESS,
                )
        return None


@admin.register(RetrainRun)
class RetrainRunAdmin(ReadOnlyLogAdmin):
    date_hierarchy = "started_at"
    list_display = ["kind", "status", "started_at", "finished_at", "version_label", "last_line"]
    list_filter = ["kind", "status"]
    readonly_fields = ["kind", "status", "started_at", "finished_at", "version", "log", "error"]

    @admin.display(description=_("version"))
    def version_label(self, obj: RetrainRun) -> str:
        return obj.version.version if obj.version else "—"

    @admin.display(description=_("progress"))
    def last_line(self, obj: RetrainRun, width: int = 120) -> str:
        lines = (obj.error or obj.log or "").strip().splitlines()
        line = lines[-1] if lines else "—"
        return line if len(line) <= width else line[: width - 1] + "…"


# --- query understanding review -----------------------------------------------------

#: Colours of highlighted entity labels in the review list (others are grey).
_LABEL_COLOURS = {
    "brand": "#fde68a", "product_type": "#bfdbfe", "product_name": "#c7d2fe", "model_number": "#ddd6fe",
    "color": "#fbcfe8", "size": "#bbf7d0", "material": "#fed7aa", "price_range": "#a7f3d0",
    "quantity": "#e9d5ff", "audience": "#fecaca",
}


def highlight_entities(query: str, entities: list[dict]) -> str:
    """The query as HTML with each entity span marked and titled by its label."""
    parts, cursor = [], 0
    for ent in sorted(entities, key=lambda e: e["start"]):
        start, end = int(ent["start"]), int(ent["end"])
        if start < cursor or end > len(query):
            continue  # overlapping or stale span: show the text plainly
        parts.append(escape(query[cursor:start]))
        colour = _LABEL_COLOURS.get(ent["label"], "#e5e7eb")
        parts.append(format_html('<mark style="background:{};padding:0 2px;border-radius:3px" title="{}">{}'
                                 '<sub style="opacity:.7"> {}</sub></mark>',
                                 colour, ent["label"], query[start:end], ent["label"]))
        cursor = end
    parts.append(escape(query[cursor:]))
    return mark_safe("".join(str(p) for p in parts))  # noqa: S308 - every part is escaped above


def human_label(name: str) -> str:
    """``product_search`` → "Product search": intents and labels as merchandisers read them."""
    return name.replace("_", " ").capitalize()


class CorrectionForm(forms.Form):
    """A merchandiser's correction: the intent and one ``label: text`` line per entity."""

    intent = forms.ChoiceField(label=_("Intent"))
    entities = forms.CharField(
        label=_("Entities"), required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text=_("One per line, as “label: text”, e.g. “brand: hp”. The text must appear in the query."),
    )

    def __init__(self, *args, query: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.query = query
        self.fields["intent"].choices = [(i, human_label(i)) for i in app_settings.INTENTS]
        self.fields["entities"].help_text = format_html(
            "{}<br>{} {}",
            _("One per line, as “label: text”, e.g. “brand: hp”. The text must appear in the query."),
            _("Labels:"), ", ".join(app_settings.ENTITY_LABELS))

    def clean_entities(self) -> list[dict]:
        spans, errors, taken = [], [], []
        allowed = set(app_settings.ENTITY_LABELS)
        for n, line in enumerate(self.cleaned_data["entities"].splitlines(), start=1):
            if not line.strip():
                continue
            label, sep, text = line.partition(":")
            label, text = label.strip(), normalize_query(text)
            if not sep or not label or not text:
                errors.append(_("Line %(n)d: write “label: text”.") % {"n": n})
                continue
            if label not in allowed:
                errors.append(_("Line %(n)d: unknown label “%(label)s” (use one of: %(allowed)s).")
                              % {"n": n, "label": label, "allowed": ", ".join(app_settings.ENTITY_LABELS)})
                continue
            start = self._find(text, taken)
            if start < 0:
                errors.append(_("Line %(n)d: “%(text)s” is not in the query.") % {"n": n, "text": text})
                continue
            taken.append((start, start + len(text)))
            spans.append({"label": label, "start": start, "end": start + len(text), "text": text})
        if errors:
            raise forms.ValidationError(errors)
        return sorted(spans, key=lambda s: s["start"])

    def _find(self, text: str, taken: list[tuple[int, int]]) -> int:
        # Whole-word occurrence not overlapping an earlier line's span.
        for match in re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", self.query):
            if all(match.end() <= a or match.start() >= b for a, b in taken):
                return match.start()
        return -1


@admin.register(QueryUnderstanding)
class QueryUnderstandingAdmin(admin.ModelAdmin):
    """Review of how queries are understood: confirm in bulk, correct one by one.

    Confirmations and corrections become :class:`QueryLabel` rows, applied at
    once and used by the next training run.
    """

    list_display = ["normalized_query", "highlighted", "intent_label", "confidence_pct", "searches", "source", "updated_at"]
    list_filter = ["intent", "source", "language"]
    search_fields = ["normalized_query"]
    readonly_fields = ["normalized_query", "query", "language", "intent", "confidence", "source", "data", "updated_at"]
    actions = ["confirm"]
    list_per_page = 50

    def get_queryset(self, request):
        searches = (QueryDailyStat.objects.filter(normalized_query=OuterRef("normalized_query"))
                    .values("normalized_query").annotate(n=Sum("searches")).values("n"))
        # As ModelAdmin.get_queryset, but annotated before ordering by the annotation.
        qs = self.model._default_manager.get_queryset().annotate(searches=Coalesce(Subquery(searches), 0))
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def get_ordering(self, request):
        return ["-searches", "-updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description=_("Understanding"))
    def highlighted(self, obj: QueryUnderstanding) -> str:
        data = obj.data or {}
        return highlight_entities(data.get("query", obj.normalized_query), data.get("entities", []))

    @admin.display(description=_("Intent"), ordering="intent")
    def intent_label(self, obj) -> str:
        return human_label(obj.intent) if obj.intent else "—"

    @admin.display(description=_("Confidence"), ordering="confidence")
    def confidence_pct(self, obj: QueryUnderstanding) -> str:
        return f"{obj.confidence:.0%}"

    @admin.display(description=_("Searches"), ordering="searches")
    def searches(self, obj: QueryUnderstanding) -> int:
        return obj.searches

    @admin.action(description=_("Confirm the selected predictions"), permissions=["change"])
    def confirm(self, request, queryset) -> None:
        n = 0
        for obj in queryset:
            data = obj.data or {}
            services.save_label(
                query=data.get("query", obj.normalized_query), intent=obj.intent,
                entities=[{k: e[k] for k in ("label", "start", "end", "text")} for e in data.get("entities", [])],
                source=QueryLabelSource.CONFIRMED, user=request.user)
            n += 1
        self.message_user(request, ngettext("Confirmed %d understanding.", "Confirmed %d understandings.", n) % n,
                          messages.SUCCESS)

    def get_urls(self):
        custom = [path("<int:pk>/correct/", self.admin_site.admin_view(self.correct_view),
                       name="shop_suggestions_queryunderstanding_correct")]
        return custom + super().get_urls()

    @admin.display(description=_("Correct"))
    def correct_link(self, obj: QueryUnderstanding) -> str:
        return format_html('<a href="{}">{}</a>', reverse("admin:shop_suggestions_queryunderstanding_correct",
                                                          args=[obj.pk]), _("Correct…"))

    def get_list_display(self, request):
        return [*self.list_display, "correct_link"]

    def correct_view(self, request, pk: int):
        obj = self.get_object(request, str(pk))
        if obj is None or not self.has_change_permission(request, obj):
            raise PermissionDenied
        data = obj.data or {}
        query = data.get("query", obj.normalized_query)
        initial = {"intent": obj.intent,
                   "entities": "\n".join(f"{e['label']}: {e['text']}" for e in data.get("entities", []))}
        form = CorrectionForm(request.POST or None, query=query, initial=initial)
        if request.method == "POST" and form.is_valid():
            services.save_label(query=query, intent=form.cleaned_data["intent"],
                                entities=form.cleaned_data["entities"],
                                source=QueryLabelSource.CORRECTED, user=request.user)
            self.message_user(request, _("Saved the correction of “%(q)s”; the next training run uses it.")
                              % {"q": query}, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:shop_suggestions_queryunderstanding_changelist"))
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": _("Correct understanding"),
            "original": obj, "form": form, "highlighted": self.highlighted(obj),
            "intent_label": self.intent_label(obj),
        }
        return TemplateResponse(request, "admin/shop_suggestions/queryunderstanding/correct.html", context)


@admin.register(QueryLabel)
class QueryLabelAdmin(admin.ModelAdmin):
    """Reviewed labels (training data with a higher weight). Delete one to let the model decide again."""

    list_display = ["normalized_query", "labelled", "intent_label", "source", "reviewed_by", "updated_at"]
    list_filter = ["source", "intent"]
    search_fields = ["normalized_query"]
    readonly_fields = ["normalized_query", "query", "intent", "entities", "source", "reviewed_by", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    intent_label = QueryUnderstandingAdmin.intent_label

    @admin.display(description=_("Entities"))
    def labelled(self, obj: QueryLabel) -> str:
        return highlight_entities(obj.query, obj.entities or [])


# --- pages in their own modules: experiments, search analytics, synonyms ---
from . import admin_experiments, admin_synonyms, analytics_admin  # noqa: E402, F401  (each registers its admin)
from .admin_generated import GeneratedRefinementAdmin  # noqa: E402, F401  (the review queue of generated refinements)
