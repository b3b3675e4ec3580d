"""``python -m bench.qac``: see :mod:`bench.qac`."""

from __future__ import annotations

from bench.qac import main

raise SystemExit(main())
