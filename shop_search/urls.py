"""URLs of the demo shop."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/suggestions/", include("suggestions.api.urls")),
    # Storefront home page: replaced by the storefront's view when it lands;
    # until then "/" shows the API documentation.
    path("", RedirectView.as_view(pattern_name="suggestions:docs", permanent=False), name="home"),
]
