"""The admin's search analytics page, for merchandisers.

Registered as the admin of :class:`~suggestions.models.AnalyticsDay`, so it
sits with the app's other pages and is opened by whoever holds the
``shop_suggestions.view_analyticsday`` permission (``Can view search
analytics``). It reads only the rollups (:mod:`suggestions.analytics`, through
:mod:`suggestions.services`) and never the raw events.

* Period: the last 7, 30 or 90 days, or custom dates; bad dates get the page
  back with HTTP 400 and a message that says what to fix.
* Charts are inline SVG drawn on the server (:mod:`suggestions.charts`).
* Every table can be downloaded as CSV for the same period. Cells that a
  spreadsheet would run as a formula (a query typed as ``=cmd|…``) are
  prefixed with ``'``.
* Rows of queries without results carry actions: add a suggestion (needs
  ``add_suggestion``), block the text (needs ``add_blockedterm``), add a
  synonym (the synonym form with the query filled in; needs ``add_synonym``),
  and review how the query is understood.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import charts, services
from .models import AnalyticsDay

#: Longest custom period, in days.
MAX_PERIOD_DAYS = 731
#: Rows of the top and zero-result tables on the page, and in their CSV files.
PAGE_ROWS, CSV_ROWS = 20, 10_000
PRESETS = {"7": 7, "30": 30, "90": 90}


class PeriodForm(forms.Form):
    """The period of the page: a preset, or custom first and last days."""

    period = forms.ChoiceField(
        label=gettext_lazy("Period"), required=False,
        choices=[("7", gettext_lazy("Last 7 days")), ("30", gettext_lazy("Last 30 days")),
                 ("90", gettext_lazy("Last 90 days")), ("custom", gettext_lazy("Custom dates"))])
    start = forms.DateField(label=gettext_lazy("From"), required=False, input_formats=["%Y-%m-%d"],
                            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                            error_messages={"invalid": gettext_lazy("Enter the first day as YYYY-MM-DD.")})
    end = forms.DateField(label=gettext_lazy("To"), required=False, input_formats=["%Y-%m-%d"],
                          widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                          error_messages={"invalid": gettext_lazy("Enter the last day as YYYY-MM-DD.")})

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        period = cleaned.get("period") or ("custom" if start or end else "30")
        cleaned["period"] = period
        if period != "custom":
            cleaned["end"] = timezone.localdate()
            cleaned["start"] = cleaned["end"] - timedelta(days=PRESETS[period] - 1)
            return cleaned
        if not start or not end:
            raise forms.ValidationError(_("For custom dates, enter both the first and the last day."))
        if start > end:
            raise forms.ValidationError(_("The first day (%(start)s) is after the last day (%(end)s).")
                                        % {"start": start, "end": end})
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise forms.ValidationError(_("Choose at most %(n)d days.") % {"n": MAX_PERIOD_DAYS})
        return cleaned

    def query_string(self) -> str:
        c = self.cleaned_data
        if c["period"] == "custom":
            return urlencode({"period": "custom", "start": c["start"].isoformat(), "end": c["end"].isoformat()})
        return urlencode({"period": c["period"]})


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _csv_safe(value) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def csv_tables(report) -> dict[str, tuple[list[str], list[list]]]:
    """Header and rows of each downloadable table."""
    queries_header = ["query", "searches", "zero_result_searches", "zero_result_rate", "searches_from_suggestions",
                      "result_clicks", "result_clicks_per_search"]

    def query_rows(rows):
        return [[q.query, q.searches, q.zero_result_searches, _rate(q.zero_result_rate), q.suggestion_searches,
                 q.product_clicks, _rate(q.clicks_per_search)] for q in rows]

    return {
        "days": (["day", "searches", "zero_result_searches", "zero_result_rate", "searches_from_suggestions",
                  "acceptance_rate", "suggestion_lists_shown", "suggestions_chosen", "suggestion_click_through",
                  "keystrokes_saved", "keystrokes_saved_share", "result_clicks"],
                 [[d.day.isoformat(), d.searches, d.zero_result_searches, _rate(d.zero_result_rate),
                   d.suggestion_searches, _rate(d.acceptance_rate), d.impressions, d.suggestion_clicks,
                   _rate(d.click_through), d.keystrokes_saved, _rate(d.keystrokes_saved_share), d.product_clicks]
                  for d in report.days]),
        "top-queries": (queries_header, query_rows(report.top_queries)),
        "zero-result-queries": (queries_header, query_rows(report.zero_result_queries)),
        "positions": (["position", "lists_shown_with_this_position", "suggestions_chosen", "click_through"],
                      [[p.position + 1, p.impressions, p.clicks, _rate(p.click_through)] for p in report.positions]),
    }


@admin.register(AnalyticsDay)
class AnalyticsAdmin(admin.ModelAdmin):
    """The analytics page in place of a change list (the rollups are not edited by hand)."""

    template = "admin/shop_suggestions/analytics.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("", view(self.analytics_view), name="shop_suggestions_analyticsday_changelist"),
            path("csv/<slug:table>/", view(self.csv_view), name="shop_suggestions_analytics_csv"),
            path("act/", view(self.act_view), name="shop_suggestions_analytics_act"),
        ]

    def _check(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def analytics_view(self, request):
        self._check(request)
        form = PeriodForm(request.GET or {"period": "30"})
        valid = form.is_valid()
        data = form.cleaned_data if valid else {}
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": _("Search analytics"), "form": form,
                   "presets": [(value, name) for value, name in form.fields["period"].choices if value in PRESETS],
                   "current_period": data.get("period") or request.GET.get("period", ""),
                   "start_value": data["start"].isoformat() if data.get("start") else request.GET.get("start", ""),
                   "end_value": data["end"].isoformat() if data.get("end") else request.GET.get("end", "")}
        if not valid:
            return TemplateResponse(request, self.template, context, status=400)
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        report = services.analytics_report(start, end, limit=PAGE_ROWS)
        user = request.user
        day_label = [date_format(d.day, "M j") for d in report.days]
        context.update({
            "report": report, "totals": report.totals, "query_string": form.query_string(),
            "period_label": _("%(start)s to %(end)s") % {"start": date_format(start), "end": date_format(end)},
            "figures": self._figures(report.totals),
            "positions": [(p.position + 1, p.impressions, p.clicks, percent(p.click_through)) for p in report.positions],
            "searches_chart": charts.bar_chart(
                list(zip(day_label, [d.searches for d in report.days], strict=True)),
                label=_("Searches per day")),
            "zero_chart": charts.line_chart(
                list(zip(day_label, [d.zero_result_rate for d in report.days], strict=True)),
                label=_("Share of searches with no results, per day")),
            "position_chart": charts.bar_chart(
                [(str(p.position + 1), p.click_through or 0.0) for p in report.positions],
                label=_("Click-through by position"), fmt=charts.percent,
                tooltip=lambda x, v: _("position %(p)s: %(v)s") % {"p": x, "v": f"{v:.1%}"}),
            "can_suggest": user.has_perm("shop_suggestions.add_suggestion"),
            "can_block": user.has_perm("shop_suggestions.add_blockedterm"),
            "can_review": user.has_perm("shop_suggestions.view_queryunderstanding"),
            "understanding_url": reverse("admin:shop_suggestions_queryunderstanding_changelist"),
            "can_add_synonym": user.has_perm("shop_suggestions.add_synonym"),
            "synonym_add_url": reverse("admin:shop_suggestions_synonym_add"),
            "csv_urls": {name.replace("-", "_"): reverse("admin:shop_suggestions_analytics_csv", args=[name])
                         for name in ("days", "top-queries", "zero-result-queries", "positions")},
            "act_url": reverse("admin:shop_suggestions_analytics_act"),
        })
        return TemplateResponse(request, self.template, context)

    @staticmethod
    def _figures(t) -> list[tuple[str, str, str]]:
        """(name, value, what it means) of the headline figures."""
        return [
            (_("Searches"), f"{t.searches:,}", _("Searches submitted in the period.")),
            (_("Zero-result rate"), percent(t.zero_result_rate),
             _("Share of searches that found no product (%(n)s searches).") % {"n": f"{t.zero_result_searches:,}"}),
            (_("Suggestion click-through"), percent(t.click_through),
             _("Suggestions chosen (%(c)s) per suggestion list shown (%(i)s). Lists are shown as shoppers type, "
               "so several lists lead to one choice.") % {"c": f"{t.suggestion_clicks:,}", "i": f"{t.impressions:,}"}),
            (_("Acceptance rate"), percent(t.acceptance_rate),
             _("Share of searches that started from a clicked suggestion (%(n)s searches).")
             % {"n": f"{t.suggestion_searches:,}"}),
            (_("Keystrokes saved"), f"{t.keystrokes_saved:,}",
             _("Characters shoppers did not have to type: the length of each chosen suggestion minus what they "
               "had typed, added up. That is %(share)s of the characters of the chosen suggestions.")
             % {"share": percent(t.keystrokes_saved_share)}),
            (_("Result clicks"), f"{t.product_clicks:,}", _("Products clicked on result pages.")),
        ]

    def csv_view(self, request, table: str):
        self._check(request)
        form = PeriodForm(request.GET or {"period": "30"})
        if not form.is_valid():
            errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
            return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        tables = csv_tables(services.analytics_report(start, end, limit=CSV_ROWS))
        if table not in tables:
            raise Http404(_("No table named %(t)s.") % {"t": table})
        header, rows = tables[table]
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="search-{table}-{start}-{end}.csv"'
        writer = csv.writer(response)
        writer.writerow(header)
        writer.writerows([_csv_safe(v) for v in row] for row in rows)
        return response

    def act_view(self, request):
        """Add a suggestion for, or block, a query from the zero-result table (POST)."""
        self._check(request)
        if request.method != "POST":
            return HttpResponse(_("Use the buttons of the analytics page."), status=405,
                                content_type="text/plain; charset=utf-8")
        action, text = request.POST.get("action"), request.POST.get("text", "")
        back = reverse("admin:shop_suggestions_analyticsday_changelist")
        period = PeriodForm(request.POST)
        if period.is_valid():
            back += "?" + period.query_string()
        if action == "suggest":
            if not request.user.has_perm("shop_suggestions.add_suggestion"):
                raise PermissionDenied
            try:
                suggestion = services.add_manual_suggestion(text)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, _("“%(t)s” is now an approved suggestion.") % {"t": suggestion.text},
                                  messages.SUCCESS)
        elif action == "block":
            if not request.user.has_perm("shop_suggestions.add_blockedterm"):
                raise PermissionDenied
            try:
                term = services.block_text(text)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, _("“%(t)s” is blocked: no suggestion containing it will be shown.")
                                  % {"t": term.pattern}, messages.SUCCESS)
        else:
            return HttpResponse(_("Unknown action."), status=400, content_type="text/plain; charset=utf-8")
        return HttpResponseRedirect(back)
