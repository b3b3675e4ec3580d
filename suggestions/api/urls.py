"""URLs of the API. Include under any prefix, e.g.
``path("api/suggestions/", include("suggestions.api.urls"))``; names live in
the ``suggestions`` namespace (``suggestions:suggest`` …).

``schema/`` serves the OpenAPI 3 document; ``docs/`` renders it with Swagger
UI. Swagger UI's JavaScript and CSS are loaded from a CDN by default
(drf-spectacular's ``SWAGGER_UI_DIST``); for an offline host, install
``drf-spectacular-sidecar``, add ``drf_spectacular_sidecar`` to
``INSTALLED_APPS`` and set ``SWAGGER_UI_DIST``/``SWAGGER_UI_FAVICON_HREF`` to
``"SIDECAR"`` in ``SPECTACULAR_SETTINGS``.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from . import views

app_name = "suggestions"

urlpatterns = [
    path("suggest/", views.SuggestView.as_view(), name="suggest"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("events/", views.EventsView.as_view(), name="events"),
    path("history/", views.HistoryView.as_view(), name="history"),
    path("trending/", views.TrendingView.as_view(), name="trending"),
    path("understand/", views.UnderstandView.as_view(), name="understand"),
    # Prometheus scrape: the metrics token or a staff login (see views.metrics).
    path("metrics/", views.metrics, name="metrics"),
    # The host's whole URLconf is introspected so that paths carry the prefix
    # the host mounted the app under (only DRF views appear in the schema).
    path("schema/", views.SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="suggestions:schema"), name="docs"),
]
