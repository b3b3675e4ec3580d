"""``python -m bench.latency``: the API endpoints under load, each against a trivial DRF endpoint.

Method
======

1. **State.** The PostgreSQL database of ``--database-url`` is created when
   missing and migrated; the Icecat catalog is loaded (``catalog_load_icecat``),
   the Best Buy search log is imported as search history
   (``suggestions_import_history``), the product index is rebuilt
   (``suggestions_rebuild_index``) and suggestions are mined and published
   (``suggestions_build``). With ``--skip-setup`` all of that is skipped when
   the data is already there (products, history, published suggestions).
   Unless ``--no-ranker``, a suggestion ranker is then trained through the
   learning loop (``suggestions_retrain suggestion_ranker``, tasks eager so
   the promoted order of every prefix is precomputed) when none is active;
   the report says whether the gate promoted it.
   ``VACUUM ANALYZE`` then gives the planner the statistics autovacuum keeps in
   a live shop (a fresh load has none, and plans a prefix query blind). Every process runs :mod:`bench.latency.settings`; the tantivy indexes live
   under ``var/bench-latency/``. Cached answers of earlier runs are invalidated
   (the app's own cache-version bump), so every run starts cold.
2. **Traffic.** ``--samples`` prefixes are drawn: a search of the Best Buy log
   (one row, so popular queries come up as often as they were searched) or,
   with probability ``--title-share``, an Icecat title (one product), cut to a
   random length of 1..10 characters (as typed, lower-cased titles). Popular
   prefixes repeat and hit the answer cache, the long tail misses. ``wrk``
   (``bench/latency/wrk.lua``) sends a random one per request, each from one of
   ``--clients`` shopper addresses in ``X-Forwarded-For`` (as a reverse proxy
   would), so the throttle keeps one short history per shopper.
3. **Server.** gunicorn on a free ``127.0.0.1`` port, ``--workers`` workers of
   ``--worker-class`` (default ``gthread``, ``--threads`` each; see below),
   started afresh for each endpoint pair with every worker capped at its
   share of that pair's connections (:func:`server_shape`): without the cap
   one worker could take all of wrk's connections and leave the other idle,
   which halved a run's throughput at random, trivial or not.
4. **Runs.** A warm-up of ``--warmup`` seconds on each run (not reported; it
   also fills the cache with the most popular prefixes, the steady state of a
   live shop), then ``--rounds`` rounds. In a round each endpoint of
   ``--endpoints`` runs ``--duration`` seconds beside a trivial run at the same
   connection count (suggest ``--connections``, search
   ``--search-connections``, events ``--events-connections``; one wrk
   thread), the pair's order alternating between rounds to even out drift.
   Reported figures are medians over rounds of each round's figure; ratios are
   medians of each round's ratio of two adjacent runs. Events stored per
   second are the rows the three event tables gained during the run.
5. **Checks.** Every answer must be 2xx and no suggest answer may be
   ``degraded`` (cache or engine down answers fast but wrong); socket errors
   and timeouts are reported. Any of those makes the run invalid (exit status 1).
6. **Accounting.** Around every wrk run: CPU time of gunicorn (master and
   workers), wrk, PostgreSQL and Redis from ``/proc``, the machine's busy time
   (what is left is "other": work that is not the benchmark's), Redis commands
   per request, and the answers cached under this run's cache version (one per
   cache miss: the hit ratio). CPU milliseconds per request depend much less
   than requests/s on how much of the machine the server got, so their trivial/suggest ratio is
   printed as the "CPU-bound capacity ratio", the figure to trust when other
   work shares the machine (the report warns when it did).

Choices
=======

* **Baseline.** ``bench/trivial/`` returns ``{"ok": true}`` through the same
  middleware, ``SessionAuthentication`` and ``AllowAny`` as the API views,
  without a throttle. The API views keep their throttles at the shop's rates
  (production has them), with loopback as the trusted proxy: their cost is
  part of what is measured.
* **Search load.** The search target holds "at a load where the trivial
  endpoint's p99 is under 20 ms": on two cores shared with wrk and PostgreSQL
  that is a few connections (``--search-connections 4``), not suggest's 16; the
  report prints the trivial p99 of that load and says when the condition failed.
* **Anonymous shoppers.** Requests carry no session cookie, like a first visit:
  no session row is read and the shopper has no recent searches to look up.
* **gthread, 2 workers x 4 threads.** The two cores are shared with wrk,
  PostgreSQL and Redis: a third worker only adds contention. gthread keeps
  connections alive (the sync worker closes every one, so each request would
  also pay a TCP connect), and a worker's other threads use the CPU while one
  waits on Redis, PostgreSQL or tantivy. sync x2, sync x3, gthread 2x1, 2x4
  and 3x2 were measured: CPU per trivial request was the same within noise
  (0.7-0.8 ms); ``--worker-class``, ``--workers`` and ``--threads`` rerun any.
* **Closed loop.** wrk keeps ``--connections`` requests in flight, so latency
  here is queueing behind those connections plus service time (Little's law:
  mean latency ~= connections / throughput); latency targets hold "at that load".

The data is read at run time and never copied into the repository: the
request paths live in a temporary folder for the length of the run; gunicorn's
log goes to ``var/bench-latency/gunicorn.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import platform
import random
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port, resolve_data_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
SETTINGS_MODULE = "bench.latency.settings"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_suggestions"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
SUGGEST_PATH = "/api/suggestions/suggest/"
SEARCH_PATH = "/api/suggestions/search/"
EVENTS_PATH = "/api/suggestions/events/"
TRIVIAL_PATH = "/bench/trivial/"
ENDPOINTS = ("suggest", "search", "events")
#: suggest/ keeps this share of the trivial endpoint's throughput ...
TARGET_RATIO = 0.80
#: ... with its p99 at most this multiple of the trivial endpoint's, at the same load.
TARGET_P99_RATIO = 1.5
#: search/ median under this, at a load where the trivial endpoint's p99 is under TARGET_TRIVIAL_P99_MS.
TARGET_SEARCH_P50_MS = 15.0
TARGET_TRIVIAL_P99_MS = 20.0
#: Events stored per second (batches of --batch).
TARGET_EVENTS_PER_S = 2000.0


def fail(message: str, status: int = 2) -> SystemExit:
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(status)


def rel(path: Path) -> str:
    """``path`` relative to the repository root when it is inside or next to it."""
    try:
        return os.path.relpath(path, REPO_ROOT)
    except ValueError:
        return str(path)


# -- options -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description="Throughput and latency of the suggest endpoint (gunicorn, PostgreSQL, Redis, "
        "tantivy) against a trivial DRF endpoint, driven by wrk on loopback.",
    )
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Shared data folder holding bestbuy/train.csv (default: $SHOP_DATA_DIR, "
                   "else ../shared/data relative to the repository root).")
    p.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                   help=f"PostgreSQL database of the benchmark, created when missing (default {DEFAULT_DATABASE_URL}).")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                   help=f"Redis database for cache and broker (default {DEFAULT_REDIS_URL}).")
    p.add_argument("--skip-setup", action="store_true",
                   help="Skip loading and building when the data is already there.")
    p.add_argument("--duration", type=int, default=15, help="Seconds per endpoint and round (default 15).")
    p.add_argument("--rounds", type=int, default=3, help="Rounds, each endpoint once per round (default 3).")
    p.add_argument("--connections", type=int, default=16, help="wrk connections (default 16).")
    p.add_argument("--warmup", type=int, default=5, help="Warm-up seconds per endpoint (default 5).")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
    p.add_argument("--worker-class", choices=["gthread", "sync"], default="gthread",
                   help="gunicorn worker class (default gthread).")
    p.add_argument("--threads", type=int, default=4, help="Threads per gthread worker (default 4).")
    p.add_argument("--samples", type=int, default=100_000, help="Prefixes sampled for wrk (default 100000).")
    p.add_argument("--title-share", type=float, default=0.2,
                   help="Share of prefixes cut from Icecat titles; the rest from Best Buy queries (default 0.2).")
    p.add_argument("--clients", type=int, default=1000,
                   help="Distinct shopper addresses (X-Forwarded-For) the requests come from (default 1000).")
    p.add_argument("--seed", type=int, default=1, help="Random seed of the sampling (default 1).")
    p.add_argument("--wrk", default="wrk", help="wrk executable (default: wrk on PATH).")
    p.add_argument("--endpoints", default=",".join(ENDPOINTS),
                   help="Endpoints measured, each beside the trivial one at its own load "
                   f"(comma-separated, default {','.join(ENDPOINTS)}).")
    p.add_argument("--search-connections", type=int, default=4,
                   help="wrk connections for search/ and its trivial run (default 4: the search target "
                   f"holds at a load where the trivial endpoint's p99 is under {TARGET_TRIVIAL_P99_MS:.0f} ms).")
    p.add_argument("--events-connections", type=int, default=8,
                   help="wrk connections for events/ and its trivial run (default 8).")
    p.add_argument("--batch", type=int, default=20, help="Events per POST events/ request (default 20).")
    p.add_argument("--no-ranker", action="store_true",
                   help="Set-up without training a suggestion ranker (by default set-up trains one through "
                   "the learning loop, so suggest/ is measured with the learned order in place).")
    args = p.parse_args(argv)
    chosen = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    unknown = sorted(set(chosen) - set(ENDPOINTS))
    if unknown or not chosen:
        raise fail(f"--endpoints: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ENDPOINTS)}.")
    args.endpoints = [e for e in ENDPOINTS if e in chosen]
    for name in ("duration", "rounds", "connections", "workers", "threads", "samples", "clients",
                 "search_connections", "events_connections", "batch"):
        if getattr(args, name) < 1:
            raise fail(f"--{name.replace('_', '-')} must be at least 1.")
    if args.warmup < 0:
        raise fail("--warmup must not be negative.")
    if not 0.0 <= args.title_share <= 1.0:
        raise fail("--title-share must be between 0 and 1.")
    return args


# -- environment ---------------------------------------------------------------------------


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "BENCH_DATABASE_URL": args.database_url,
        "BENCH_REDIS_URL": args.redis_url,
        "PYTHONUNBUFFERED": "1",
    })
    return env


def ensure_database(url: str) -> str:
    """Create the database of ``url`` when missing; returns the server version."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    if "postgresql" not in cfg["ENGINE"]:
        raise fail(f"--database-url must be a PostgreSQL URL, got {cfg['ENGINE']}.")
    params = {"host": cfg.get("HOST") or "127.0.0.1", "port": cfg.get("PORT") or 5432,
              "user": cfg.get("USER") or None, "password": cfg.get("PASSWORD") or None}
    if params["host"] not in ("127.0.0.1", "localhost", "::1"):
        raise fail("The benchmark only talks to a local PostgreSQL (127.0.0.1).")
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
                print(f"created database {cfg['NAME']}")
            return conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.OperationalError as exc:
        raise fail(f"PostgreSQL at {params['host']}:{params['port']} is not reachable: {exc}") from exc


