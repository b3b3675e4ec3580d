"""``python -m bench.spelling``: see :mod:`bench.spelling`."""

from __future__ import annotations

from bench.spelling import main

raise SystemExit(main())
