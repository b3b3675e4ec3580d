"""Faults under load: Redis stops and the Celery worker dies while shoppers use the shop.

Everything is real and private to the test: its own ``redis-server`` on a
free port (cache, throttles and Celery broker; never the machine's shared
Redis), its own database (a database of its own on the PostgreSQL server of
``DATABASE_URL`` when that is PostgreSQL, else a SQLite file in the test's
folder), gunicorn serving the demo project (2 workers x 4 threads) and a
``celery worker`` on both queues, all on :mod:`tests.fault_settings`.

Four shopper threads (:mod:`bench.soak.traffic`: suggest as they type, the
shown list and the chosen suggestion, a search, a click on a result) run
while, in order: Redis is stopped, the worker is killed with SIGKILL, Redis
comes back (empty, as a replaced node would). Then:

* no answer is a 5xx, and every request got an answer;
* no event is lost: every event accepted with a 202 and every search answered
  with a 200 is a row in the database at the end;
* every suggest and search answer given while Redis was down says
  ``"degraded": true`` (the answer is correct but not the full service), and
  once Redis is back suggest answers stop being degraded.

Marked ``services`` and ``worker``: it needs ``redis-server`` and runs in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.common import RedisServer, free_port
from bench.soak.traffic import EVENT_MODELS, AnswerLog, event_totals, run_shoppers
from tests.plugins.services import require_service

pytestmark = [pytest.mark.services, pytest.mark.worker, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "tests.fault_settings"
SHOPPERS = 4
WARM_SECONDS = 3.0
# Answers started this long after Redis went away must know it: the app
# re-reads the shared cache version at least this often (SUGGESTIONS_LOCAL_CACHE_SECONDS).
GRACE_SECONDS = 1.0
OUTAGE_SECONDS = 7.0
AFTER_SECONDS = 5.0


@contextmanager
def own_database(tmp_path: Path) -> Iterator[str]:
    """A database URL of the test's own: a fresh PostgreSQL database, or a SQLite file."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'faults.sqlite3'}"
        return
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    name = f"shop_faults_{uuid.uuid4().hex[:10]}"
    params = {"host": cfg.get("HOST") or "127.0.0.1", "port": cfg.get("PORT") or 5432,
              "user": cfg.get("USER") or None, "password": cfg.get("PASSWORD") or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _manage(env: dict, *command: str) -> None:
    proc = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"manage.py {command[0]} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("wb") as fh:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the server did not come up (exit {process.poll()}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def test_redis_outage_and_dead_worker_under_load(tmp_path):
    require_service(shutil.which("redis-server") is not None, "redis-server (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as redis, own_database(tmp_path) as database_url:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "SUGGESTIONS_DATA_DIR": str(tmp_path / "suggestions"),
            "SUGGESTIONS_MODEL_DIR": str(tmp_path / "models"),
            "SHOP_VAR_DIR": str(tmp_path / "var"),
            "DEBUG": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        # One process for the whole setup: each Django start costs seconds.
        _manage(env, "shell", "-c", "from django.core.management import call_command as c; "
                "c('migrate', interactive=False, verbosity=0); "
                "c('catalog_load_icecat', limit=300, no_progress=True, verbosity=0); "
                "c('suggestions_rebuild_index', no_progress=True, verbosity=0); "
                "c('suggestions_build', no_progress=True, verbosity=0)")

        worker_log, web_log = tmp_path / "worker.log", tmp_path / "gunicorn.log"
        worker = _start([sys.executable, "-m", "celery", "-A", "shop_search", "worker", "-Q", "default,gpu",
                         "--pool", "solo", "-c", "1", "--without-mingle", "--without-gossip",
                         "--without-heartbeat", "--loglevel", "WARNING", "-n", f"faults-{uuid.uuid4().hex[:8]}@%h"],
                        env, worker_log)
        port = free_port()
        web = _start([sys.executable, "-m", "gunicorn", "shop_search.wsgi:application", "--bind",
                      f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                      "--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning"], env, web_log)
        base = f"http://127.0.0.1:{port}"
        answers = AnswerLog()
        stop = threading.Event()
        try:
            _wait_for(f"{base}/api/suggestions/suggest/?q=a", web, web_log)
            threads = run_shoppers(base, threads=SHOPPERS, stop=stop, record=answers.record, seed=7)
            time.sleep(WARM_SECONDS)
            redis.stop()
            down = time.monotonic()
            time.sleep(GRACE_SECONDS)
            os.killpg(worker.pid, signal.SIGKILL)  # the worker dies too, mid-outage
            worker.wait(timeout=10)
            time.sleep(max(0.0, OUTAGE_SECONDS - GRACE_SECONDS))
            back = time.monotonic()
            redis.start()
            time.sleep(AFTER_SECONDS)
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        finally:
            stop.set()
            _stop(web)
            _stop(worker)
        counts = json.loads(subprocess.run([sys.executable, "-m", "bench.soak.counts"], cwd=REPO_ROOT, env=env,
                                           capture_output=True, text=True, timeout=120, check=True).stdout)

    logs = f"--- gunicorn log ---\n{_tail(web_log)}\n--- worker log ---\n{_tail(worker_log)}"
    by_status = Counter((a.kind, a.status) for a in answers)
    problems = []
    server_errors = [a for a in answers if a.status is not None and a.status >= 500]
    if server_errors:
        problems.append(f"{len(server_errors)} 5xx answers")
    unanswered = [a for a in answers if a.status is None]
    if unanswered:
        problems.append(f"{len(unanswered)} requests without an answer, e.g. {unanswered[0].error}")

    during = [a for a in answers if a.kind in ("suggest", "search") and a.status == 200
              and a.started >= down + GRACE_SECONDS and a.ended <= back]
    kinds_during = Counter(a.kind for a in during)
    if kinds_during["suggest"] < 3 or kinds_during["search"] < 1:
        problems.append(f"too little traffic during the outage to judge it: {dict(kinds_during)}")
    not_marked = Counter(a.kind for a in during if a.degraded is not True)
    if not_marked:
        problems.append(f"answers during the outage not marked degraded: {dict(not_marked)} of {dict(kinds_during)}")
    after = [a for a in answers if a.kind == "suggest" and a.status == 200 and a.started >= back + 2.0]
    if not any(a.degraded is False for a in after):
        problems.append(f"suggest answers stay degraded after Redis is back ({len(after)} answers)")

    accepted, _ = event_totals(answers)
    searched = sum(1 for a in answers if a.kind == "search" and a.status == 200)
    if not accepted["impression"] or not searched:
        problems.append("no event or search was accepted at all")
    stored = {kind: counts[model] for kind, model in EVENT_MODELS.items()}
    if stored != {kind: accepted[kind] for kind in EVENT_MODELS}:
        problems.append(f"events accepted with a 202 {dict(accepted)} != rows stored {stored}")
    if counts["SearchEvent"] != searched:
        problems.append(f"{searched} searches answered with a 200, {counts['SearchEvent']} recorded")
    assert not problems, "\n".join([*problems, f"answers by kind and status: {dict(by_status)}", logs])
