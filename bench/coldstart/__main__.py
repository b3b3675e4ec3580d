"""``python -m bench.coldstart``: see :mod:`bench.coldstart`."""

from __future__ import annotations

from bench.coldstart import main

raise SystemExit(main())
