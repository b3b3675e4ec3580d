"""``python -m bench.analytics``: see :mod:`bench.analytics`."""

from __future__ import annotations

from bench.analytics import main

raise SystemExit(main())
