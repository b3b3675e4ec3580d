"""Admin of online experiments (imported by :mod:`suggestions.admin`).

Experiments are created as drafts, started and stopped by actions that call
:mod:`suggestions.services`; what they compare is fixed once started. The
results page shows, per version, the shoppers, lists shown, click-through and
MRR with 95% intervals, the difference, the sample-ratio check and plain
sentences; it needs the view permission, starting and stopping the change one.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .models import Experiment, ExperimentStatus, ModelVersion, ModelVersionStatus


class ExperimentForm(forms.ModelForm):
    kind = forms.ChoiceField(label=_("model"), help_text=Experiment._meta.get_field("kind").help_text)

    class Meta:
        model = Experiment
        fields = ["name", "kind", "method", "control", "treatment", "treatment_share"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(k, k.replace("_", " ")) for k in services.EXPERIMENT_KINDS]
        versions = ModelVersion.objects.exclude(status=ModelVersionStatus.REJECTED).filter(
            kind__in=services.EXPERIMENT_KINDS)
        for name in ("control", "treatment"):
            self.fields[name].queryset = versions
        if not self.instance.pk:
            self.fields["control"].initial = versions.filter(status=ModelVersionStatus.ACTIVE).first()


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    list_display = ["name", "method", "status", "control", "treatment", "started_at", "stopped_at", "results_link"]
    list_filter = ["status", "method", "kind"]
    search_fields = ["name"]
    actions = ["start", "stop"]
    results_template = "admin/shop_suggestions/experiment/results.html"

    def get_readonly_fields(self, request, obj=None):
        state = ["status", "prepared_at", "started_at", "stopped_at", "created_at", "results_link"]
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            # What a started experiment compares is part of its results.
            return ["name", "kind", "method", "control", "treatment", "treatment_share", *state]
        return state

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.status == ExperimentStatus.RUNNING:
            return False  # stop it first: shoppers are being served its arms
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("results"))
    def results_link(self, obj: Experiment) -> str:
        if obj.pk is None or obj.status == ExperimentStatus.DRAFT:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:shop_suggestions_experiment_results", args=[obj.pk]),
                           _("Results"))

    @admin.action(description=_("Start the selected draft experiments"), permissions=["change"])
    def start(self, request, queryset):
        started = 0
        for experiment in queryset:
            try:
                services.start_experiment(experiment)
                started += 1
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if started:
            self.message_user(request, ngettext(
                "Started %(n)d experiment; shoppers are assigned once the workers have prepared both versions.",
                "Started %(n)d experiments; shoppers are assigned once the workers have prepared both versions.",
                started) % {"n": started}, messages.SUCCESS)

    @admin.action(description=_("Stop the selected running experiments"), permissions=["change"])
    def stop(self, request, queryset):
        stopped = 0
        for experiment in queryset:
            try:
                services.stop_experiment(experiment)
                stopped += 1
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if stopped:
            self.message_user(request, ngettext(
                "Stopped %(n)d experiment; shoppers see the active version again.",
                "Stopped %(n)d experiments; shoppers see the active version again.", stopped) % {"n": stopped},
                messages.SUCCESS)

    def get_urls(self):
        custom = [path("<int:pk>/results/", self.admin_site.admin_view(self.results_view),
                       name="shop_suggestions_experiment_results")]
        return custom + super().get_urls()

    def results_view(self, request, pk: int):
        obj = self.get_object(request, str(pk))
        if obj is None or not self.has_view_permission(request, obj):
            raise PermissionDenied
        results = services.experiment_results(obj)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": obj,
            "title": _("Results of “%(name)s”") % {"name": obj.name}, "results": results,
        }
        return TemplateResponse(request, self.results_template, context)