def analyze_database(url: str) -> None:
    """``VACUUM ANALYZE``: planner statistics as autovacuum keeps them in a live shop
    (without them PostgreSQL plans the fresh tables' queries blind)."""
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    with psycopg.connect(dbname=cfg["NAME"], host=cfg.get("HOST") or "127.0.0.1", port=cfg.get("PORT") or 5432,
                         user=cfg.get("USER") or None, password=cfg.get("PASSWORD") or None,
                         autocommit=True, connect_timeout=5) as conn:
        conn.execute("VACUUM ANALYZE")


def redis_client(url: str):
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    host = client.connection_pool.connection_kwargs.get("host")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise fail("The benchmark only talks to a local Redis (127.0.0.1).")
    try:
        client.ping()
    except redis.RedisError as exc:
        raise fail(f"Redis at {url} is not reachable: {exc}") from exc
    return client


def manage(env: dict[str, str], *command: str, last: bool = False) -> str:
    """Run ``manage.py command``; returns its first (or ``last``) output line, ends the run on failure."""
    proc = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise fail(f"manage.py {command[0]} failed (exit {proc.returncode}).", 1)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return (lines[-1] if last else lines[0]) if lines else ""


def ensure_ranker(args: argparse.Namespace, env: dict[str, str]) -> str:
    """Train a suggestion ranker through the learning loop unless one is active (or ``--no-ranker``).

    Tasks run eagerly in that command, so a promotion's precomputed prefix
    orders are written before the load starts (the benchmark runs no worker)."""
    from suggestions.models import ModelVersion, ModelVersionStatus, RankedPrefix

    def active() -> ModelVersion | None:
        return ModelVersion.objects.filter(kind="suggestion_ranker", status=ModelVersionStatus.ACTIVE).first()

    if args.no_ranker:
        return "suggestion ranker: not trained (--no-ranker)" + (
            f"; version {active().version} is active from an earlier run" if active() else "")
    version = active()
    if version is None:
        t0 = time.monotonic()
        print("setup: suggestions_retrain suggestion_ranker (the learning loop; minutes) …", flush=True)
        outcome = manage({**env, "CELERY_TASK_ALWAYS_EAGER": "1"}, "suggestions_retrain", "suggestion_ranker",
                         last=True)
        version = active()
        head = f"suggestions_retrain suggestion_ranker: {time.monotonic() - t0:.0f} s: {outcome.strip()}"
    else:
        head = "suggestion ranker: active from an earlier run"
    if version is None:
        # The gate kept no version (it judges quality on this log's held-out days); this
        # benchmark measures what serving a learned order costs, so the newest candidate is
        # promoted by hand, as a merchandiser can in the admin.
        candidate = ModelVersion.objects.filter(kind="suggestion_ranker").order_by("-created_at").first()
        if candidate is None:
            return head + " -> no ranker trained: suggest/ is measured with the popularity order"
        manage({**env, "CELERY_TASK_ALWAYS_EAGER": "1"}, "shell", "-c",
               "from suggestions import services; from suggestions.models import ModelVersion; "
               f"services.promote(ModelVersion.objects.get(pk={candidate.pk}))")
        version = active()
        if version is None:
            return head + " -> promoting the candidate failed: suggest/ is measured with the popularity order"
        head += f"; the gate rejected it, version {version.version} promoted by hand for this measurement"
    return f"{head} -> active version {version.version}, {RankedPrefix.objects.count()} prefixes ranked"


