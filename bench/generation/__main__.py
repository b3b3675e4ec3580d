"""``python -m bench.generation``: see :mod:`bench.generation`."""

from __future__ import annotations

from bench.generation import main

raise SystemExit(main())
