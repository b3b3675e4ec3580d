"""``python -m bench.search_clicks``: see :mod:`bench.search_clicks`."""

from __future__ import annotations

from bench.search_clicks import main

raise SystemExit(main())
