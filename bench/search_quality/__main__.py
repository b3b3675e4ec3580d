"""``python -m bench.search_quality``: see :mod:`bench.search_quality`."""

from __future__ import annotations

from bench.search_quality import main

raise SystemExit(main())