def data_ready() -> bool:
    from catalog.models import Product
    from suggestions.models import SearchEvent, Suggestion, SuggestionStatus
    from suggestions.recall import RecallUnavailable, get_backend

    try:
        return (Product.objects.exists() and SearchEvent.objects.exists()
                and Suggestion.objects.filter(status=SuggestionStatus.APPROVED).exists()
                and get_backend().count_products() > 0 and bool(get_backend().suggest("a", limit=1)))
    except RecallUnavailable:
        return False


def setup_state(args: argparse.Namespace, env: dict[str, str], train_csv: Path) -> list[str]:
    """Migrate, then load and build unless ``--skip-setup`` finds it done; returns log lines."""
    log = []
    started = time.monotonic()
    manage(env, "migrate", "--noinput")
    log.append(f"migrate: {time.monotonic() - started:.1f} s")
    import django

    django.setup()
    if args.skip_setup and data_ready():
        log.append("--skip-setup: catalog, history and suggestions already there, not rebuilt")
        return log
    steps = [
        ("catalog_load_icecat", "--no-progress"),
        ("suggestions_import_history", str(train_csv), "--no-progress"),
        ("suggestions_rebuild_index", "--no-progress"),
        ("suggestions_build", "--no-progress"),
    ]
    for step in steps:
        t0 = time.monotonic()
        print(f"setup: {step[0]} …", flush=True)
        line = manage(env, *step)
        log.append(f"{step[0]}: {time.monotonic() - t0:.1f} s: {line}")
    from suggestions.recall import reset_backends

    reset_backends()  # the in-process backend must see the rebuilt indexes
    if not data_ready():
        raise fail("setup finished but the catalog, history or suggestions are still missing.", 1)
    return log


