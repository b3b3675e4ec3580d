"""Helpers for tests that need real services, optional packages or shared data.

Outside CI a missing service, package or data file skips the test with a clear
message; with ``CI=true`` it fails instead, so CI never passes by skipping.
Tests never call ``pytest.skip``/``pytest.importorskip`` themselves: they use
:func:`require_service`, :func:`require_module` or :func:`require_data`.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when ``what`` is not available.

    Works in a test, a fixture or at module level (a module-level skip skips the
    whole module; a module-level failure is a collection error, which fails CI).
    """
    if available:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it", pytrace=False)
    pytest.skip(f"{message}; set it up to run this test (required in CI)", allow_module_level=True)


def require_module(name: str, install: str | None = None) -> ModuleType:
    """Import and return module ``name``; skip locally, fail under ``CI=true``, when it is missing.

    Args:
        name: Dotted module name, e.g. ``"torch"`` or ``"playwright.sync_api"``.
        install: What to install, for the message (defaults to the top-level name).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require_service(False, f"the Python module {name!r} ({exc}; pip install {install or name.split('.')[0]})")
        raise  # not reached: require_service skipped or failed


def require_data(*paths: str | os.PathLike) -> Path:
    """Return the first path; skip locally, fail under ``CI=true``, unless every path exists.

    Args:
        paths: Files or folders of the shared data the test reads
            (``SHOP_DATA_DIR``, by default ``../shared/data``).

    Returns:
        The first path, as a :class:`~pathlib.Path`.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    require_service(not missing, f"shared data {', '.join(missing)} (set SHOP_DATA_DIR to the shared data folder)")
    return Path(paths[0])


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
