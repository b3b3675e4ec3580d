"""URLs of the demo shop: the storefront, the admin and the suggestions API."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.results, name="search"),
    path("product/<int:pk>/", views.product, name="product"),
    path("admin/", admin.site.urls),
    path("api/suggestions/", include("suggestions.api.urls")),
]
