"""Settings of ``python -m bench.analytics --database-url …``: the benchmark
settings on the PostgreSQL database the option names (set as
``BENCH_DATABASE_URL`` by the benchmark before Django starts)."""

from __future__ import annotations

import os

import dj_database_url

from bench.settings import *  # noqa: F403

DATABASES = {"default": dj_database_url.parse(os.environ["BENCH_DATABASE_URL"])}
