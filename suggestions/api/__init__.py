"""HTTP API of the app (Django REST framework).

Include :mod:`suggestions.api.urls` in the host's URLconf, e.g.
``path("api/suggestions/", include("suggestions.api.urls"))``. The views are
thin: they validate input with the serializers in
:mod:`suggestions.api.serializers` and call :mod:`suggestions.services`.
"""
