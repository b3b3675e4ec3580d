"""``python -m bench.embedding``: see :mod:`bench.embedding`."""

from __future__ import annotations

from bench.embedding import main

raise SystemExit(main())
