"""``python -m bench.understanding``: see :mod:`bench.understanding`."""

from __future__ import annotations

from bench.understanding import main

raise SystemExit(main())