# -- traffic -------------------------------------------------------------------------------


@dataclass
class Traffic:
    paths: list[str]
    queries: int
    titles: int
    distinct: int
    repeated_share: float


def sample_prefixes(train_csv: Path, titles: list[str], *, samples: int, title_share: float,
                    seed: int, max_len: int = 10) -> Traffic:
    """``samples`` suggest request paths, prefixes of real queries and titles (see the module doc)."""
    from suggestions.text import normalize_prefix

    with train_csv.open(newline="", encoding="utf-8") as fh:
        queries = [q for q in ((row.get("query") or "").strip() for row in csv.DictReader(fh)) if q]
    if not queries:
        raise fail(f"{train_csv} holds no queries.")
    titles = [t.strip().lower() for t in titles if t and t.strip()]
    rng = random.Random(seed)
    paths, keys = [], Counter()
    for _ in range(samples):
        pool = titles if titles and rng.random() < title_share else queries
        text = pool[rng.randrange(len(pool))]
        prefix = text[: rng.randint(1, min(max_len, len(text)))]
        keys[normalize_prefix(prefix)] += 1
        paths.append(SUGGEST_PATH + "?q=" + urllib.parse.quote(prefix, safe=""))
    repeated = sum(n for n in keys.values() if n > 1) / samples
    return Traffic(paths, len(queries), len(titles), len(keys), repeated)


