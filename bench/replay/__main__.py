"""``python -m bench.replay``: see :mod:`bench.replay`."""

from __future__ import annotations

from bench.replay import main

raise SystemExit(main())
