"""End to end with a real Celery worker process on Redis.

A product saved in the test commits, its ``on_commit`` callback sends
``suggestions.index.update_products`` to Redis, a separate ``celery worker``
process (``tests/worker_settings.py``) reads the row from the same PostgreSQL
test database and writes the tantivy index in the test's data directory, and
the test process then finds the product through its own tantivy backend.

Needs PostgreSQL (the worker must see the test's committed rows; SQLite test
databases live in memory) and Redis: skipped locally without them, failing
in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from suggestions.recall import get_backend
from tests.factories import ProductFactory

REPO_ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 90.0  # an upper bound for a loaded CI machine; passing runs take seconds


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no worker log)"


def _database_url() -> str:
    """URL of the test database this process uses (``NAME`` is the test name)."""
    db = connection.settings_dict
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{quote(db['NAME'], safe='')}"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def celery_worker_process(redis_url, postgres_db, transactional_db, settings, tmp_path, monkeypatch) -> Iterator[WorkerProcess]:
    """A ``celery worker`` on Redis sharing this test's database and index directory."""
    from shop_search.celery import app

    # This process only sends: tasks must go to Redis instead of running eagerly.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = redis_url
    # The Celery app read the Django settings when first used; patch its copy too.
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", redis_url)
    monkeypatch.setitem(app.conf, "broker_transport_options", {})
    app.close()  # drop a producer pool built for another broker
    with app.connection_for_write() as conn:
        # Messages left by an aborted earlier run would only slow the worker down.
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "SUGGESTIONS_DATA_DIR": str(settings.SUGGESTIONS_DATA_DIR),
        "SUGGESTIONS_MODEL_DIR": str(tmp_path / "models"),
        "SHARED_CACHE_URL": redis_url,
        "SHOP_VAR_DIR": str(tmp_path / "worker-var"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "worker.log"
    command = [
        sys.executable, "-m", "celery", "-A", "shop_search", "worker",
        "-Q", "default,gpu", "--pool", "solo", "-c", "1",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
        "--loglevel", "INFO", "-n", f"test-{uuid.uuid4().hex[:8]}@%h",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, log_path)
    try:
        yield worker
    finally:
        _stop(process)
        app.close()
        # Shown by pytest only when the test failed.
        print(f"--- celery worker log (exit code {process.returncode}) ---\n{worker.log()}")


def _search(query: str) -> list[tuple[str, str]]:
    """(id, indexed title) of the hits, read by this process's own backend."""
    return [(hit.id, hit.document.title) for hit in get_backend().search_products(query, limit=10).hits]


def _wait_until(condition: Callable[[], bool], worker: WorkerProcess, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        if condition():
            return
        if worker.process.poll() is not None:
            pytest.fail(f"The worker exited ({worker.process.returncode}) while waiting for {what}:\n{worker.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {WAIT_SECONDS:.0f}s waiting for {what}. Worker log:\n{worker.log()}")
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_indexes_saved_and_deleted_products(celery_worker_process: WorkerProcess) -> None:
    product = ProductFactory(title="Wallabyx WX-1 toner cartridge", brand="Wallabyx")
    product_id = str(product.pk)
    # Sent on commit, not run here.
    assert _search("wallabyx") == []

    _wait_until(lambda: _search("wallabyx") == [(product_id, "Wallabyx WX-1 toner cartridge")],
                celery_worker_process, "the saved product to be indexed")

    product.title = "Wallabyx WX-2 toner cartridge"
    product.save()
    _wait_until(lambda: _search("wallabyx") == [(product_id, "Wallabyx WX-2 toner cartridge")],
                celery_worker_process, "the renamed product to be re-indexed")

    product.delete()
    _wait_until(lambda: _search("wallabyx") == [], celery_worker_process, "the deleted product to leave the index")


@pytest.mark.worker
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_understands_a_searched_query(celery_worker_process: WorkerProcess) -> None:
    from suggestions import services
    from suggestions.models import QueryUnderstanding, SearchEvent

    ProductFactory(title="Wallabyx WX-1 toner cartridge", brand="Wallabyx")
    services.search("wallabyx toner under 50", session_key="worker-test")
    # Announced on commit, understood by the worker on the gpu queue.
    _wait_until(lambda: SearchEvent.objects.exclude(understanding=None).exists(),
                celery_worker_process, "the search to be understood")
    event = SearchEvent.objects.get()
    price = [e for e in event.understanding["entities"] if e["label"] == "price_range"]
    assert price and price[0]["value"] == "<=50"
    assert QueryUnderstanding.objects.filter(normalized_query="wallabyx toner under 50").exists()


@pytest.mark.worker
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_learning_loop_runs_in_the_worker_and_the_web_process_follows(
        celery_worker_process: WorkerProcess, settings, redis_url) -> None:
    """Snapshot, train, gate and promote in the worker; this process (the web's
    role) serves the new order without a restart; a promotion by hand and a
    roll-back are followed the same way."""
    from suggestions import services, tasks
    from suggestions.models import ModelVersion, RankedPrefix
    from suggestions.serving import reset_local_state
    from tests.test_learning_loop import _history

    # The web process shares the worker's cache, as in production.
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": redis_url}}
    settings.SUGGESTIONS_MODEL_DIR = str(Path(settings.SUGGESTIONS_DATA_DIR).parent / "models")
    reset_local_state()
    _history()
    services.build_suggestions(include_catalog=False)

    def served() -> list[str]:
        return [i.text for i in services.suggest("gea", limit=3).items]

    def order_of(version: ModelVersion) -> list[str]:
        row = RankedPrefix.objects.filter(prefix="gea", model_version=version.version).first()
        return [t for t, _s in row.texts][:3] if row else []

    popularity = served()
    tasks.retrain.delay("suggestion_ranker")  # to the gpu queue, run by the worker
    _wait_until(lambda: ModelVersion.objects.filter(kind="suggestion_ranker", status="active").exists(),
                celery_worker_process, "the retrained ranker to be promoted")
    first = ModelVersion.objects.get(kind="suggestion_ranker", status="active")
    assert "better" in first.decision and first.baseline_metrics["mrr@10"] < first.metrics["mrr@10"]
    _wait_until(lambda: order_of(first) != [] and served() == order_of(first), celery_worker_process,
                "the promoted order to be served here")
    assert served() != popularity

    # A broken challenger is rejected by the worker's gate; promoted by hand anyway
    # (as a merchandiser could), the web process follows, and a roll-back restores.
    tasks.retrain.delay("suggestion_ranker", {"shuffle_labels": True})
    _wait_until(lambda: ModelVersion.objects.filter(kind="suggestion_ranker").count() == 2,
                celery_worker_process, "the broken challenger's retrain")
    second = ModelVersion.objects.filter(kind="suggestion_ranker").exclude(pk=first.pk).get()
    assert second.status == "rejected" and "not better" in second.decision
    services.promote(second)
    _wait_until(lambda: order_of(second) != [] and served() == order_of(second), celery_worker_process,
                "the hand-promoted version's order to be served")
    restored = services.rollback("suggestion_ranker")
    assert restored.pk == first.pk
    _wait_until(lambda: order_of(first) != [] and served() == order_of(first), celery_worker_process,
                "the rolled-back version's order to be served")
