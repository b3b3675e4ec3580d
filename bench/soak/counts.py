"""``python -m bench.soak.counts``: rows of the recorded events, as one JSON object.

Run with the ``DJANGO_SETTINGS_MODULE`` (and database settings) of the server
under test; prints ``{"SearchEvent": n, "SuggestionImpression": n, ...}``.
Used by ``python -m bench.soak`` and ``tests/test_faults.py`` to compare the
events the server accepted with the rows it stored.
"""

from __future__ import annotations

import json


def main() -> None:
    import django

    django.setup()
    from suggestions import models

    from .traffic import EVENT_MODELS

    names = ["SearchEvent", *EVENT_MODELS.values()]
    print(json.dumps({name: getattr(models, name).objects.count() for name in names}))


if __name__ == "__main__":
    main()
