"""``python -m bench.experiments``: see :mod:`bench.experiments`."""

from __future__ import annotations

from bench.experiments import main

raise SystemExit(main())
