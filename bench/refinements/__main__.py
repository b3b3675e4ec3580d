"""``python -m bench.refinements``: see :mod:`bench.refinements`."""

from __future__ import annotations

from bench.refinements import main

raise SystemExit(main())
