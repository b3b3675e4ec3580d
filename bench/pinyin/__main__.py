"""``python -m bench.pinyin``: see :mod:`bench.pinyin`."""

from __future__ import annotations

from bench.pinyin import main

raise SystemExit(main())
