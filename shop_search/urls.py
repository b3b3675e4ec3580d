"""URLs of the demo shop: the storefront, the admin and the suggestions API."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    # First: the suggest endpoint is called on every keystroke, and URL resolution
    # tries the patterns in order.
    path("api/suggestions/", include("suggestions.api.urls")),
    path("", views.home, name="home"),
    path("search/", views.results, name="search"),
    path("product/<int:pk>/", views.product, name="product"),
    path("admin/", admin.site.urls),
]
