from __future__ import annotations

import pytest

pytest_plugins = ["tests.plugins.services", "tests.plugins.es_server"]


def pytest_configure(config) -> None:
    from tests.plugins.services import IN_CI

    if IN_CI:
        from django.conf import settings

        engine = settings.DATABASES["default"]["ENGINE"]
        if not engine.endswith("postgresql"):
            raise pytest.UsageError("CI=true requires DATABASE_URL to point at PostgreSQL")


@pytest.fixture(autouse=True)
def _isolated_state(settings, tmp_path):
    """Fresh tantivy directory, empty cache and rebuilt backends for every test."""
    from django.core.cache import caches

    from suggestions import dense, synonyms
    from suggestions.api.throttling import reset_local_counts
    from suggestions.recall import reset_backends
    from suggestions.serving import reset_local_state

    settings.SUGGESTIONS_DATA_DIR = str(tmp_path / "suggestions-data")
    reset_backends()
    reset_local_state()
    dense.reset()
    reset_local_counts()
    synonyms.reset()
    for cache in caches.all():
        try:
            cache.clear()
        except Exception:  # noqa: BLE001 - a broken cache is what some tests want
            pass
    yield
    reset_backends()


@pytest.fixture
def cache_calls(monkeypatch) -> list[str]:
    """Names of the calls made on the default cache during the test, in order."""
    from django.core.cache import caches

    cache = caches["default"]
    calls: list[str] = []
    for name in ("get", "set", "add", "incr", "decr", "get_many", "set_many", "delete", "touch", "has_key"):
        real = getattr(cache, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(cache, name, counted)
    return calls


@pytest.fixture
def server(live_server):
    """The live server; on SQLite, one request at a time.

    With SQLite's in-memory test database every server thread shares one
    connection, so a beacon's transaction and the next page's writes would
    interleave on it (and roll back together). PostgreSQL gives each thread
    its own connection and needs nothing.
    """
    import threading

    from django.db import connection

    httpd = live_server.thread.httpd
    if connection.vendor == "sqlite" and not getattr(httpd, "serialized", False):
        app, lock = httpd.get_app(), threading.Lock()

        def serialized(environ, start_response):
            with lock:
                return app(environ, start_response)

        httpd.set_app(serialized)
        httpd.serialized = True
    if not getattr(httpd, "idle", None):
        # Requests still running on the server (a fetch the browser gave up on
        # when it left the page is still being answered): the test database
        # is flushed only once none is, or the flush and a query deadlock.
        inner, idle = httpd.get_app(), threading.Condition()
        httpd.active = 0

        def counted(environ, start_response):
            with idle:
                if httpd.closed:
                    # Between tests (the database is being flushed): a late
                    # beacon must not touch it.
                    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                    return [b"between tests"]
                httpd.active += 1
            try:
                return inner(environ, start_response)
            finally:
                with idle:
                    httpd.active -= 1
                    idle.notify_all()

        httpd.set_app(counted)
        httpd.idle = idle
    httpd.closed = False
    yield live_server
    # Refuse new requests and let the running ones finish before the test's
    # database is flushed (a flush and a query deadlock on PostgreSQL).
    with httpd.idle:
        httpd.closed = True
    wait_until_server_idle(live_server)


def wait_until_server_idle(live_server, timeout: float = 10.0) -> bool:
    """Wait until the live server answers no request; False on timeout."""
    httpd = live_server.thread.httpd
    idle = getattr(httpd, "idle", None)
    if idle is None:
        return True
    with idle:
        return idle.wait_for(lambda: httpd.active == 0, timeout=timeout)


@pytest.fixture
def throttle_rates(settings):
    """Set throttle rates for one test; DRF re-reads REST_FRAMEWORK on change."""

    def apply(**rates: str) -> None:
        base = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
        base.update({f"suggestions.{scope}": rate for scope, rate in rates.items()})
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": base}

    return apply
