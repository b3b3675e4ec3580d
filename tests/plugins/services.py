"""Helpers for tests that need real services.

Outside CI a missing service skips the test with a clear message; with
``CI=true`` it fails instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when ``what`` is not available."""
    if available:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(f"{message}; set it up to run this test (required in CI)")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url() -> str:
    """URL of a real Redis (``REDIS_URL`` or 127.0.0.1:6379), database 15."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        ok = True
    except Exception:  # noqa: BLE001
        ok = False
    require_service(ok, f"Redis at {url}")
    return url


@pytest.fixture
def postgres_db(settings) -> None:
    """Require the test database to be PostgreSQL."""
    require_service(
        settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        "PostgreSQL (set DATABASE_URL=postgres://…)",
    )