# -- server --------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0, *, post: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of a GET of ``url`` (or a POST of the JSON ``post``)."""
    request = urllib.request.Request(url, data=post, method="POST" if post is not None else "GET",
                                     headers={"Content-Type": "application/json"} if post is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def server_shape(args: argparse.Namespace, connections: int) -> tuple[int | None, int]:
    """``(worker connections, threads)`` of the gunicorn serving a pair at ``connections``.

    The gthread workers share one listening socket and the kernel does not
    spread connections over them: wrk opens all of its connections at once and
    one worker may take every one, leaving the other idle (seen as runs at half
    the throughput with the CPU half busy, for any endpoint, at random). Capping
    each worker at its share (``--worker-connections``) spreads them evenly;
    a worker keeps connections alive only with fewer threads than connections,
    so threads are held below the share. None: not capped (sync workers, or
    fewer connections than two per worker).
    """
    if args.worker_class != "gthread":
        return None, args.threads
    share = -(-connections // args.workers)
    if share < 2:
        return None, args.threads
    return share, max(1, min(args.threads, share - 1))


@contextlib.contextmanager
def gunicorn(args: argparse.Namespace, env: dict[str, str], port: int, log_path: Path,
             connections: int) -> Iterator[subprocess.Popen]:
    cmd = [sys.executable, "-m", "gunicorn", "shop_search.wsgi:application",
           "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
           "--worker-class", args.worker_class, "--log-level", "warning",
           "--error-logfile", str(log_path), "--graceful-timeout", "5"]
    if args.worker_class == "gthread":
        worker_connections, threads = server_shape(args, connections)
        cmd += ["--threads", str(threads)]
        if worker_connections:
            cmd += ["--worker-connections", str(worker_connections)]
    log_path.write_text("")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise fail(f"gunicorn exited ({proc.returncode}):\n{tail(log_path)}", 1)
            try:
                if http_get(f"http://127.0.0.1:{port}{TRIVIAL_PATH}", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise fail(f"gunicorn did not answer within 60 s:\n{tail(log_path)}", 1)
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_answers(base: str, paths: list[str]) -> str:
    """A few real requests before the load: 200, JSON, not degraded, some suggestions."""
    status, body = http_get(base + TRIVIAL_PATH)
    if status != 200 or json.loads(body) != {"ok": True}:
        raise fail(f"{TRIVIAL_PATH} answered {status}: {body[:200]!r}", 1)
    example, nonempty = "", 0
    for path in paths[:50]:
        status, body = http_get(base + path)
        if status != 200:
            raise fail(f"{path} answered {status}: {body[:300]!r}", 1)
        data = json.loads(body)
        if data.get("degraded"):
            raise fail(f"{path} answered degraded (cache or engine down): {body[:300]!r}", 1)
        if data["suggestions"]:
            nonempty += 1
            if not example:
                texts = ", ".join(s["text"] for s in data["suggestions"][:4])
                example = f"q={data['query']!r} -> {texts} …"
    if not nonempty:
        raise fail("no suggest answer had suggestions: is the index built?", 1)
    return f"{nonempty}/50 sample prefixes answered with suggestions, e.g. {example}"


# -- measurement ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def pids_named(*names: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass
class Target:
    """What one wrk run sends: the endpoint measured, or the trivial one beside it."""

    pair: str  # suggest | search | events: the measured endpoint this run belongs to
    endpoint: str  # the pair's endpoint, or "trivial"
    connections: int
    script: Path
    script_args: list[str]
    #: POST each line of the script's file to this path (events/); None: GET each line.
    post_path: str | None = None


@dataclass
class Round:
    pair: str
    endpoint: str
    number: int
    result: dict[str, float]
    stored: int = 0
    redis_commands: int = 0
    redis_misses: int = 0
    redis_hits: int = 0
    new_answers: int = 0
    cpu_busy: float = 0.0
    cpu_server: float = 0.0
    cpu_wrk: float = 0.0
    cpu_pg: float = 0.0
    cpu_redis: float = 0.0
    cpu_other: float = 0.0
    cpu_ms_server: float = 0.0
    cpu_ms_backends: float = 0.0


ANSWER_PATTERN: list[str] = []  # set once the cache version of the run is known


def redis_snapshot(client, count_answers: bool = False) -> tuple[int, int, int, int]:
    """(commands, keyspace hits, keyspace misses, cached answers of this run's version)."""
    answers = 0
    if count_answers and ANSWER_PATTERN:
        answers = sum(1 for _ in client.scan_iter(match=ANSWER_PATTERN[0], count=5000))
    info = client.info("stats")
    return (int(info["total_commands_processed"]), int(info["keyspace_hits"]),
            int(info["keyspace_misses"]), answers)


def run_wrk(args: argparse.Namespace, base: str, target: Target, seconds: int, seed: int,
            server_pids: list[int], redis, *, count_answers: bool) -> tuple[dict[str, float], dict[str, float]]:
    """One wrk run; returns its figures and what the server, Redis and the machine did meanwhile."""
    cmd = [args.wrk, "-t1", f"-c{target.connections}", f"-d{seconds}s", "--timeout", "5s",
           "-s", str(target.script), base, "--", *target.script_args, str(args.clients), str(seed),
           *([target.post_path] if target.post_path else [])]
    before_redis = redis_snapshot(redis, count_answers)
    before_sys = system_cpu()
    before_srv = sum(proc_cpu_seconds(p) for p in server_pids)
    pg_pids, redis_pids = pids_named("postgres"), pids_named("redis-server")
    before_pg = {p: proc_cpu_seconds(p) for p in pg_pids}
    before_redis_cpu = sum(proc_cpu_seconds(p) for p in redis_pids)
    before_wrk = children_cpu_seconds()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise fail("wrk did not finish in time.", 1) from None
    # wrk is the only child reaped in between: the children's rusage delta is its CPU time.
    wrk_cpu = children_cpu_seconds() - before_wrk
    after_sys = system_cpu()
    after_srv = sum(proc_cpu_seconds(p) for p in server_pids)
    # PostgreSQL backends started during the run count from zero.
    pg_cpu = sum(proc_cpu_seconds(p) - before_pg.get(p, 0.0) for p in pids_named("postgres"))
    redis_cpu = sum(proc_cpu_seconds(p) for p in redis_pids) - before_redis_cpu
    after_redis = redis_snapshot(redis, count_answers)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise fail(f"wrk failed (exit {proc.returncode}):\n{out[-2000:]}{err[-2000:]}", 1)
    result = {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    busy, total = after_sys[0] - before_sys[0], after_sys[1] - before_sys[1]
    ncpu = os.cpu_count() or 1
    wall = result["duration_us"] / 1e6
    extra = {
        "redis_commands": after_redis[0] - before_redis[0],
        "redis_hits": after_redis[1] - before_redis[1],
        "redis_misses": after_redis[2] - before_redis[2],
        "new_answers": after_redis[3] - before_redis[3],
        "cpu_busy": 100.0 * busy / total if total else 0.0,
        "cpu_server": 100.0 * (after_srv - before_srv) / (wall * ncpu),
        "cpu_wrk": 100.0 * wrk_cpu / (wall * ncpu),
        "cpu_pg": 100.0 * pg_cpu / (wall * ncpu),
        "cpu_redis": 100.0 * redis_cpu / (wall * ncpu),
    }
    extra["cpu_ms_server"] = 1000.0 * (after_srv - before_srv) / max(result["requests"], 1)
    extra["cpu_ms_backends"] = 1000.0 * (pg_cpu + redis_cpu) / max(result["requests"], 1)
    extra["cpu_other"] = max(0.0, extra["cpu_busy"] - extra["cpu_server"] - extra["cpu_wrk"]
                             - extra["cpu_pg"] - extra["cpu_redis"])
    return result, extra


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- report --------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def machine_facts() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return [f"nproc {os.cpu_count()}, CPU {model}{mem}",
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}"]


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("Django", "djangorestframework", "gunicorn", "django-redis", "psycopg", "tantivy"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def hit_ratio(misses: int, requests: float) -> str:
    if not ANSWER_PATTERN or requests <= 0:
        return "n/a"
    return f"{100 * (1 - misses / requests):.1f}"


def med(rounds: list[Round], key: str) -> float:
    return statistics.median(r.result[key] for r in rounds)


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


# -- main ----------------------------------------------------------------------------------


def sample_searches(train_csv: Path, *, samples: int, seed: int) -> list[str]:
    """``samples`` search request paths: whole Best Buy searches, as often as they were searched."""
    with train_csv.open(newline="", encoding="utf-8") as fh:
        queries = [q for q in ((row.get("query") or "").strip() for row in csv.DictReader(fh)) if q]
    rng = random.Random(seed)
    return [SEARCH_PATH + "?q=" + urllib.parse.quote(queries[rng.randrange(len(queries))], safe="")
            for _ in range(samples)]


def event_bodies(batch: int, *, count: int, seed: int) -> list[str]:
    """``count`` ``POST events/`` bodies of ``batch`` events on catalog products."""
    from bench.latency.profile import event_batch
    from catalog.models import Product

    ids = [str(pk) for pk in Product.objects.values_list("pk", flat=True)[:5000]]
    rng = random.Random(seed)
    return [json.dumps({"events": event_batch(rng, ids, batch)}) for _ in range(count)]


def stored_events() -> int:
    """Rows of the three event tables (what ``POST events/`` writes)."""
    from suggestions.models import ProductClick, SuggestionClick, SuggestionImpression

    return sum(m.objects.count() for m in (SuggestionImpression, SuggestionClick, ProductClick))


def check_endpoint(base: str, target: Target, sample: str) -> str:
    """One real request of a search or events target before the load."""
    if target.pair == "search":
        status, body = http_get(base + sample)
        if status != 200:
            raise fail(f"{sample} answered {status}: {body[:300]!r}", 1)
        data = json.loads(body)
        if data.get("degraded"):
            raise fail(f"{sample} answered degraded: {body[:300]!r}", 1)
        return f"search sample {urllib.parse.unquote(sample.split('q=', 1)[1])!r}: {data['total']} results"
    status, body = http_get(base + EVENTS_PATH, timeout=10, post=sample.encode())
    if status != 202:
        raise fail(f"POST {EVENTS_PATH} answered {status}: {body[:300]!r}", 1)
    return f"events sample: {json.loads(body)}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.latency", *argv])
    started = time.monotonic()
    data_dir = resolve_data_dir(args.data_dir)
    train_csv = data_dir / "bestbuy" / "train.csv"
    if not train_csv.is_file():
        raise fail(f"the Best Buy search log was not found at {train_csv}. Point --data-dir (or "
                   "SHOP_DATA_DIR) at the shared data folder (the one holding bestbuy/train.csv).")
    if shutil.which(args.wrk) is None:
        raise fail(f"wrk not found ({args.wrk!r}); install it (apt-get install wrk) or pass --wrk.")

    env = bench_env(args)
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "BENCH_DATABASE_URL", "BENCH_REDIS_URL")})
    pg_version = ensure_database(args.database_url)
    redis = redis_client(args.redis_url)
    redis_version = redis.info("server").get("redis_version", "?")

    setup_log = setup_state(args, env, train_csv)
    setup_log.append(ensure_ranker(args, env))
    from django.conf import settings
    from django.core.cache import caches
    from django.db import connections

    from catalog.models import Product
    from suggestions.conf import app_settings
    from suggestions.recall import reset_backends
    from suggestions.serving import VERSION_KEY, invalidate_cache

    titles = list(Product.objects.values_list("title", flat=True))
    analyze_database(args.database_url)
    setup_log.append("VACUUM ANALYZE (planner statistics, as autovacuum keeps them)")
    traffic = sample_prefixes(train_csv, titles, samples=args.samples, title_share=args.title_share,
                              seed=args.seed)
    searches = sample_searches(train_csv, samples=max(1000, args.samples // 10), seed=args.seed)
    bodies = event_bodies(args.batch, count=2000, seed=args.seed) if "events" in args.endpoints else []
    if not invalidate_cache():
        raise fail("could not invalidate the answer cache in Redis.", 1)
    # Every answer computed in this run is stored under the new version: one key per miss.
    version = caches[app_settings.CACHE_ALIAS].get(VERSION_KEY)
    if version:
        ANSWER_PATTERN.append(f"*shop_suggestions:{version}:*")
    reset_backends()
    connections.close_all()

    # The request paths are derived from the evaluation data: they live in a temporary
    # folder for the length of the run, never in the working tree.
    log_path = Path(settings.BENCH_VAR_DIR) / "gunicorn.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "trivial-paths.txt").write_text(TRIVIAL_PATH + "\n")
        (tmpdir / "suggest-paths.txt").write_text("\n".join(traffic.paths) + "\n", encoding="utf-8")
        (tmpdir / "search-paths.txt").write_text("\n".join(searches) + "\n", encoding="utf-8")
        (tmpdir / "event-bodies.txt").write_text("\n".join(bodies) + "\n", encoding="utf-8")
        conns = connections_by_pair(args)
        targets: dict[str, tuple[Target, Target]] = {}
        for pair in args.endpoints:
            trivial = Target(pair, "trivial", conns[pair], WRK_SCRIPT, [str(tmpdir / "trivial-paths.txt")])
            if pair == "events":
                measured = Target(pair, pair, conns[pair], WRK_SCRIPT, [str(tmpdir / "event-bodies.txt")],
                                  post_path=EVENTS_PATH)
            else:
                measured = Target(pair, pair, conns[pair], WRK_SCRIPT, [str(tmpdir / f"{pair}-paths.txt")])
            targets[pair] = (trivial, measured)
        restarted = False
        # One server per endpoint pair, shaped for its connection count (server_shape);
        # the pair's trivial and measured runs share it.
        for pair in args.endpoints:
            with gunicorn(args, env, port, log_path, conns[pair]) as server:
                server_pids = [server.pid, *children(server.pid)]
                if pair == "suggest":
                    sanity = check_answers(base, traffic.paths)
                else:
                    sanity = check_endpoint(base, targets[pair][1], searches[0] if pair == "search" else bodies[0])
                shape = server_shape(args, conns[pair])
                print(f"gunicorn up on {base} for {pair} (pid {server.pid}, {len(server_pids) - 1} workers, "
                      f"{shape[1]} threads, worker connections {shape[0] or 'uncapped'}); {sanity}", flush=True)
                if args.warmup:
                    for target in targets[pair]:
                        print(f"warm-up {target.endpoint} (-c{target.connections}) {args.warmup} s …", flush=True)
                        run_wrk(args, base, target, args.warmup, args.seed + 1000, server_pids, redis,
                                count_answers=False)
                for n in range(args.rounds):
                    pair_targets = targets[pair] if n % 2 == 0 else targets[pair][::-1]
                    for target in pair_targets:
                        before = stored_events() if target.endpoint == "events" else 0
                        result, extra = run_wrk(args, base, target, args.duration, args.seed + n, server_pids,
                                                redis, count_answers=target.endpoint == "suggest")
                        stored = stored_events() - before if target.endpoint == "events" else 0
                        rounds.append(Round(pair, target.endpoint, n + 1, result, stored=stored, **extra))
                        print(f"round {n + 1} {target.endpoint} (-c{target.connections}): {result['rps']:.0f} req/s, "
                              f"p50 {ms(result['p50_us'])} ms, p99 {ms(result['p99_us'])} ms, "
                              f"non-2xx {int(result['non2xx'])}"
                              + (f", {stored / (result['duration_us'] / 1e6):.0f} events/s stored"
                                 if target.endpoint == "events" else ""), flush=True)
                restarted |= sorted([server.pid, *children(server.pid)]) != sorted(server_pids)
    warnings = [ln for ln in tail(log_path, 10_000).splitlines() if "WARNING" in ln or "ERROR" in ln
                or "Traceback" in ln]
    return report(args, command, started, rounds, traffic, searches, data_dir, setup_log, pg_version,
                  redis_version, warnings, restarted)


def connections_by_pair(args: argparse.Namespace) -> dict[str, int]:
    """wrk connections of each endpoint pair (and of the trivial runs beside it)."""
    return {"suggest": args.connections, "search": args.search_connections, "events": args.events_connections}


def report(args, command, started, rounds, traffic, searches, data_dir, setup_log, pg_version, redis_version,
           warnings, restarted) -> int:
    print()
    print("## API endpoints under load (python -m bench.latency)")
    print()
    print(f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}")
    print(f"command: {command}")
    for fact in machine_facts():
        print(f"machine: {fact}")
    print(f"software: PostgreSQL {pg_version}, Redis {redis_version}, {versions()}")
    print(f"server: gunicorn {args.workers} × {args.worker_class}, one server per endpoint pair"
          + (" (threads " + ", ".join(f"{pair} {server_shape(args, c)[1]}" for pair, c in connections_by_pair(args).items()
                                 if pair in args.endpoints)
             + "; each worker capped at its share of the connections, --worker-connections)"
             if args.worker_class == "gthread" else "")
          + f" on 127.0.0.1, settings {SETTINGS_MODULE} (DEBUG=False, PostgreSQL, django-redis, tantivy, the "
          "shop's throttle rates, loopback trusted as the proxy, anonymous shoppers)")
    print(f"load: wrk -t1, {args.rounds} rounds × {args.duration} s per run; in each round every endpoint runs "
          f"beside a trivial run at its own connection count (suggest -c{args.connections}, search "
          f"-c{args.search_connections}, events -c{args.events_connections}), order alternating; after "
          f"{args.warmup} s warm-up each; {args.clients} shopper addresses (X-Forwarded-For)")
    print(f"suggest prefixes: {args.samples} sampled (1..10 chars; {1 - args.title_share:.0%} from {traffic.queries} "
          f"Best Buy searches, {args.title_share:.0%} from {traffic.titles} Icecat titles; data {rel(data_dir)}), "
          f"{traffic.distinct} distinct, {traffic.repeated_share:.0%} of samples repeat a prefix")
    print(f"searches: {len(searches)} whole Best Buy searches (each recorded in the history); events: batches of "
          f"{args.batch} (impressions, suggestion clicks, product clicks on catalog products)")
    for line in setup_log:
        print(f"setup: {line}")
    print()
    groups = [(p, e) for p in args.endpoints for e in ("trivial", p)]
    by = {(p, e): [r for r in rounds if r.pair == p and r.endpoint == e] for p, e in groups}
    conns = connections_by_pair(args)
    print(table(
        ["endpoint", "connections", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "non-2xx", "errors",
         "gunicorn CPU ms/req"],
        [[e, conns[p], f"{med(rs, 'rps'):.0f}", ms(med(rs, 'p50_us')), ms(med(rs, 'p95_us')),
          ms(med(rs, 'p99_us')), ms(max(r.result['max_us'] for r in rs)), sum(int(r.result['non2xx']) for r in rs),
          sum(int(r.result[k]) for r in rs for k in ("err_connect", "err_read", "err_write", "err_timeout")),
          f"{statistics.median(r.cpu_ms_server for r in rs):.3f}"]
         for (p, e), rs in by.items()]))
    print()
    verdicts = []
    for pair in args.endpoints:
        trivial, measured = by[(pair, "trivial")], by[(pair, pair)]
        # Each round's two runs are adjacent in time: the median of their ratios cancels
        # most of the drift in what the machine gives the server.
        ratios = [m.result["rps"] / t.result["rps"] for t, m in zip(trivial, measured, strict=True)]
        p99s = [m.result["p99_us"] / t.result["p99_us"] for t, m in zip(trivial, measured, strict=True)]
        ratio, p99_ratio = statistics.median(ratios), statistics.median(p99s)
        cpu = {k: statistics.median(r.cpu_ms_server + r.cpu_ms_backends for r in rs)
               for k, rs in (("trivial", trivial), ("measured", measured))}
        print(f"{pair}/trivial at -c{conns[pair]}: throughput {ratio:.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}), "
              f"p99 {p99_ratio:.2f}× (rounds {', '.join(f'{x:.2f}' for x in p99s)}); CPU ms/request (gunicorn + "
              f"PostgreSQL/Redis) {cpu['measured']:.3f} vs {cpu['trivial']:.3f} -> CPU-bound capacity ratio "
              f"{cpu['trivial'] / cpu['measured']:.2f}")
        if pair == "suggest":
            verdicts.append(f"target suggest throughput >= {TARGET_RATIO:.2f} of trivial: {ratio:.2f} "
                            + ("PASS" if ratio >= TARGET_RATIO else "MISS"))
            verdicts.append(f"target suggest p99 <= {TARGET_P99_RATIO}× trivial p99 at -c{conns[pair]}: "
                            f"{p99_ratio:.2f}× ({ms(med(measured, 'p99_us'))} vs {ms(med(trivial, 'p99_us'))} ms) "
                            + ("PASS" if p99_ratio <= TARGET_P99_RATIO else "MISS"))
        elif pair == "search":
            p50 = med(measured, "p50_us") / 1000
            trivial_p99 = med(trivial, "p99_us") / 1000
            held = trivial_p99 < TARGET_TRIVIAL_P99_MS
            verdicts.append(f"target search median < {TARGET_SEARCH_P50_MS:.0f} ms where trivial p99 < "
                            f"{TARGET_TRIVIAL_P99_MS:.0f} ms: median {p50:.2f} ms, trivial p99 {trivial_p99:.2f} ms at "
                            f"-c{conns[pair]} " + ("PASS" if held and p50 < TARGET_SEARCH_P50_MS else
                                                   "MISS" if held else "NOT MEASURED (the load condition failed: "
                                                   "lower --search-connections)"))
        else:
            per_s = [r.stored / (r.result["duration_us"] / 1e6) for r in measured]
            rate = statistics.median(per_s)
            accepted = med(measured, "rps") * args.batch
            print(f"events stored per second: {rate:.0f} (rounds {', '.join(f'{x:.0f}' for x in per_s)}); "
                  f"requests × batch {accepted:.0f}/s")
            verdicts.append(f"target events stored >= {TARGET_EVENTS_PER_S:.0f}/s (batches of {args.batch}): "
                            f"{rate:.0f}/s " + ("PASS" if rate >= TARGET_EVENTS_PER_S else "MISS"))
    print()
    print("Per round:")
    print(table(
        ["round", "endpoint", "-c", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU busy %", "gunicorn %", "wrk %",
         "PG %", "Redis %", "other %", "gunicorn CPU ms/req", "PG+Redis CPU ms/req", "Redis cmds/req",
         "cache hit %"],
        [[r.number, r.endpoint, conns[r.pair], f"{r.result['rps']:.0f}", ms(r.result["p50_us"]),
          ms(r.result["p95_us"]), ms(r.result["p99_us"]), f"{r.cpu_busy:.0f}", f"{r.cpu_server:.0f}",
          f"{r.cpu_wrk:.0f}", f"{r.cpu_pg:.0f}", f"{r.cpu_redis:.0f}", f"{r.cpu_other:.0f}",
          f"{r.cpu_ms_server:.3f}", f"{r.cpu_ms_backends:.3f}", f"{r.redis_commands / r.result['requests']:.2f}",
          (hit_ratio(r.new_answers, r.result["requests"]) if r.endpoint == "suggest" else "-")]
         for r in rounds]))
    print()
    suggest = [r for r in rounds if r.endpoint == "suggest"]
    if suggest:
        sug_requests = sum(r.result["requests"] for r in suggest)
        answers = sum(r.new_answers for r in suggest)
        misses = sum(r.redis_misses for r in suggest)
        print(f"answer cache (suggest rounds): {sug_requests:.0f} requests, {answers} answers computed and cached "
              f"(misses) -> hit ratio {hit_ratio(answers, sug_requests)}%; Redis keyspace misses {misses}")
    print("CPU % is of all cores; 'other' = busy minus gunicorn, wrk, PostgreSQL and Redis (other work on the machine)")
    bad = sum(int(r.result["non2xx"]) for r in rounds)
    degraded = sum(int(r.result["degraded"]) for r in rounds)
    sock_errors = sum(int(r.result[k]) for r in rounds for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    print(f"degraded answers: {degraded}; gunicorn log warnings/errors: {len(warnings)}"
          + (f" (first: {warnings[0][:200]})" if warnings else ""))
    other = statistics.median(r.cpu_other for r in rounds)
    if other > 10:
        print(f"WARNING: other processes of the machine used {other:.0f}% of its CPU (median over "
              "rounds): the server did not have the machine to itself; re-run on a quiet machine.")
    if restarted:
        print("note: gunicorn workers were restarted during the run")
    print()
    for line in verdicts:
        print(line)
    print(f"(total {time.monotonic() - started:.0f} s)")
    if bad or degraded or sock_errors:
        print(f"INVALID RUN: {bad} non-2xx, {degraded} degraded, {sock_errors} socket errors/timeouts",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
