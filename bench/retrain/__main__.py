"""``python -m bench.retrain``: see :mod:`bench.retrain`."""

from __future__ import annotations

from bench.retrain import main

raise SystemExit(main())
