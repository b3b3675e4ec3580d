"""``python -m bench.understanding_speed``: see :mod:`bench.understanding_speed`."""

from __future__ import annotations

from bench.understanding_speed import main

raise SystemExit(main())
